"""What a sweep writes: ``results.csv`` (a row per trial), ``results.md`` (a row per arm, mean ±
sample std over seeds, paper values) and the figure, from every finished trial's results.json.

A column is ``"split/metric"`` (``test/agreement``, ``running/agreement``, ``cka/stage1``) or
``"run/<key>"`` for per-run numbers; labels and formats come from ``kd_jax.metrics``.
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ml_collections import ConfigDict

from kd_jax import metrics, plots
from kd_jax.experiment import RESULTS

Stat = tuple[float, float, int]  # mean, sample std (nan for one seed), number of seeds
RUN_COLUMNS = ("run/wall_time_s", "run/teacher_members_used")
#: Splits whose columns are fixed by the config (present even before any trial finished).
FIXED_SPLITS = ("test", "train", "train_aug")
TABLE_COLUMNS = ("test/agreement", "test/student_acc", "test/teacher_acc", "test/kl",
                 "test/student_ece", "train/agreement", "train_aug/agreement",
                 "running/agreement")


def known_column(column: str) -> bool:
  """``split/metric`` with a known split and metric (the names sweep.metrics may use)."""
  split, _, name = column.partition("/")
  return (split in metrics.SPLITS and name in metrics.METRICS) or column in RUN_COLUMNS


def known_columns() -> list[str]:
  return ([f"{s}/{m}" for s in FIXED_SPLITS for m in metrics.SPLIT_METRICS]
          + ["running/agreement", "running/loss", "cka/stage1", "cka/stage2", "cka/stage3"]
          + list(RUN_COLUMNS))


def trial_row(arm: str, seed: int, x: Optional[float], series: str,
              results: dict) -> dict[str, Any]:
  row: dict[str, Any] = {"arm": arm, "seed": seed}
  if x is not None:
    row["x"] = x
  if series:
    row["series"] = series
  for split, values in results["splits"].items():
    row.update({f"{split}/{name}": v for name, v in values.items()})
  row["run/wall_time_s"] = results.get("wall_time_s")
  row["run/teacher_members_used"] = results["teacher"]["members_used"]
  return row


def collect_rows(trials: Sequence[Any], workdir: Path) -> list[dict[str, Any]]:
  rows = []
  for t in trials:
    path = Path(workdir) / t.path / RESULTS
    if path.exists():
      rows.append(trial_row(t.arm, t.seed, t.x, t.series, json.loads(path.read_text())))
  return rows


def columns(sweep: ConfigDict, trials: Sequence[Any], rows: Sequence[dict]) -> list[str]:
  """Fixed by the config (not by which trials finished), so partial and full tables align."""
  cols = ["arm", "seed"] + (["x"] if sweep.x_key else []) + (["series"] if sweep.series_key else [])
  splits = ["test", "train"] + (["train_aug"] if any(t.config.distill.augment for t in trials)
                                else [])
  found = [k for r in rows for k in r if "/" in k and k not in RUN_COLUMNS]
  for split in splits:
    names = [f"{split}/{m}" for m in metrics.SPLIT_METRICS]
    cols += names + sorted({k for k in found if k.split("/")[0] == split} - set(names))
  cols += sorted(set(found) - set(cols))
  return cols + list(RUN_COLUMNS)


def write_csv(path: Path, cols: Sequence[str], rows: Sequence[dict]) -> None:
  tmp = path.with_suffix(".csv.tmp")
  with tmp.open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(cols)
    for r in rows:
      w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
  tmp.replace(path)


def arm_stats(rows: Sequence[dict], arm: str, cols: Iterable[str]) -> dict[str, Stat]:
  """column → (mean, sample std (nan for one seed), n) over the arm's finished seeds."""
  out = {}
  for c in cols:
    vals = [float(r[c]) for r in rows if r["arm"] == arm and r.get(c) not in (None, "")]
    vals = [v for v in vals if not math.isnan(v)]
    if not vals:
      continue
    mean = sum(vals) / len(vals)
    std = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
           if len(vals) > 1 else math.nan)
    out[c] = (mean, std, len(vals))
  return out


def _cell(stat: Optional[Stat], column: str) -> str:
  if stat is None:
    return "—"
  fmt = plots.metric_format(column)
  mean, std, _ = stat
  return fmt.format(mean) + (" ± " + fmt.format(std) if math.isfinite(std) else "")


def machine_line() -> str:
  import jax
  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  return (f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
          f"({jax.default_backend()}: {len(devices)} × {', '.join(kinds)})")


