"""Two runs of the same figure side by side, seed by seed: how far a rerun elsewhere (another
commit, CPU, XLA setting) moves the numbers, next to how far the seeds themselves spread.

    python experiments/compare_runs.py OLD NEW [--columns test/agreement,test/student_acc]

OLD and NEW are results folders (or sweep workdirs) of one figure, each with a results.csv whose
rows are trials (``arm``, ``seed``, one column per metric). For every column, over the trials
both ran (same arm and seed):

- ``same``: how many trials have the identical value in both (a bitwise rerun gives all);
- ``per-trial NEW − OLD``: mean and sd of the paired differences, and the largest |difference|;
- ``seed sd``: the pooled within-arm standard deviation over seeds in OLD, the yardstick: a
  rerun spread well below it does not change what a figure says;
- ``arm means``: how many arms' Welch 95% CI of mean(NEW) − mean(OLD) excludes 0.

Columns default to the numeric columns both runs share, minus bookkeeping (wall time).
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

SKIP = ("run/wall_time_s", "x", "seed", "run/teacher_members_used")


def read(folder: Path) -> dict[tuple[str, str], dict[str, float]]:
  """(arm, seed) → numeric cells of the folder's results.csv."""
  path = Path(folder) / "results.csv"
  if not path.is_file():
    raise SystemExit(f"error: {path} not found: pass a results folder or a sweep workdir")
  out = {}
  with path.open() as f:
    for row in csv.DictReader(f):
      cells = {}
      for k, v in row.items():
        try:
          cells[k] = float(v)
        except (TypeError, ValueError):
          continue
      out[(row["arm"], row["seed"])] = {k: v for k, v in cells.items() if math.isfinite(v)}
  return out


def pooled_seed_sd(rows: dict[tuple[str, str], dict[str, float]], column: str) -> float:
  """sqrt(Σ_arms Σ (x − arm mean)² / Σ_arms (n − 1)) over the arms with ≥ 2 seeds."""
  by_arm = defaultdict(list)
  for (arm, _), cells in rows.items():
    if column in cells:
      by_arm[arm].append(cells[column])
  ss = sum(float(((np.asarray(v) - np.mean(v)) ** 2).sum()) for v in by_arm.values() if len(v) > 1)
  df = sum(len(v) - 1 for v in by_arm.values() if len(v) > 1)
  return math.sqrt(ss / df) if df else math.nan


def compare(old: dict, new: dict, column: str) -> Optional[dict]:
  """The row of one column (None when no trial has it in both runs)."""
  from kd_jax.sweeps import stats
  keys = sorted(k for k in old.keys() & new.keys() if column in old[k] and column in new[k])
  if not keys:
    return None
  d = np.array([new[k][column] - old[k][column] for k in keys])
  arms = sorted({a for a, _ in keys})
  moved = 0
  for arm in arms:
    a = [new[k][column] for k in keys if k[0] == arm]
    b = [old[k][column] for k in keys if k[0] == arm]
    _, lo, hi, _ = stats.welch_diff(a, b)
    moved += bool(lo > 0 or hi < 0)  # nan (one seed, or identical) compares False
  return {"column": column, "trials": len(keys), "same": int((d == 0).sum()),
          "mean": float(d.mean()), "sd": float(d.std(ddof=1)) if d.size > 1 else math.nan,
          "max_abs": float(np.abs(d).max()), "seed_sd": pooled_seed_sd(old, column),
          "arms": len(arms), "arms_moved": moved}


def table(rows: Sequence[dict]) -> str:
  head = ("| column | trials | same | per-trial NEW − OLD: mean (sd) | largest abs | seed sd (OLD) "
          "| arms whose mean moved (Welch 95% CI excludes 0) |\n|---|---|---|---|---|---|---|")
  lines = [head]
  for r in rows:
    lines.append(f"| {r['column']} | {r['trials']} | {r['same']} | {r['mean']:+.3g} "
                 f"({r['sd']:.3g}) | {r['max_abs']:.3g} | {r['seed_sd']:.3g} | "
                 f"{r['arms_moved']} of {r['arms']} |")
  return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("old", type=Path)
  p.add_argument("new", type=Path)
  p.add_argument("--columns", default="", help="comma-separated; default: all shared metrics")
  a = p.parse_args(argv)
  old, new = read(a.old), read(a.new)
  if a.columns:
    columns = [c for c in a.columns.split(",") if c]
  else:
    seen = {c for cells in old.values() for c in cells} & {c for cells in new.values() for c in cells}
    columns = sorted(c for c in seen if c not in SKIP)
  rows = [r for r in (compare(old, new, c) for c in columns) if r is not None]
  if not rows:
    sys.exit(f"error: {a.old} and {a.new} share no trial with a value in {columns}")
  print(f"OLD = {a.old}\nNEW = {a.new}\n")
  print(table(rows))


if __name__ == "__main__":
  main()
