"""What a sweep writes: ``results.csv`` (a row per trial), ``results.md`` (a row per arm, mean ±
95% CI over seeds, paper values; each arm's difference from the reference arm) and the figure,
from every finished trial's results.json.

A column is ``"split/metric"`` (``test/agreement``, ``running/agreement``, ``cka/stage1``) or
``"run/<key>"`` for per-run numbers; labels and formats come from ``kd_jax.kd.metrics``.
"""
from __future__ import annotations

import csv
import datetime
import gzip
import json
import math
import os
import platform
import re
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ml_collections import ConfigDict

from kd_jax.core import atomic
from kd_jax.kd import metrics
from kd_jax.sweeps import compare, gap_plot, origin, plots, stats
from kd_jax.runner.experiment import RESULTS

Stat = tuple[float, float, int]  # mean, 95% CI half-width (nan for one seed), number of seeds
TABLE_COLUMNS = ("test/agreement", "test/student_acc", "test/teacher_acc", "test/kl",
                 "test/student_ece", "distill/agreement", "distill_aug/agreement",
                 "running/agreement")


def trial_row(arm: str, seed: int, x: Optional[float], series: str,
              results: dict, where: str = "") -> dict[str, Any]:
  """A results.csv row of one trial's results.json (``where``: its path, named when it uses
  the old split names)."""
  row: dict[str, Any] = {"arm": arm, "seed": seed}
  if x is not None:
    row["x"] = x
  if series:
    row["series"] = series
  for split, values in metrics.current_results(results, where)["splits"].items():
    row.update({f"{split}/{name}": v for name, v in values.items()})
  if results.get("diverged"):
    row["diverged"] = True
  row["run/wall_time_s"] = results.get("wall_time_s")
  row["run/teacher_members_used"] = results["teacher"]["members_used"]
  row.update(origin.row_fields(results.get("provenance")))
  return row


def running_from_metrics(trial_dir: Path) -> Optional[dict[str, float]]:
  """The last epoch's running metrics in a trial's ``metrics.jsonl`` (or its collected
  ``.gz``): exactly what the ``running`` evaluator copies into results.json, since both read
  the record of the final epoch (of the polish phase when there is one). None without one."""
  plain, packed = Path(trial_dir) / "metrics.jsonl", Path(trial_dir) / "metrics.jsonl.gz"
  if plain.is_file():
    lines = plain.read_text().splitlines()
  elif packed.is_file():
    with gzip.open(packed, "rt") as f:
      lines = f.read().splitlines()
  else:
    return None
  last = None
  for line in lines:
    record = json.loads(line) if line.strip() else {}
    if record.get("phase") in ("distill", "polish") and "running" in record:
      last = record["running"]
  return last


def _with_running(results: dict, trial: Any, trial_dir: Path) -> dict:
  """``results`` with the running split its config asks for, read from its metrics.jsonl when
  the run finished before ``distill.evals`` named ``running`` (evaluations are not part of a
  run's identity, so such a trial stays finished and valid)."""
  splits = results.get("splits")
  wanted = "running" in tuple(trial.config.distill.get("evals", ()))
  if not wanted or not isinstance(splits, dict) or "running" in splits or results.get("diverged"):
    return results
  running = running_from_metrics(trial_dir)
  return results if running is None else dict(results, splits={**splits, "running": running})


def collect_rows(trials: Sequence[Any], workdir: Path) -> list[dict[str, Any]]:
  """A row per finished trial, grouped by arm (in the sweep's arm order), then by seed."""
  order = {a: i for i, a in enumerate(dict.fromkeys(t.arm for t in trials))}
  found = ((t, Path(workdir) / t.path / RESULTS)
           for t in sorted(trials, key=lambda t: (order[t.arm], t.seed)))
  return [trial_row(t.arm, t.seed, t.x, t.series,
                    _with_running(json.loads(p.read_text()), t, p.parent), str(p))
          for t, p in found if p.exists()]


def columns(sweep: ConfigDict, trials: Sequence[Any], rows: Sequence[dict]) -> list[str]:
  """Fixed by the config (not by which trials finished), so partial and full tables align."""
  cols = ["arm", "seed"] + (["x"] if sweep.x_key else []) + (["series"] if sweep.series_key else [])
  splits = ["test", "distill"] + (["distill_aug"] if any(t.config.distill.augment for t in trials)
                                else [])
  found = [k for r in rows for k in r if "/" in k and k not in metrics.RUN_COLUMNS]
  for split in splits:
    names = [f"{split}/{m}" for m in metrics.SPLIT_METRICS]
    cols += names + sorted({k for k in found if k.split("/")[0] == split} - set(names))
  cols += sorted(set(found) - set(cols))
  return (cols + list(metrics.RUN_COLUMNS)
          + [c for c in origin.COLUMNS if any(c in r for r in rows)])


