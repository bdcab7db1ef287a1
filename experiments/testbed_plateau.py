"""The plateau check of configs/testbed.py: per arm, final accuracy and agreement and how much
test agreement moved over the last 20% of each student's epochs (mean ± std over seeds).

    python experiments/testbed_plateau.py runs/testbed_selfdistill [runs/testbed_data ...]
    python experiments/testbed_plateau.py experiments/results/testbed_selfdistill

Reads every ``metrics.jsonl`` (or, in a committed results folder, ``metrics.jsonl.gz``) under
the given sweep folders (one per trial); a trial's arm is
its folder path without the seed folder; trials without results.json (running) are left out. Reads the split names the per-epoch records hold.
"""
from __future__ import annotations

import gzip
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = (("test", "student_acc"), ("test", "teacher_acc"), ("test", "agreement"))


def _records(path: Path) -> list[dict]:
  if path.suffix == ".gz":
    with gzip.open(path, "rt") as f:
      text = f.read()
  else:
    text = path.read_text()
  return [r for r in map(json.loads, text.splitlines())
          if r.get("phase") == "distill" and "test" in r]


def _distill_split(rec: dict) -> str:
  """The split holding agreement on the clean distillation data (named train or distill)."""
  return next(s for s in ("distill", "train") if s in rec)


def trial_summary(path: Path) -> dict | None:
  recs = _records(path)
  if not recs:
    return None
  last, epochs = recs[-1], recs[-1]["epoch"]
  tail = [r for r in recs if r["epoch"] >= 0.8 * epochs]
  d = _distill_split(last)
  moved = max(r["test"]["agreement"] for r in tail) - min(r["test"]["agreement"] for r in tail)
  out = {f"{s}/{m}": last[s][m] for s, m in COLUMNS}
  out.update({"distill/agreement": last[d]["agreement"], "distill/student_acc":
              last[d]["student_acc"], "test_agreement_range_last20%": moved, "epochs": epochs})
  return out


def main(folders: list[str]) -> None:
  arms: dict[str, list[dict]] = defaultdict(list)
  for folder in folders:
    for m in sorted(Path(folder).rglob("metrics.jsonl*")):
      if m.name not in ("metrics.jsonl", "metrics.jsonl.gz"):
        continue
      if not (m.parent / "results.json").exists():
        continue  # a trial still running
      s = trial_summary(m)
      if s is not None:
        arm = re.sub(r"/seed[_=-]?\d+", "", str(m.parent.relative_to(Path(folder).parent)))
        arm = arm.replace("/trials/", "/")  # a committed folder's trials/<arm>/seed<k>
        arms[arm].append(s)
  keys = ("test/student_acc", "test/teacher_acc", "test/agreement", "distill/agreement",
          "test_agreement_range_last20%")
  print("| arm | seeds | " + " | ".join(keys) + " |")
  print("|---|---|" + "---|" * len(keys))
  for arm, rows in sorted(arms.items()):
    cells = []
    for k in keys:
      v = np.array([r[k] for r in rows], float)
      cells.append(f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f}")
    print(f"| {arm} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv[1:])
