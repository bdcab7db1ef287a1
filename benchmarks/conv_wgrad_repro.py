"""One 3x3 convolution on the CPU: forward, input gradient and weight gradient, JAX vs PyTorch.

Standalone (jax, numpy, torch only), to attach to an XLA:CPU report:

    python benchmarks/conv_wgrad_repro.py                  # batch 128, PreResNet's 3 shapes
    python benchmarks/conv_wgrad_repro.py --batch=8 --repeats=3 --torch_threads=0

Shapes: NHWC activations, HWIO kernel, stride 1, SAME padding, no bias; (spatial, channels)
= (32, 16), (16, 32), (8, 64), channels in = out (the stages of a CIFAR ResNet).
JAX: each part jitted alone, ``jax.lax.conv_general_dilated`` forward, ``jax.vjp`` of it for
the input gradient and for the weight gradient (the cotangent is given, as in a backward
pass); ``--jax_layout=nchw`` hands XLA NCHW activations and OIHW kernels instead (transposed
once, outside the timed calls), to see whether the copies XLA:CPU puts around its NHWC
convolutions are the layout's. PyTorch: ``F.conv2d`` on NCHW (channels-last strides, ``--torch_layout``) and
``torch.nn.grad.conv2d_input`` / ``conv2d_weight``. Times are medians over ``--repeats``
rounds; in every round each of the six timed calls runs once, in an order that alternates, so
that a change in the machine's load falls on both frameworks.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time

import jax
import jaxlib
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

SHAPES = ((32, 16), (16, 32), (8, 64))
PARTS = ("forward", "input-grad", "weight-grad")


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


#: dimension numbers and the transposes from this script's NHWC / HWIO arrays, per layout
JAX_LAYOUTS = {"nhwc": (("NHWC", "HWIO", "NHWC"), (0, 1, 2, 3), (0, 1, 2, 3)),
               "nchw": (("NCHW", "OIHW", "NCHW"), (0, 3, 1, 2), (3, 2, 0, 1))}


def jax_fns(layout: str = "nhwc"):
  numbers = JAX_LAYOUTS[layout][0]

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=numbers)

  return {"forward": jax.jit(lambda x, w, g: conv(x, w)),  # g unused: one signature for all
          "input-grad": jax.jit(lambda x, w, g: jax.vjp(lambda x_: conv(x_, w), x)[1](g)[0]),
          "weight-grad": jax.jit(lambda x, w, g: jax.vjp(lambda w_: conv(x, w_), w)[1](g)[0])}


def transposes(fn, *args) -> list[tuple[str, int]]:
  """The transposes in XLA's optimized program of ``fn`` (each materialised by the copy that
  follows it): (shape, bytes) per transpose. Read off the compiled HLO, so independent of the
  machine's load: the layout changes XLA:CPU adds around its convolutions."""
  text = fn.lower(*args).compile().as_text()
  out = []
  for dtype, dims in re.findall(r"= (f32|bf16|f16)\[([\d,]*)\]\{[\d,]*\} transpose\(", text):
    n = int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
    out.append((f"{dtype}[{dims}]", n * (2 if dtype != "f32" else 4)))
  return out


def hlo_table(batch: int) -> list[str]:
  """Markdown rows: per shape, part and JAX layout, the transposes XLA:CPU compiled in."""
  rows = ["| activations (NHWC) | part | JAX layout | transposes | MB transposed | largest |",
          "|---|---|---|---|---|---|"]
  for size, c in SHAPES:
    x = np.zeros((batch, size, size, c), np.float32)
    w = np.zeros((3, 3, c, c), np.float32)
    for layout, (_, act, ker) in JAX_LAYOUTS.items():
      fns = jax_fns(layout)
      args = (x.transpose(act), w.transpose(ker), x.transpose(act))
      for part in PARTS:
        t = transposes(fns[part], *args)
        big = max(t, key=lambda s: s[1])[0] if t else "—"
        rows.append(f"| {batch}x{size}x{size}x{c} | {part} | {layout} | {len(t)} | "
                    f"{sum(b for _, b in t) / 1e6:.2f} | {big} |")
  return rows


def torch_fns(layout: str):
  def fmt(t):
    return t.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else t.contiguous()

  def prep(x, w, g):  # numpy NHWC / HWIO → torch NCHW / OIHW
    return (fmt(torch.from_numpy(x).permute(0, 3, 1, 2)),
            fmt(torch.from_numpy(w).permute(3, 2, 0, 1)),
            fmt(torch.from_numpy(g).permute(0, 3, 1, 2)))

  fns = {"forward": lambda x, w, g: F.conv2d(x, w, padding=1),
         "input-grad": lambda x, w, g: torch.nn.grad.conv2d_input(x.shape, w, g, padding=1),
         "weight-grad": lambda x, w, g: torch.nn.grad.conv2d_weight(x, w.shape, g, padding=1)}
  return prep, fns