#: Significant digits of a CSV number: more than any metric is measured to (agreement on
#: 10k images moves in steps of 0.01), fewer than float noise (57.199999999999996).
CSV_DIGITS = 6


def csv_value(value: Any) -> Any:
  """A CSV cell: floats to :data:`CSV_DIGITS` significant digits, None as empty."""
  if value is None:
    return ""
  if isinstance(value, float) and math.isfinite(value):
    return float(f"{value:.{CSV_DIGITS}g}")
  return value


def write_csv(path: Path, cols: Sequence[str], rows: Sequence[dict]) -> None:
  with atomic.replacing(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(cols)
    for r in rows:
      w.writerow([csv_value(r.get(c)) for c in cols])


def seed_values(rows: Sequence[dict], arm: str, cols: Iterable[str]) -> dict[str, list[float]]:
  """column → the finished seeds' values of one arm (what a plot draws as points)."""
  out: dict[str, list[float]] = {}
  for c in cols:
    vals = [float(r[c]) for r in rows if r["arm"] == arm and r.get(c) not in (None, "")]
    vals = [v for v in vals if not math.isnan(v)]
    if vals:
      out[c] = vals
  return out


def arm_stats(rows: Sequence[dict], arm: str, cols: Iterable[str]) -> dict[str, Stat]:
  """column → (mean, half-width of its 95% CI (Student t; nan for one seed), n) over the
  arm's finished seeds."""
  return {c: stats.mean_ci(vals) for c, vals in seed_values(rows, arm, cols).items()}


def _cell(stat: Optional[Stat], column: str) -> str:
  if stat is None:
    return "—"
  fmt = plots.metric_format(column)
  mean, half, _ = stat
  shown = fmt.format(mean)
  if shown.startswith("-") and not shown.strip("-0.e+"):
    shown = shown[1:]  # a KL of -1e-9 (float rounding) is shown as 0, not "-0.0000"
  return shown + (" ± " + fmt.format(half) if math.isfinite(half) else "")


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
  """The results.md columns: the figure's metrics, then (``sweep.table="all"``) the usual
  fidelity columns its trials measured; results.csv keeps every column either way."""
  if sweep.get("table", "all") == "metrics":
    return [m for m in sweep.metrics if m in cols]
  wanted = list(sweep.metrics) + [m for m in TABLE_COLUMNS if m not in sweep.metrics]
  wanted += [c for c in cols if c.startswith("cka/") and c not in wanted]
  return [m for m in wanted if m in cols]


def pairs(value: Any) -> list[tuple[str, dict]]:
  items = value.items() if hasattr(value, "items") else value
  return [(name, dict(v.items())) for name, v in items]


def provenance(command: str, commit: Optional[str] = None) -> list[str]:
  """The command, machine, date and commit lines of a results.md written now; ``commit`` is the
  one the trials ran with (read when the sweep started; None = the checkout now)."""
  commit = git_commit() if commit is None else commit
  return [f"- command: `{command or 'kd_jax.sweeps.sweep.run_sweep'}`",
          f"- machine: {machine_line()}",
          f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
          *([f"- kd_jax commit: {commit}"] if commit else [])]


def finished_line(trials: Sequence[Any], rows: Sequence[dict],
                  asked: Optional[Sequence[Any]]) -> str:
  """"5/5", or under --only "2/2 asked (of 5)": the count of the trials this command ran."""
  done = {(r["arm"], int(r["seed"])) for r in rows}
  if asked is None or len(asked) == len(trials):
    return f"{len(done)}/{len(trials)}"
  mine = sum((t.arm, t.seed) in done for t in asked)
  return f"{mine}/{len(asked)} asked (of {len(trials)}; {len(done)} finished in all)"


def teachers_line(trials: Sequence[Any]) -> str:
  groups: dict[str, list] = {}
  for t in trials:
    groups.setdefault(t.group, []).append(t)
  return "Teachers: " + "; ".join(
      f"{key}: {g[0].config.teacher.ensemble_size} × {g[0].config.teacher.model.name} shared by "
      f"{', '.join(dict.fromkeys(t.arm for t in g))}" for key, g in groups.items())


def markdown(name: str, sweep: ConfigDict, trials: Sequence[Any], rows: Sequence[dict],
             command: str, image: Optional[str], *, asked: Optional[Sequence[Any]] = None,
             header: Optional[list[str]] = None, teachers: str = "",
             commit: Optional[str] = None, gap_image: Optional[str] = None) -> str:
  """The table a reader wants: one row per arm, measured next to the paper's number.

  ``header`` and ``teachers`` replace the command/machine/date lines and the teacher keys (a
  table rebuilt from an old CSV keeps those of the run that measured it)."""
  cols = columns(sweep, trials, rows)
  # An extra column no trial measured (an evaluation these trials did not run) is only noise.
  shown = [m for m in table_columns(sweep, cols) if m in sweep.metrics or _measured_in(rows, m)]
  paper = dict(pairs(sweep.paper))
  arms = list(dict.fromkeys(t.arm for t in trials))
  x_of = {t.arm: t.x for t in trials}
  columns_head = ["arm"] + ([sweep.x_label or sweep.x_key] if sweep.x_key else []) + ["seeds"]
  setting = sweep.get("paper_setting", "") or sweep.get("paper_dataset", "")
  paper_head = f"paper ({setting})" if setting else "paper"
  columns_head += [plots.metric_label(m) for m in shown] + [paper_head]
  if header is None:
    header = (origin.header(command, rows) if origin.has_provenance(rows)
              else provenance(command, commit))
  lines = [f"# {sweep.title or name}", "",
           *header,
           f"- trials finished: {finished_line(trials, rows, asked)}; a cell is mean ± the "
           "half-width of its 95% confidence interval over the seeds (Student t, n − 1 df; "
           "one seed: its value); distill = the distillation data in eval mode, clean; "
           "distill (augmented): eval mode, as augmented; distill (running): train mode, the "
           "batches as trained in the last epoch (the official code's \"train agreement\"); "
           "≈ = read off the paper's plot",
           "", "| " + " | ".join(columns_head) + " |", "|" + "---|" * len(columns_head)]
  for arm in arms:
    stats = arm_stats(rows, arm, shown)
    n = sum(r["arm"] == arm for r in rows)
    cells = [arm] + ([f"{x_of[arm]:g}"] if sweep.x_key else []) + [str(n)]
    cells += [_cell(stats.get(m), m) for m in shown]
    cells.append(", ".join(f"{plots.metric_label(m)} {v}" for m, v in paper.get(arm, {}).items())
                 or "—")
    lines.append("| " + " | ".join(cells) + " |")
  lines += _comparisons(sweep, arms, rows)
  if gap_image:
    lines += ["", f"![{name} gap]({gap_image})"]
  diverged = [f"{r['arm']}/seed{r['seed']}" for r in rows if r.get("diverged")]
  if diverged:  # finished without numbers (sweep.diverged="record"): not in any mean above
    lines += ["", f"Diverged (a non-finite loss; no numbers, in no mean above): "
              f"{', '.join(diverged)}."]
  lines += ["", teachers or teachers_line(trials)]
  if image:
    lines += ["", f"![{name}]({image})"]
  return "\n".join(lines) + "\n"


def _measured_in(rows: Sequence[dict], column: str) -> bool:
  """Whether any finished trial has a value in ``column``."""
  return any(r.get(column) not in (None, "") for r in rows)


def _measured(sweep: ConfigDict, arms: Sequence[str], rows: Sequence[dict]):
  """(measured metric columns, arm → column → seed values, the reference arm, sweep.gap's
  measured (column, top) pairs): what the comparisons below the table are made of."""
  cols = [m for m in sweep.metrics if _measured_in(rows, m)]
  values = {arm: seed_values(rows, arm, cols) for arm in arms}
  reference = compare.reference_arm(sweep.get("reference_arm", ""), arms)
  return cols, values, reference, [(c, top) for c, top in sweep.get("gap", ()) if c in cols]


def _comparisons(sweep: ConfigDict, arms: Sequence[str], rows: Sequence[dict]) -> list[str]:
  """Under the table: arms whose seeds split in two, and differences from the reference arm."""
  cols, values, reference, gaps = _measured(sweep, arms, rows)
  out = []
  reached = [(c, level) for c, level in sweep.get("reached", ()) if c in cols]
  for block in (compare.two_mode_lines(arms, cols, values),
                compare.difference_lines(arms, reference, cols, values),
                compare.gap_lines(arms, reference, gaps, values),
                compare.reached_lines(arms, reached, values)):
    out += [""] + block if block else []
  return out


def plot_name(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name or "sweep") + ".png"


def write_outputs(name: str, sweep: ConfigDict, trials: Sequence[Any], workdir: Path,
                  command: str = "", asked: Optional[Sequence[Any]] = None,
                  commit: Optional[str] = None) -> list[dict[str, Any]]:
  """results.csv, results.md and the plot from every finished trial; returns the csv rows.

  ``asked``: the trials this command was asked to run (``--only``), when not all of them;
  ``commit``: the kd_jax commit the trials ran with (read when the sweep started)."""
  workdir = Path(workdir)
  rows = collect_rows(trials, workdir)
  write_csv(workdir / "results.csv", columns(sweep, trials, rows), rows)
  draw_and_tabulate(name, sweep, trials, rows, workdir, command=command, asked=asked,
                    commit=commit)
  return rows


def draw_and_tabulate(name: str, sweep: ConfigDict, trials: Sequence[Any],
                      rows: Sequence[dict], out: Path, *, command: str = "",
                      asked: Optional[Sequence[Any]] = None,
                      header: Optional[list[str]] = None, teachers: str = "",
                      commit: Optional[str] = None) -> None:
  """The plot and results.md of ``rows`` (one dict per finished trial, columns split/metric)."""
  paper = {arm: {m: plots.paper_number(v) for m, v in values.items()}
           for arm, values in pairs(sweep.paper)}
  first: dict[str, Any] = {}
  for t in trials:
    first.setdefault(t.arm, t)
  points = [plots.ArmPoint(arm, t.x, t.series, arm_stats(rows, arm, sweep.metrics),
                           paper.get(arm, {}), seed_values(rows, arm, sweep.metrics))
            for arm, t in first.items()]
  image = plot_name(name)
  drawn = plots.plot_sweep(points, list(sweep.metrics), Path(out) / image,
                           title=sweep.title or name, x_label=sweep.x_label or sweep.x_key,
                           paper_dataset=sweep.get("paper_dataset", ""),
                           paper_setting=sweep.get("paper_setting", ""))
  arms = list(first)
  _, values, reference, gaps = _measured(sweep, arms, rows)
  gap_image = plot_name(f"{name}_gap")
  gap_drawn = gap_plot.plot_gaps(compare.gap_fractions(arms, reference, gaps, values), reference,
                                 Path(out) / gap_image, title=f"{sweep.title or name}: the gap")
  atomic.write_text(
      Path(out) / "results.md",
      markdown(name, sweep, trials, rows, command, image if drawn else None, asked=asked,
               commit=commit, header=header, teachers=teachers,
               gap_image=gap_image if gap_drawn else None))


# ------------------------------------------------------------------ rebuilding from a results.csv

#: Columns of CSVs written before results were nested by split (``test_agreement``).
OLD_RUN_COLUMNS = {"wall_time_s": "run/wall_time_s",
                   "teacher_members_used": "run/teacher_members_used"}
_PLAIN = ("arm", "seed", "x", "series") + origin.COLUMNS


def new_column(old: str, where: str = "") -> str:
  """``test_agreement`` → ``test/agreement``, ``train_aug_kl`` → ``distill_aug/kl``,
  ``train/kl`` → ``distill/kl``; current names and the plain columns stay as they are."""
  if "/" in old or old in _PLAIN:
    return metrics.current_column(old, where)
  if old in OLD_RUN_COLUMNS:
    return OLD_RUN_COLUMNS[old]
  splits = list(metrics.SPLITS) + list(metrics.LEGACY_SPLITS)
  for split in sorted(splits, key=len, reverse=True):  # train_aug before train
    if old.startswith(split + "_"):
      return metrics.current_column(f"{split}/{old[len(split) + 1:]}", where)
  return old


def read_csv(path: Path) -> list[dict[str, Any]]:
  """The rows of a results.csv (old or new column names) as :func:`trial_row` makes them."""
  with Path(path).open(newline="") as f:
    raw = list(csv.DictReader(f))
  rows = []
  for r in raw:
    row: dict[str, Any] = {}
    for k, v in r.items():
      key = new_column(k, str(path))
      if key in ("arm", "series") + origin.COLUMNS:
        row[key] = v
      elif key == "seed":
        row[key] = int(v)
      else:
        row[key] = float(v) if v not in ("", None) else None
    rows.append(row)
  return rows
