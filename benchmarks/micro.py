"""One 3x3 convolution alone, forward + backward, in both frameworks (and vmapped over 5 weight
sets in JAX): where XLA:CPU itself sets the speed, not kd_jax's code. ``--part=data``: one
batch's input work alone (gather from the device-resident split + crop + flip + normalize in
kd_jax; PyTorch's batched version; the official code's per-image host transforms + collate).

    python -m benchmarks.micro --repeats=5
    python -m benchmarks.micro --part=data
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

#: PreResNet's three stage shapes at batch 128: (spatial size, channels).
STAGES = ((32, 16), (16, 32), (8, 64))


def _jax_fns(members: int):
  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def loss(w, x):
    return jnp.sum(conv(x, w) ** 2)

  grad = jax.grad(loss, argnums=(0, 1))
  one = jax.jit(grad)
  vmapped = jax.jit(jax.vmap(grad, in_axes=(0, None)))
  unrolled = jax.jit(lambda ws, x: [grad(ws[i], x) for i in range(members)])
  return one, vmapped, unrolled


def _time(fn, repeats: int) -> float:
  fn()
  out = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t0)
  return statistics.median(out)


def measure(batch: int, repeats: int, members: int = 5) -> list[dict]:
  rows = []
  one, vmapped, unrolled = _jax_fns(members)
  rng = np.random.default_rng(0)
  for size, c in STAGES:
    x = rng.normal(size=(batch, size, size, c)).astype(np.float32)
    w = rng.normal(size=(members, 3, 3, c, c)).astype(np.float32) * 0.1
    xj, wj = jnp.asarray(x), jnp.asarray(w)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    wt = [torch.from_numpy(w[i]).permute(3, 2, 0, 1).contiguous().requires_grad_(True)
          for i in range(members)]

    def torch_step(ws):
      for wi in ws:
        (F.conv2d(xt, wi, padding=1) ** 2).sum().backward()

    row = dict(shape=f"{batch}×{size}×{size}×{c}", members=members)
    for _ in range(2):  # interleave the two frameworks
      row.setdefault("jax_one_ms", []).append(
          1e3 * _time(lambda: jax.block_until_ready(one(wj[0], xj)), repeats))
      row.setdefault("torch_one_ms", []).append(1e3 * _time(lambda: torch_step(wt[:1]), repeats))
      row.setdefault("jax_vmap_ms", []).append(
          1e3 * _time(lambda: jax.block_until_ready(vmapped(wj, xj)), repeats))
      row.setdefault("jax_unrolled_ms", []).append(
          1e3 * _time(lambda: jax.block_until_ready(unrolled(wj, xj)), repeats))
      row.setdefault("torch_loop_ms", []).append(1e3 * _time(lambda: torch_step(wt), repeats))
    rows.append({k: (statistics.median(v) if isinstance(v, list) else v) for k, v in row.items()})
    print(rows[-1], flush=True)
  return rows


def _jax_data_fn(images: np.ndarray, labels: np.ndarray):
  """kd_jax's input work of one step, as the step runs it (under the device mesh)."""
  from jax.sharding import PartitionSpec as P

  from benchmarks import jax_side
  from kd_jax.core import parallel
  from kd_jax.data import pipelines
  mesh = parallel.make_mesh(1)
  pipe = pipelines.DeviceResident(images, labels, mesh)
  prepare = jax_side.prepare(True)

  def work(resident, feed, key):
    return prepare(pipe.materialize(resident, feed), key)[0]

  fn = parallel.device_map(work, mesh, in_specs=(P(), P(parallel.AXIS), P()), out_specs=P())
  return fn, pipe.resident()


def measure_data(batch: int, repeats: int, size: int = 50_000) -> dict:
  """Milliseconds of one batch's input work in each pipeline (medians)."""
  from torch.utils.data import default_collate

  from benchmarks import host_loader, jax_side, torch_ref
  images, labels = jax_side.random_split(size, 1, (32, 32, 3), 100)
  fn, resident = _jax_data_fn(images, labels)
  feed = {"idx": jnp.arange(batch, dtype=jnp.int32), "mask": jnp.ones(batch, bool)}
  key = jax.random.key(0)
  dataset = host_loader.HostTransformed(images, labels)
  u8, gen = torch.from_numpy(images[:batch]), torch.Generator().manual_seed(0)
  row = {
      "kd_jax gather + crop + flip + normalize (in the step)":
          _time(lambda: jax.block_until_ready(fn(resident, feed, key)), repeats),
      "PyTorch batched crop + flip + normalize (this benchmark's reference)":
          _time(lambda: torch_ref.prepare(u8, True, gen), repeats),
      "PyTorch per-image host transforms + collate (the official DataLoader)":
          _time(lambda: default_collate([dataset[i] for i in range(batch)]), repeats),
  }
  row = {k: 1e3 * v for k, v in row.items()}
  for k, v in row.items():
    print(f"{k}: {v:.2f} ms per batch of {batch}", flush=True)
  return row


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--torch_threads", type=int, default=1)
  p.add_argument("--part", default="conv", choices=("conv", "data"))
  a = p.parse_args()
  torch.set_num_threads(a.torch_threads or os.cpu_count() or 1)
  print(f"load average {os.getloadavg()[0]:.2f}; jax {jax.__version__}, torch {torch.__version__}")
  (measure if a.part == "conv" else measure_data)(a.batch, a.repeats)
  print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  main()
