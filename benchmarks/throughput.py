"""Training img/s of the reference models of ``kd_jax/runner/estimate.py``'s table, on the
backend jax finds: the numbers behind a ``THROUGHPUT`` row (its CPU row came from this).

    python -m benchmarks.throughput                  # LeNet-5, PreResNet-56, PreResNet-8 at width 1/4
    python -m benchmarks.throughput --steps=20       # more steps per timed epoch (fast devices)

Each model trains through kd_jax's teacher step (``jax_side.teacher_case``: one member, batch
128, crop + flip at 32 px, random images); one epoch compiles, then the median of 3 is printed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
from ml_collections import ConfigDict

from benchmarks import jax_side
from kd_jax import config as config_lib
from kd_jax.train import modeling

#: (label, model config, input shape, classes, crop + flip)
MODELS = (("lenet5", dict(name="lenet5"), (28, 28, 1), 10, False),
          ("preresnet56", dict(name="preresnet", depth=56, width=1.0), (32, 32, 3), 100, True),
          ("preresnet8_w0.25", dict(name="preresnet", depth=8, width=0.25), (32, 32, 3), 100,
           True))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=4, help="steps of batch 128 per timed epoch")
  args = p.parse_args()
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{os.cpu_count()} CPU cores", flush=True)
  for label, spec, shape, classes, augment in MODELS:
    jax_side.build_model = lambda name, n, dtype="float32", spec=spec: modeling.build_model(
        ConfigDict(spec), n, config_lib.base_config())
    case = jax_side.teacher_case(label, classes, shape, 128, args.steps, 1, augment, "auto")
    case.run()  # compiles
    times = []
    for _ in range(3):
      t0 = time.perf_counter()
      case.run()
      times.append(time.perf_counter() - t0)
    print(f"{label}: {128 * args.steps / statistics.median(times):,.0f} img/s", flush=True)


if __name__ == "__main__":
  main()
