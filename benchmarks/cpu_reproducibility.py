"""What changes XLA:CPU's numbers between x86 machines, and what a common setting costs.

    python -m benchmarks.cpu_reproducibility [--steps 40] [--out FILE.json]

Trains the minis' network (PreResNet-8, LayerNorm, quarter width) with SGD on fixed
pseudo-random CIFAR-sized batches, once per setting, each in a fresh process (XLA reads its
flags at start): the instruction set XLA may use (``--xla_cpu_max_isa``), the number of
cores (``taskset``), Eigen's thread pool. It prints, per setting, whether the final weights
are bitwise equal to the default run's, their largest relative difference, the loss after
the last step and the time per step. A setting that gives the same bits on this machine as
another ISA cap is a candidate for "the same numbers on any x86 CPU with that cap"; this
script cannot test other CPU models, only the knobs that emulate them here.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

#: (label, extra XLA_FLAGS, cores to pin to or 0 = all)
SETTINGS = (
    ("default", "", 0),
    ("max_isa=AVX2", "--xla_cpu_max_isa=AVX2", 0),
    ("max_isa=AVX", "--xla_cpu_max_isa=AVX", 0),
    ("max_isa=SSE4_2", "--xla_cpu_max_isa=SSE4_2", 0),
    ("1 core", "", 1),
    ("1 core, max_isa=AVX2", "--xla_cpu_max_isa=AVX2", 1),
    ("no Eigen threads", "--xla_cpu_multi_thread_eigen=false", 0),
)


def child(steps: int, batch: int) -> dict[str, Any]:
  """One training run in this process; the weights' sha256, loss and time per step."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from kd_jax.models import get_model

  model = get_model("preresnet", 10, depth=8, norm="layer", width=0.25)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((steps, batch, 32, 32, 3), dtype=np.float32))
  y = jnp.asarray(rng.integers(0, 10, (steps, batch)))
  variables = model.init(jax.random.PRNGKey(0), x[0], train=False)
  params = variables["params"]
  opt = optax.sgd(0.1, momentum=0.9, nesterov=True)
  state = opt.init(params)

  def loss_fn(p, xb, yb):
    logits = model.apply({**variables, "params": p}, xb, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def step(p, s, xb, yb):
    loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
    upd, s = opt.update(g, s, p)
    return optax.apply_updates(p, upd), s, loss

  params, state, loss = step(params, state, x[0], y[0])  # compile
  jax.block_until_ready(params)
  t0 = time.perf_counter()
  for i in range(1, steps):
    params, state, loss = step(params, state, x[i], y[i])
  jax.block_until_ready(params)
  dt = (time.perf_counter() - t0) / max(1, steps - 1)
  leaves = [np.asarray(v) for v in jax.tree.leaves(params)]
  digest = hashlib.sha256(b"".join(v.tobytes() for v in leaves)).hexdigest()
  flat = np.concatenate([v.ravel() for v in leaves]).astype(np.float64)
  return {"sha256": digest, "loss": float(loss), "s_per_step": dt, "weights": flat.tolist()}


def run_setting(flags: str, cores: int, steps: int, batch: int) -> dict[str, Any]:
  env = dict(os.environ, XLA_FLAGS=" ".join(f for f in (os.environ.get("XLA_FLAGS", ""), flags)
                                            if f))
  cmd = [sys.executable, "-m", "benchmarks.cpu_reproducibility", "--child",
         "--steps", str(steps), "--batch", str(batch)]
  if cores and shutil.which("taskset"):
    cmd = ["taskset", "-c", ",".join(str(c) for c in range(cores))] + cmd
  out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--steps", type=int, default=40)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--out", default="", help="also write the table as JSON here")
  a = p.parse_args(argv)
  if a.child:
    print(json.dumps(child(a.steps, a.batch)))
    return
  import numpy as np
  from kd_jax.core import provenance
  print(f"machine: {provenance.machine_label(provenance.machine())}; {a.steps} SGD steps of "
        f"batch {a.batch}, PreResNet-8 LN quarter width")
  rows, base = [], None
  for label, flags, cores in SETTINGS:
    r = run_setting(flags, cores, a.steps, a.batch)
    w = np.asarray(r.pop("weights"))
    if base is None:
      base = (r, w)
    rel = float(np.max(np.abs(w - base[1])) / np.max(np.abs(base[1])))
    row = {"setting": label, "bitwise_equal_to_default": r["sha256"] == base[0]["sha256"],
           "max_rel_weight_diff": rel, "final_loss": r["loss"],
           "ms_per_step": 1e3 * r["s_per_step"],
           "time_vs_default": r["s_per_step"] / base[0]["s_per_step"], "sha256": r["sha256"][:12]}
    rows.append(row)
    print(f"{label:24s} sha {row['sha256']}  same bits as default: "
          f"{str(row['bitwise_equal_to_default']):5s}  max rel diff {rel:.2e}  "
          f"loss {r['loss']:.6f}  {row['ms_per_step']:.1f} ms/step ({row['time_vs_default']:.2f}×)",
          flush=True)
  groups: dict[str, list[str]] = {}
  for r in rows:
    groups.setdefault(r["sha256"], []).append(r["setting"])
  print("same bits:", "; ".join(" = ".join(g) for g in groups.values()))
  if a.out:
    with open(a.out, "w") as f:
      json.dump({"machine": provenance.machine(), "steps": a.steps, "batch": a.batch,
                 "rows": rows}, f, indent=1)


if __name__ == "__main__":
  main()
