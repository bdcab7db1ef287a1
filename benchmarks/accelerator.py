"""The benchmark on one GPU: kd_jax (float32 / bfloat16, 1 or 50 steps per call) against PyTorch
(eager, ``torch.compile``), a PreResNet-56 teacher epoch on CIFAR-sized data, and a 5-member
ensemble epoch against 5× one member.

    bash benchmarks/accelerator.sh                 # installs shipped wheels if needed, runs this
    python -m benchmarks.accelerator --smoke       # tiny sizes, any backend (the test runs it)

Built for a single-GPU machine without network, in under 8 minutes on one H100: the parts run
in order of importance (the paper's main setting first) and each part starts only while
``--budget_s`` is not spent; what is skipped is printed and recorded. JSON and markdown go to
``--out`` (``benchmarks/results/``) with the card, versions and date.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from typing import Callable

import jax
import torch

from benchmarks import jax_side, report, run, torch_side

#: PyTorch variants: (torch.compile backend, bf16 autocast).
TORCH = {"torch eager": ("", False), "torch.compile": ("inductor", False),
         "torch.compile bf16": ("inductor", True)}
#: kd_jax variants: (run.dtype, run.steps_per_call).
JAX = {"kd_jax f32 spc1": ("float32", 1), "kd_jax f32 spc50": ("float32", 50),
       "kd_jax bf16 spc1": ("bfloat16", 1), "kd_jax bf16 spc50": ("bfloat16", 50)}
TABLE_ROWS = ("pr56x5", "pr20", "pr56", "teacher_pr56", "eval_pr56x5")


@dataclasses.dataclass(frozen=True)
class Sizes:
  batch: int = 128
  steps: int = 50              # steps per timed call of a table row (one epoch)
  spc: int = 50                # the large steps_per_call
  repeats: int = 3
  epoch_images: int = 50_000   # CIFAR's training split
  members: int = 5
  model: str = ""              # '' = each row's model (smoke: lenet5 everywhere)
  compile_backend: str = "inductor"


FULL = Sizes()
SMOKE = Sizes(batch=8, steps=2, spc=2, repeats=1, epoch_images=32, members=2, model="lenet5",
              compile_backend="eager")


class Clock:
  """Starts a part only while the budget lasts (a running compile cannot be interrupted), and
  keeps the list of parts skipped or failed."""

  def __init__(self, budget_s: float):
    self.t0, self.budget_s, self.skipped, self.failed = time.perf_counter(), budget_s, [], []

  def elapsed(self) -> float:
    return time.perf_counter() - self.t0

  def allow(self, what: str) -> bool:
    if self.elapsed() < self.budget_s:
      return True
    self.skipped.append(what)
    print(f"skipped (time budget {self.budget_s:.0f} s spent): {what}", flush=True)
    return False


def _row_spec(name: str, sizes: Sizes) -> tuple:
  kind, model, (shape, classes), members, augment, label = run.ROWS[name]
  if sizes.model:
    model, (shape, classes) = sizes.model, run.MNIST
    label = f"[smoke: {model}, m = {min(members, sizes.members)}] {label}"
  return kind, model, shape, classes, min(members, sizes.members), augment, label


def compare(builders: dict[str, Callable[[], jax_side.Case]], images: int, repeats: int,
            clock: Clock) -> dict[str, dict]:
  """Builds and warms each case, then times them round-robin; medians in img/s."""
  cases, out = {}, {}
  for label, build in builders.items():
    if not clock.allow(label):
      continue
    t0 = time.perf_counter()
    try:  # one failing variant (say, no compiler for torch.compile) must not end the run
      case = build()
      case.run()  # compiles / warms up
    except Exception as e:  # noqa: BLE001 - recorded and printed, the run goes on
      clock.failed.append(f"{label}: {type(e).__name__}: {e}")
      print(f"failed: {clock.failed[-1]}", flush=True)
      continue
    cases[label] = case
    out[label] = {"build_s": time.perf_counter() - t0, "times_s": []}
  for _ in range(repeats):
    for label, case in cases.items():
      t0 = time.perf_counter()
      case.run()
      out[label]["times_s"].append(time.perf_counter() - t0)
  for label, r in out.items():
    r["img_s"] = images / statistics.median(r["times_s"]) if r["times_s"] else 0.0
  return out


def table_row(name: str, sizes: Sizes, device: str, clock: Clock) -> dict:
  kind, model, shape, classes, members, augment, label = _row_spec(name, sizes)
  args = (model, classes, shape, sizes.batch, sizes.steps, members, augment)
  builders: dict[str, Callable[[], jax_side.Case]] = {}
  for variant, (backend, bf16) in TORCH.items():
    backend = sizes.compile_backend if backend else ""
    builders[variant] = lambda b=backend, h=bf16: torch_side.CASES[kind](
        *args, device=device, compile=b, bf16=h)
  for variant, (dtype, spc) in JAX.items():
    spc = min(spc, sizes.spc)
    builders[variant] = lambda d=dtype, s=spc: jax_side.CASES[kind](
        *args, "auto", dtype=d, steps_per_call=s)
  images = sizes.batch * sizes.steps * (members if kind == "teacher" else 1)
  results = compare(builders, images, sizes.repeats, clock)
  print(f"{label}: " + ", ".join(f"{k} {v['img_s']:,.0f}" for k, v in results.items()),
        flush=True)
  return dict(row=name, label=label, model=model, members=members, images_per_call=images,
              results=results)


def epoch_seconds(members: int, mode: str, sizes: Sizes, dtype: str = "float32") -> dict:
  """Seconds of one teacher-training epoch of ``members`` stacked PreResNet-56 (2nd epoch)."""
  model, shape, classes = (sizes.model, *run.MNIST) if sizes.model else ("preresnet56",
                                                                         *run.CIFAR)
  steps = -(-sizes.epoch_images // sizes.batch)
  t0 = time.perf_counter()
  case = jax_side.teacher_case(model, classes, shape, sizes.batch, steps, members, True, mode,
                               dtype=dtype, steps_per_call=sizes.spc)
  case.run()  # epoch 1: compiles
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  case.run()
  second = time.perf_counter() - t0
  return dict(model=model, members=members, mode=mode, dtype=dtype, images=steps * sizes.batch,
              steps_per_call=sizes.spc, first_epoch_s=first, epoch_s=second,
              img_s=members * steps * sizes.batch / second)


def teacher_parts(sizes: Sizes, clock: Clock) -> dict:
  """The PreResNet-56 teacher epoch (and its 200-epoch extrapolation), then the m-member
  ensemble epoch under vmap and unrolled against m × one member."""
  parts: dict = {}
  for key, members, mode in (("one", 1, "auto"), ("vmap", sizes.members, "vmap"),
                             ("unroll", sizes.members, "unroll")):
    if not clock.allow(f"teacher epoch, {members} member(s), {mode}"):
      continue
    try:
      parts[key] = r = epoch_seconds(members, mode, sizes)
    except Exception as e:  # noqa: BLE001 - printed, the run goes on
      clock.failed.append(f"teacher epoch ({members}, {mode}): {type(e).__name__}: {e}")
      print(f"failed: {clock.failed[-1]}", flush=True)
      continue
    print(f"teacher epoch, {members}×{r['model']} ({mode}): {r['epoch_s']:.2f} s "
          f"({r['img_s']:,.0f} img/s; first epoch incl. compile {r['first_epoch_s']:.1f} s)",
          flush=True)
  if "one" in parts:
    parts["200_epochs_min"] = 200 * parts["one"]["epoch_s"] / 60
    print(f"200 teacher epochs ≈ {parts['200_epochs_min']:.1f} min (goal < 10)", flush=True)
    for key in ("vmap", "unroll"):
      if key in parts:
        parts[f"{key}_over_one"] = parts[key]["epoch_s"] / parts["one"]["epoch_s"]
        print(f"{sizes.members}-member {key} epoch / one member: {parts[f'{key}_over_one']:.2f} "
              f"(goal < 2; {sizes.members}× one member = {sizes.members:.0f}.00)", flush=True)
  return parts


def markdown(meta: dict, rows: list[dict], parts: dict, skipped: list[str]) -> str:
  labels = list(TORCH) + list(JAX)
  out = [f"Measured {meta['date_utc']} UTC on {meta['accelerator']} ({meta['backend']}); jax "
         f"{meta['jax']}, torch {meta['torch']}. img/s, medians of {meta['sizes']['repeats']} "
         f"timed calls of {meta['sizes']['steps']} steps, batch {meta['sizes']['batch']}; "
         "spcN = N steps per jitted call.", "",
         "| setting | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
  for r in rows:
    cells = [f"{r['results'][k]['img_s']:,.0f}" if k in r["results"] else "–" for k in labels]
    out.append(f"| {r['label']} | " + " | ".join(cells) + " |")
  for key in ("one", "vmap", "unroll"):
    if key in parts:
      p = parts[key]
      out.append(f"\nTeacher epoch, {p['members']}×{p['model']} ({p['mode']}, {p['images']} "
                 f"images, spc {p['steps_per_call']}): {p['epoch_s']:.2f} s, "
                 f"{p['img_s']:,.0f} img/s.")
  if "200_epochs_min" in parts:
    out.append(f"\n200 epochs of one teacher ≈ {parts['200_epochs_min']:.1f} min (goal < 10).")
  for key in ("vmap", "unroll"):
    if f"{key}_over_one" in parts:
      out.append(f"\n{meta['sizes']['members']}-member {key} epoch / one member's epoch: "
                 f"{parts[f'{key}_over_one']:.2f} (goal < 2).")
  if skipped:
    out.append("\nSkipped (time budget): " + "; ".join(skipped))
  if meta.get("failed"):
    out.append("\nFailed: " + "; ".join(meta["failed"]))
  return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--smoke", action="store_true", help="tiny sizes (lenet5), any backend")
  p.add_argument("--budget_s", type=float, default=420.0,
                 help="no new part starts after this many seconds (8-minute target)")
  p.add_argument("--rows", default=",".join(TABLE_ROWS), help="table rows, in order")
  p.add_argument("--out", default="benchmarks/results", help="'' = print only")
  p.add_argument("--name", default="", help="file stem (default: gpu_<card>)")
  a = p.parse_args(argv)
  sizes = SMOKE if a.smoke else FULL
  device = "cuda" if torch.cuda.is_available() else "cpu"
  clock = Clock(a.budget_s)
  meta = report.machine(a)
  meta.update(accelerator=jax.devices()[0].device_kind, sizes=dataclasses.asdict(sizes),
              torch_device=torch.cuda.get_device_name() if device == "cuda" else "cpu")
  print(report.header(meta) + f" | {meta['accelerator']}", flush=True)
  rows = [table_row(r, sizes, device, clock) for r in a.rows.split(",")[:1] if r]
  parts = teacher_parts(sizes, clock)
  rows += [table_row(r, sizes, device, clock) for r in a.rows.split(",")[1:]
           if r and clock.allow(f"row {r}")]
  meta.update(loadavg_end=os.getloadavg(), total_s=clock.elapsed(), skipped=clock.skipped,
              failed=clock.failed)
  text = markdown(meta, rows, parts, clock.skipped)
  print(text, flush=True)
  if a.out:
    stem = a.name or "gpu_" + "".join(c if c.isalnum() else "_" for c in meta["accelerator"])
    path = report.write_raw(a.out, stem, {"machine": meta, "rows": rows, "teacher": parts},
                            text)
    print(f"wrote {path}.json and .md ({clock.elapsed():.0f} s)")


if __name__ == "__main__":
  main()
