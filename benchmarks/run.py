"""kd_jax vs a plain PyTorch reference of the same steps, in one process, interleaved.

    python -m benchmarks.run                      # every row, results under benchmarks/results/
    python -m benchmarks.run --rows=lenet5,pr20 --repeats=5 --modes=auto,vmap
    python -m benchmarks.run --rows=pr56x5,eval_pr56x5 --fold=both   # teacher BN folded or not
    python -m benchmarks.run --rows=epoch_pr20 --epoch_images=2048   # epochs incl. the data
    python -m benchmarks.run --rows=pr20 --dtypes=float32,bfloat16 --steps=4 --steps_per_call=1,4

Each row builds both sides (parameter counts must match), warms both up (kd_jax compiles),
then times them alternately ``--repeats`` times and reports medians: on a machine whose cores
other jobs share, alternating spreads the noise over both sides. ``--modes`` measures kd_jax
under several ``run.member_mode`` values (rows with more than one member only), ``--fold``
with the frozen teacher's BatchNorms folded (``run.fold_teacher_bn``; teacher-forward rows only),
``--dtypes`` in kd_jax compute dtypes (``run.dtype``; PyTorch stays float32) and
``--steps_per_call`` with several steps per jitted call (``run.steps_per_call``; a comma list,
each dividing ``--steps``).
``epoch_*`` rows time whole distillation epochs of ``--epoch_images`` images *including the
data*: kd_jax's device-resident split with crop + flip inside the step against the official
code's DataLoader with per-image host transforms (``benchmarks/host_loader.py``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch

from benchmarks import jax_side, report, torch_side

CIFAR, MNIST = ((32, 32, 3), 100), ((28, 28, 1), 10)
#: name → (kind, model, (input shape, classes), members, crop + hflip, label)
ROWS = {
    "lenet5": ("distill", "lenet5", MNIST, 1, False, "LeNet-5 distill, 28×28 (no augmentation)"),
    "pr20": ("distill", "preresnet20", CIFAR, 1, True, "PreResNet-20 distill, m = 1"),
    "pr56": ("distill", "preresnet56", CIFAR, 1, True, "PreResNet-56 distill, m = 1"),
    "pr56x5": ("distill", "preresnet56", CIFAR, 5, True,
               "5×PreResNet-56 → PreResNet-56 distill (main setting)"),
    "teacher_pr20x5": ("teacher", "preresnet20", CIFAR, 5, True,
                       "teacher training, 5×PreResNet-20"),
    "teacher_pr56": ("teacher", "preresnet56", CIFAR, 1, True, "teacher training, PreResNet-56"),
    "eval_pr56x5": ("eval", "preresnet56", CIFAR, 5, False, "evaluation, 5×PreResNet-56"),
    "epoch_pr20": ("epoch", "preresnet20", CIFAR, 1, True,
                   "epoch incl. data, PreResNet-20 distill, m = 1"),
    "epoch_pr56x5": ("epoch", "preresnet56", CIFAR, 5, True,
                     "epoch incl. data, 5×PreResNet-56 → PreResNet-56"),
}
#: Row kinds whose kd_jax side runs a frozen teacher's forward (where ``--fold`` applies).
TEACHER_FORWARD = ("distill", "eval", "epoch")
FOLDS = {"off": (False,), "on": (True,), "both": (False, True)}
DTYPES = ("float32", "bfloat16")


def timed(fn: Callable[[], None]) -> float:
  t0 = time.perf_counter()
  fn()
  return time.perf_counter() - t0


def _variants(kind: str, members: int, modes: list[str], fold: str,
              dtypes: tuple[str, ...] = ("float32",),
              spcs: tuple[int, ...] = (1,)) -> list[tuple[str, bool, str, int]]:
  folds = FOLDS[fold] if kind in TEACHER_FORWARD else (False,)
  return [(m, f, d, k) for m in (modes if members > 1 else modes[:1]) for f in folds
          for d in dtypes for k in spcs]


def measure_row(name: str, batch: int, steps: int, repeats: int, modes: list[str],
                fold: str = "off", workers: int = 0, dtypes: tuple[str, ...] = ("float32",),
                steps_per_call: tuple[int, ...] = (1,)) -> list[dict]:
  kind, model, (shape, classes), members, augment, label = ROWS[name]
  extra = {"workers": workers} if kind == "epoch" else {}
  ref = torch_side.CASES[kind](model, classes, shape, batch, steps, members, augment, **extra)
  ref.run()  # warm-up
  out = []
  for mode, folded, dtype, spc in _variants(kind, members, modes, fold, dtypes, steps_per_call):
    t0 = time.perf_counter()
    case = jax_side.CASES[kind](model, classes, shape, batch, steps, members, augment, mode,
                                fold=folded, dtype=dtype, steps_per_call=spc)
    if case.params != ref.params:
      raise SystemExit(f"{name}: kd_jax has {case.params} parameters per member, the PyTorch "
                       f"reference {ref.params}: not the same architecture")
    case.run()  # compiles
    build_s = time.perf_counter() - t0
    jt, tt = [], []
    for r in range(repeats):  # alternate which side goes first
      pair = (case.run, ref.run) if r % 2 == 0 else (ref.run, case.run)
      a, b = timed(pair[0]), timed(pair[1])
      jt.append(a if r % 2 == 0 else b)
      tt.append(b if r % 2 == 0 else a)
    images = batch * steps * (members if kind == "teacher" else 1)
    row = dict(row=name, label=label, kind=kind, model=model, members=members, mode=mode,
               fold_teacher_bn=folded, dtype=dtype, steps_per_call=spc, batch=batch,
               steps=steps, params=case.params, **extra,
               jax_img_s=images / statistics.median(jt), torch_img_s=images / statistics.median(tt),
               jax_s=jt, torch_s=tt, jax_build_s=build_s, loadavg=os.getloadavg())
    row["ratio"] = row["jax_img_s"] / row["torch_img_s"]
    print(report.line(row), flush=True)
    out.append(row)
  return out


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rows", default=",".join(ROWS), help=f"comma list of: {', '.join(ROWS)}")
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=2, help="steps per timed call (one epoch)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--modes", default="auto", help="kd_jax run.member_mode values, comma list")
  p.add_argument("--fold", default="off", choices=sorted(FOLDS),
                 help="kd_jax teacher BatchNorm folded into its convs (run.fold_teacher_bn)")
  p.add_argument("--epoch_images", type=int, default=2048,
                 help="images per epoch of the epoch_* rows (rounded up to whole batches)")
  p.add_argument("--workers", type=int, default=0,
                 help="DataLoader processes of the epoch_* rows (0, as the official code)")
  p.add_argument("--dtypes", default="float32",
                 help="kd_jax compute dtypes (run.dtype), comma list; PyTorch runs float32")
  p.add_argument("--steps_per_call", default="1",
                 help="kd_jax steps per jitted call (run.steps_per_call), comma list; each must "
                      "divide --steps")
  p.add_argument("--out", default="benchmarks/results", help="'' = print only")
  p.add_argument("--torch_threads", type=int, default=1,
                 help="PyTorch intra-op threads (0 = one per core); see benchmarks/README.md")
  p.add_argument("--name", default="", help="file stem of the results (default: the backend)")
  a = p.parse_args(argv)
  rows = [r for r in a.rows.split(",") if r]
  unknown = [r for r in rows if r not in ROWS]
  if unknown:
    raise SystemExit(f"error: unknown rows {unknown}; choose from: {', '.join(ROWS)}")
  dtypes = tuple(d for d in a.dtypes.split(",") if d)
  bad = [d for d in dtypes if d not in DTYPES]
  if bad:
    raise SystemExit(f"error: unknown --dtypes {bad}; choose from: {', '.join(DTYPES)}")
  try:
    spcs = tuple(int(k) for k in a.steps_per_call.split(",") if k)
  except ValueError:
    spcs = ()
  if not spcs or any(k < 1 or a.steps % k for k in spcs):
    raise SystemExit(f"error: --steps_per_call={a.steps_per_call} must be whole numbers ≥ 1 "
                     f"that divide --steps={a.steps}")
  torch.set_num_threads(a.torch_threads or os.cpu_count() or 1)
  meta = report.machine(a)
  print(report.header(meta), flush=True)
  results, paths = [], []
  for name in rows:  # results are written after every row, so a stopped run keeps its rows
    steps = -(-a.epoch_images // a.batch) if ROWS[name][0] == "epoch" else a.steps
    results += measure_row(name, a.batch, steps, a.repeats, a.modes.split(","), a.fold,
                           a.workers, dtypes, spcs)
    meta["loadavg_end"] = os.getloadavg()
    if a.out:
      paths = report.write(a.out, a.name or meta["backend"], meta, results)
  for path in paths:
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
