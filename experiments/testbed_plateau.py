"""The plateau check of configs/testbed.py: per arm, final accuracy and agreement and how much
test agreement moved over the last 20% of each student's epochs (mean ± std over seeds).

Two measures of "moved": the *range* (max − min of the evaluations in the last 20%), which
includes the evaluation-to-evaluation noise of a 1,000-signal test set and so grows with the
number of evaluations, and the *drift*: the least-squares line through those evaluations, its
slope times the window's length (points gained over the last 20%; noise averages out). The
drift is given as mean [95% CI] over seeds (Student t), for test and distillation agreement;
an arm is at its plateau in the testbed's sense (test agreement changing < 0.5 points over the
last 20%) when the CI of its test drift lies inside ±0.5 (one seed: its drift).

    python experiments/testbed_plateau.py runs/testbed_selfdistill [runs/testbed_data ...]
    python experiments/testbed_plateau.py experiments/results/testbed_selfdistill
    python experiments/testbed_plateau.py --curves=curves.png experiments/results/testbed_selfdistill

``--curves=<png>`` also draws each arm's test and distillation-data agreement against the
student's epochs (mean and 95% CI band over seeds, Student t), the picture behind "at its
plateau": a curve that is still rising at its last epoch is not.

Reads every ``metrics.jsonl`` (or, in a committed results folder, ``metrics.jsonl.gz``) under
the given sweep folders (one per trial); a trial's arm is
its folder path without the seed folder; trials without results.json (running) are left out. Reads the split names the per-epoch records hold.
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from kd_jax.sweeps import stats

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


def drift(epochs: list[float], values: list[float]) -> float:
  """Slope of the least-squares line through (epoch, value), times the epochs it spans."""
  e, v = np.asarray(epochs, float), np.asarray(values, float)
  if e.size < 2 or e.max() == e.min():
    return 0.0
  slope = np.polyfit(e, v, 1)[0]
  return float(slope * (e.max() - e.min()))


def trial_summary(path: Path) -> dict | None:
  recs = _records(path)
  if not recs:
    return None
  last, epochs = recs[-1], recs[-1]["epoch"]
  tail = [r for r in recs if r["epoch"] >= 0.8 * epochs]
  d = _distill_split(last)
  tail_epochs = [r["epoch"] for r in tail]
  tail_test = [r["test"]["agreement"] for r in tail]
  out = {f"{s}/{m}": last[s][m] for s, m in COLUMNS}
  out.update({"distill/agreement": last[d]["agreement"], "distill/student_acc":
              last[d]["student_acc"], "test_agreement_range_last20%": max(tail_test) - min(tail_test), "epochs": epochs,
              "test_drift_last20%": drift(tail_epochs, tail_test),
              "distill_drift_last20%": drift(
                  tail_epochs, [r[_distill_split(r)]["agreement"] for r in tail]),
              "curve": {"epoch": [r["epoch"] for r in recs],
                        "test": [r["test"]["agreement"] for r in recs],
                        "distill": [r[_distill_split(r)]["agreement"] for r in recs]}})
  return out


def band(curves: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(epochs, mean, low, high) over the seeds at the epochs every seed recorded."""
  common = sorted(set.intersection(*(set(c["epoch"]) for c in curves)))
  rows = [dict(zip(c["epoch"], c[key])) for c in curves]
  mean, low, high = [], [], []
  for e in common:
    m, half, _ = stats.mean_ci([r[e] for r in rows])
    mean.append(m)
    low.append(m - half)
    high.append(m + half)
  return tuple(np.asarray(a, float) for a in (common, mean, low, high))


def plot_curves(arms: dict[str, list[dict]], path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(13, 4.4), sharex=True)
  colors = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20").colors
  for ax, key, name in zip(axes, ("test", "distill"),
                           ("test signals", "its own distillation signals (clean)")):
    for i, (arm, rows) in enumerate(sorted(arms.items())):
      e, m, lo, hi = band([r["curve"] for r in rows], key)
      ax.plot(e, m, color=colors[i % len(colors)], linestyle=("-", "--")[i // len(colors) % 2],
              label=f"{arm.split('/')[-1]} (n = {len(rows)})")
      ax.fill_between(e, lo, hi, color=colors[i % len(colors)], alpha=0.2, linewidth=0)
    ax.set_xlabel("student epoch")
    ax.set_ylabel("agreement with the teacher (%)")
    ax.set_title(f"agreement on {name}")
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
  fig.suptitle("mean and 95% CI band over seeds (Student t)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv: list[str] | None = None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("folders", nargs="+", help="sweep workdirs or committed results folders")
  ap.add_argument("--curves", type=Path, help="also draw agreement against epochs here (PNG)")
  a = ap.parse_args(argv)
  folders = a.folders
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
  print()
  print("Drift over the last 20% of epochs (fitted line; mean [95% CI] over seeds, points):")
  print()
  print("| arm | seeds | test drift | distill drift | test drift within ±0.5 |")
  print("|---|---|---|---|---|")
  for arm, rows in sorted(arms.items()):
    cells, bounds = [], []
    for k in ("test_drift_last20%", "distill_drift_last20%"):
      m, half, _ = stats.mean_ci([r[k] for r in rows])
      half = 0.0 if half != half else half  # one seed: no CI, its value
      cells.append(f"{m:+.2f} [{m - half:+.2f}, {m + half:+.2f}]" if half else f"{m:+.2f}")
      bounds.append((m - half, m + half))
    inside = -0.5 < bounds[0][0] and bounds[0][1] < 0.5   # the test drift decides
    print(f"| {arm} | {len(rows)} | " + " | ".join(cells) + f" | {'yes' if inside else 'no'} |")
  if a.curves and arms:
    plot_curves(arms, a.curves)
    print(f"wrote {a.curves}")


if __name__ == "__main__":
  main()