def measure(batch: int, repeats: int, layout: str, jax_layout: str = "nhwc") -> list[dict]:
  rng = np.random.default_rng(0)
  prep, tfns = torch_fns(layout)
  rows = []
  for size, c in SHAPES:
    x = rng.normal(size=(batch, size, size, c)).astype(np.float32)
    w = (rng.normal(size=(3, 3, c, c)) * 0.1).astype(np.float32)
    g = rng.normal(size=(batch, size, size, c)).astype(np.float32)
    _, act, ker = JAX_LAYOUTS[jax_layout]
    back = {"weight-grad": np.argsort((3, 2, 0, 1) if jax_layout == "nchw" else (0, 1, 2, 3))}
    jargs = (jnp.asarray(x.transpose(act)), jnp.asarray(w.transpose(ker)),
             jnp.asarray(g.transpose(act)))
    targs = prep(x, w, g)
    jfns = jax_fns(jax_layout)
    # Same numbers first (and the warm-up: JAX compiles here), compared in NHWC / HWIO.
    for part in PARTS:
      a = np.asarray(jfns[part](*jargs)).transpose(back.get(part, np.argsort(act)))
      b = tfns[part](*targs).detach()
      b = b.permute(0, 2, 3, 1) if part != "weight-grad" else b.permute(2, 3, 1, 0)
      np.testing.assert_allclose(a, b.numpy(), rtol=2e-3, atol=2e-3 * float(np.abs(a).max()))
    calls = [(f"jax {p}", lambda p=p: jax.block_until_ready(jfns[p](*jargs))) for p in PARTS]
    calls += [(f"torch {p}", lambda p=p: tfns[p](*targs)) for p in PARTS]
    times = {name: [] for name, _ in calls}
    for r in range(repeats):
      for name, fn in (calls if r % 2 == 0 else calls[::-1]):
        t0 = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t0)
    row = {"shape": f"{batch}x{size}x{size}x{c}", "kernel": f"3x3x{c}x{c}"}
    for p in PARTS:
      j, t = (1e3 * statistics.median(times[f"{s} {p}"]) for s in ("jax", "torch"))
      row[p] = (j, t)
    rows.append(row)
  return rows


def main(argv=None) -> list[dict]:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--repeats", type=int, default=11)
  p.add_argument("--torch_threads", type=int, default=0, help="0 = one per core")
  p.add_argument("--torch_layout", choices=("nhwc", "nchw"), default="nhwc",
                 help="memory format of PyTorch's tensors (nhwc = channels_last, as JAX's)")
  p.add_argument("--jax_layout", choices=tuple(JAX_LAYOUTS), default="nhwc",
                 help="dimension numbers of JAX's convolution (nhwc = flax's)")
  p.add_argument("--hlo", action="store_true",
                 help="print the transposes XLA compiled into each part, both JAX layouts, "
                      "and stop (no timing: the count does not depend on the load)")
  a = p.parse_args(argv)
  if a.hlo:
    print(f"jax {jax.__version__} (jaxlib {jaxlib.__version__}, backend "
          f"{jax.default_backend()}); CPU: {cpu_model()}; XLA_FLAGS="
          f"{os.environ.get('XLA_FLAGS', '')!r}")
    print("\n".join(hlo_table(a.batch)))
    return []
  torch.set_num_threads(a.torch_threads or os.cpu_count() or 1)
  load0 = os.getloadavg()
  print(f"jax {jax.__version__} (jaxlib {jaxlib.__version__}, "
        f"backend {jax.default_backend()}), numpy {np.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, {a.torch_layout}, mkldnn "
        f"{torch.backends.mkldnn.is_available()}); JAX layout {a.jax_layout}")
  print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; XLA_FLAGS="
        f"{os.environ.get('XLA_FLAGS', '')!r}; python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}")
  print(f"batch {a.batch}, medians of {a.repeats} interleaved rounds; load average (1 min) "
        f"{load0[0]:.2f} at the start")
  rows = measure(a.batch, a.repeats, a.torch_layout, a.jax_layout)
  print("\n| activations (NHWC) | part | JAX ms | PyTorch ms | JAX / PyTorch |")
  print("|---|---|---|---|---|")
  for r in rows:
    for part in PARTS:
      j, t = r[part]
      print(f"| {r['shape']} | {part} | {j:.3f} | {t:.3f} | {j / t:.2f} |")
  print(f"\nload average (1 min) {os.getloadavg()[0]:.2f} at the end")
  return rows


if __name__ == "__main__":
  main()