def git_commit() -> str:
  """The commit of the kd_jax checkout that produced a table ('' outside a git checkout)."""
  import subprocess
  root = Path(__file__).resolve().parents[1]
  try:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=10)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "kd_jax",
                            "configs"], capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return ""
  if out.returncode:
    return ""
  return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def table_columns(sweep: ConfigDict, cols: Sequence[str]) -> list[str]:
  wanted = list(sweep.metrics) + [m for m in TABLE_COLUMNS if m not in sweep.metrics]
  wanted += [c for c in cols if c.startswith("cka/") and c not in wanted]
  return [m for m in wanted if m in cols]


def pairs(value: Any) -> list[tuple[str, dict]]:
  items = value.items() if hasattr(value, "items") else value
  return [(name, dict(v.items())) for name, v in items]


def markdown(name: str, sweep: ConfigDict, trials: Sequence[Any], rows: Sequence[dict],
             command: str, image: Optional[str], commit: Optional[str] = None) -> str:
  """The table a reader wants: one row per arm, measured next to the paper's number."""
  cols = columns(sweep, trials, rows)
  shown = table_columns(sweep, cols)
  paper = dict(pairs(sweep.paper))
  arms = list(dict.fromkeys(t.arm for t in trials))
  x_of = {t.arm: t.x for t in trials}
  header = ["arm"] + ([sweep.x_label or sweep.x_key] if sweep.x_key else []) + ["seeds"]
  header += [plots.metric_label(m) for m in shown] + ["paper"]
  commit = git_commit() if commit is None else commit
  lines = [f"# {sweep.title or name}", "",
           f"- command: `{command or 'kd_jax.sweep.run_sweep'}`",
           f"- machine: {machine_line()}",
           f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
           *([f"- kd_jax commit: {commit}"] if commit else []),
           f"- trials finished: {len(rows)}/{len(trials)}; mean ± sample std over seeds; "
           "train = the distillation data, eval mode (train (augmented): as augmented; train "
           "(running): train mode during the last epoch, the official code's number); "
           "≈ = read off the paper's plot",
           "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for arm in arms:
    stats = arm_stats(rows, arm, shown)
    n = sum(r["arm"] == arm for r in rows)
    cells = [arm] + ([f"{x_of[arm]:g}"] if sweep.x_key else []) + [str(n)]
    cells += [_cell(stats.get(m), m) for m in shown]
    cells.append(", ".join(f"{plots.metric_label(m)} {v}" for m, v in paper.get(arm, {}).items())
                 or "—")
    lines.append("| " + " | ".join(cells) + " |")
  groups: dict[str, list] = {}
  for t in trials:
    groups.setdefault(t.group, []).append(t)
  lines += ["", "Teachers: " + "; ".join(
      f"{key}: {g[0].config.teacher.ensemble_size} × {g[0].config.teacher.model.name} shared by "
      f"{', '.join(dict.fromkeys(t.arm for t in g))}" for key, g in groups.items())]
  if image:
    lines += ["", f"![{name}]({image})"]
  return "\n".join(lines) + "\n"


def plot_name(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name or "sweep") + ".png"


def write_outputs(name: str, sweep: ConfigDict, trials: Sequence[Any], workdir: Path,
                  command: str = "", commit: Optional[str] = None) -> list[dict[str, Any]]:
  """results.csv, results.md and the plot from every finished trial; returns the csv rows.

  ``commit``: the kd_jax commit the trials ran with (read when the sweep started; None = now).
  """
  workdir = Path(workdir)
  rows = collect_rows(trials, workdir)
  write_csv(workdir / "results.csv", columns(sweep, trials, rows), rows)
  paper = {arm: {m: plots.paper_number(v) for m, v in values.items()}
           for arm, values in pairs(sweep.paper)}
  first: dict[str, Any] = {}
  for t in trials:
    first.setdefault(t.arm, t)
  points = [plots.ArmPoint(arm, t.x, t.series, arm_stats(rows, arm, sweep.metrics),
                           paper.get(arm, {})) for arm, t in first.items()]
  image = plot_name(name)
  drawn = plots.plot_sweep(points, list(sweep.metrics), workdir / image,
                           title=sweep.title or name, x_label=sweep.x_label or sweep.x_key)
  (workdir / "results.md").write_text(
      markdown(name, sweep, trials, rows, command, image if drawn else None, commit))
  return rows
