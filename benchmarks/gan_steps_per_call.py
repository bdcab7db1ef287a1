"""Seconds per generator update of the CPU mini GAN (``recipes.mini_gan``) at 1 and at k
generator updates per jitted call (``gan.steps_per_call``), alternating, on random images.

    python -m benchmarks.gan_steps_per_call --k=5 --rounds=2

The classifier's steps slow down sharply with several steps per call on a CPU
(benchmarks/README.md); this checks whether the GAN's chunk does too.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from kd_jax import config as config_lib, recipes
from kd_jax.runner import gans
from kd_jax.train import gan_steps


def seconds_per_update(spec, data, num: int, calls: int) -> float:
  state = gan_steps.init_state(spec, 0, data.shape[1:])
  state, _ = gan_steps.gan_chunk(state, data, jnp.int32(0), spec=spec, num=num)  # compiles
  jax.block_until_ready(state)
  t0 = time.perf_counter()
  for _ in range(calls):
    state, _ = gan_steps.gan_chunk(state, data, jnp.int32(0), spec=spec, num=num)
  jax.block_until_ready(state)
  return (time.perf_counter() - t0) / (num * calls)


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--k", type=int, default=5, help="generator updates per call to compare with 1")
  p.add_argument("--rounds", type=int, default=2)
  a = p.parse_args(argv)
  c = config_lib.base_config()
  with c.unlocked():
    recipes.mini_gan(c)
  images = np.random.default_rng(0).integers(0, 256, (512, 32, 32, 3), dtype=np.uint8)
  spec = gans.make_spec(c.gan, len(images))
  data = jnp.asarray(images)
  print(f"mini GAN (width {c.gan.model.gen_width}, batch {c.gan.batch_size}, "
        f"{c.gan.disc_steps} D updates per G update) on {jax.default_backend()}, "
        f"load average {os.getloadavg()[0]:.2f}", flush=True)
  for r in range(a.rounds):
    for num, calls in ((1, a.k), (a.k, 1)) if r % 2 == 0 else ((a.k, 1), (1, a.k)):
      print(f"round {r + 1}: {num} update(s) per call: "
            f"{seconds_per_update(spec, data, num, calls):.3f} s per generator update", flush=True)
  print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
  main()
