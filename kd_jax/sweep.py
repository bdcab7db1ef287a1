"""A whole paper figure from one command: every arm × seed, shared teachers, a table and a plot.

    python -m kd_jax.sweep --config=configs/fig3_augmentation.py:mini --workdir=runs/fig3

A figure config is a normal experiment config whose ``sweep`` section lists its arms::

    c.sweep.arms = (
        ("baseline_t1", {"distill.temperature": 1.0}),
        ("mixup_t4", {"distill.augment": "mixup", "distill.temperature": 4.0}),
    )
    c.sweep.seeds = (0, 1, 2)
    c.sweep.paper = (("mixup_t4", {"test_agreement": 86, "test_student_acc": "≈74.5"}),)

``arms`` is a tuple of ``(arm_name, overrides)`` pairs; overrides map a dotted config key to
its value for that arm (a value for a section, e.g. ``"distill.model"``, may be a dict or a
ConfigDict). No arms = one arm named ``default``. A trial is one arm with one student seed and
runs ``kd_jax.train.run`` in ``<workdir>/<arm>/seed<k>``.

Arms whose teachers have the same ``kd_jax.config.teacher_key`` share one trained ensemble:
its size is the largest any of them asks for, and each arm distills from its own first k
members (``distill.teacher_members``). Teachers live in ``<workdir>/teachers`` unless the
config names a ``teacher.store`` (then several figures can share them).

A trial with a ``results.json`` is done and skipped, a half-done one resumes from its own
checkpoints, so a killed sweep is finished by running the same command again. After every
trial ``results.csv`` (one row per trial), ``results.md`` (one row per arm, mean ± sample std
over seeds, paper values) and ``<config name>.png`` are rewritten. A workdir whose trials ran
with different settings is refused rather than mixed into the table.

The plot is a bar per arm, or, with ``sweep.x_key`` (a numeric dotted key such as
``"distill.init.lam"``), lines over x split by ``sweep.series_key`` (e.g.
``"distill.teacher_members"``). ``sweep.metrics`` and ``sweep.paper`` use the result columns
(``test_agreement``, ``train_kl``, ``train_aug_agreement``, ...); a paper value may be a number
or a string ``"≈74.5"`` for one read off a plot.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from ml_collections import ConfigDict

from kd_jax import cache, plots
from kd_jax.config import teacher_key, to_json, validate
from kd_jax.errors import ConfigError

DEFAULT_ARM = "default"
RESULTS = "results.json"
SPLITS = ("test", "train", "train_aug")
SPLIT_METRICS = ("agreement", "student_acc", "teacher_acc", "kl", "student_ece", "teacher_ece",
                 "student_nll", "teacher_nll")
EXTRA_COLUMNS = ("wall_time_s", "teacher_members_used")
ANALYSIS_COLUMN = re.compile(r"^cka_stage\d+$")  # results.json["cka"] = {"stage1": ..., ...}
TABLE_METRICS = ("test_agreement", "test_student_acc", "test_teacher_acc", "test_kl",
                 "test_student_ece", "train_agreement", "train_aug_agreement")
# Keys that change how a trial runs or where it writes, not what it computes: a finished trial
# stays valid when they change (a bigger shared ensemble, another machine's device count).
NOT_IDENTITY = ("sweep", "teacher.store", "teacher.ensemble_size", "teacher.eval_every",
                "distill.eval_every", "run.num_devices", "run.steps_per_call",
                "run.checkpoint_every", "run.log_every", "run.eval_batch_size", "run.tensorboard")
_ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")
Hook = Callable[[str, int], None]
Stat = tuple[float, float, int]  # mean, sample std (nan for one seed), number of seeds


@dataclasses.dataclass(frozen=True)
class Trial:
  """One arm × seed: its resolved (locked, validated) config and its folder in the workdir."""
  arm: str
  seed: int
  config: ConfigDict
  path: str                 # relative to the sweep workdir
  group: str                # teacher_key: trials of one group share a trained ensemble
  x: Optional[float] = None
  series: str = ""


# ------------------------------------------------------------------------------ resolving


def known_metrics() -> tuple[str, ...]:
  return tuple(f"{s}_{m}" for s in SPLITS for m in SPLIT_METRICS) + EXTRA_COLUMNS


def _known(metric: str) -> bool:
  return metric in known_metrics() or bool(ANALYSIS_COLUMN.match(metric))


def _pairs(value: Any, field: str) -> list[tuple[str, dict]]:
  """``((name, mapping), ...)`` or ``{name: mapping}`` → list of (name, plain dict)."""
  items = value.items() if hasattr(value, "items") else value
  out = []
  for item in items:
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
            and (isinstance(item[1], Mapping) or hasattr(item[1], "items"))):
      raise ConfigError(f"{field} entry {item!r} must be a pair (name, {{dotted.key: value}})")
    out.append((item[0], dict(item[1].items())))
  return out


def arm_specs(config: ConfigDict) -> list[tuple[str, dict]]:
  """The arms as (name, overrides); checks names are unique and usable as folder names."""
  arms = _pairs(config.sweep.arms, "sweep.arms") or [(DEFAULT_ARM, {})]
  seen = set()
  for name, _ in arms:
    if not _ARM_NAME.match(name):
      raise ConfigError(f"sweep.arms name {name!r} is not allowed; use letters, digits and "
                        "_ . + = - (it names the arm's folder)")
    if name in seen:
      raise ConfigError(f"sweep.arms name {name!r} appears twice; arm names must be unique")
    seen.add(name)
  return arms


def get_dotted(config: ConfigDict, key: str) -> Any:
  node = config
  for part in key.split("."):
    if not (isinstance(node, ConfigDict) and part in node):
      raise KeyError(key)
    node = node[part]
  return node


def apply_overrides(config: ConfigDict, arm: str, overrides: Mapping) -> ConfigDict:
  """A locked copy of ``config`` with the arm's dotted overrides; unknown keys are errors."""
  c = copy.deepcopy(config)
  for key, value in overrides.items():
    key = str(key)
    if key == "seed" or key.startswith("sweep.") or key == "sweep":
      raise ConfigError(f"arm {arm!r}: override {key!r} is not allowed; seeds come from "
                        "sweep.seeds and the sweep section applies to the whole figure")
    parts = key.split(".")
    node = c
    for i, part in enumerate(parts):
      if not (isinstance(node, ConfigDict) and part in node):
        where = ".".join(parts[:i]) or "the config"
        raise ConfigError(f"arm {arm!r}: unknown config key {key!r} ({part!r} is not in {where})")
      if i < len(parts) - 1:
        node = node[part]
    leaf = parts[-1]
    if isinstance(node[leaf], ConfigDict) and hasattr(value, "items"):
      value = ConfigDict(dict(value.items()))
    try:
      node[leaf] = value
    except TypeError:
      raise ConfigError(f"arm {arm!r}: {key}={value!r} has the wrong type; the config holds a "
                        f"{type(node[leaf]).__name__} there") from None
  c.lock()
  return c


def _number(config: ConfigDict, key: str, field: str, arm: str) -> float:
  try:
    value = get_dotted(config, key)
  except KeyError:
    raise ConfigError(f"{field}={key!r} is not a config key") from None
  if not _numeric(value):
    raise ConfigError(f"{field}={key!r} must name a numeric key; arm {arm!r} has {value!r}")
  return float(value)


def _check_sweep(config: ConfigDict, arms: Sequence[str]) -> None:
  s = config.sweep
  seeds = list(s.seeds)
  if not seeds or any(isinstance(v, bool) or not isinstance(v, int) for v in seeds):
    raise ConfigError(f"sweep.seeds={tuple(seeds)!r} must be a non-empty tuple of integers")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"sweep.seeds={tuple(seeds)!r} repeats a seed")
  known = known_metrics()
  for m in s.metrics:
    if not _known(m):
      raise ConfigError(f"sweep.metrics entry {m!r} is not a result column; choose from: "
                        f"{', '.join(known)}")
  for name, values in _pairs(s.paper, "sweep.paper"):
    if name not in arms:
      raise ConfigError(f"sweep.paper names arm {name!r}, which is not in sweep.arms "
                        f"({', '.join(arms)})")
    for m, v in values.items():
      if not _known(m):
        raise ConfigError(f"sweep.paper[{name!r}] metric {m!r} is not a result column; choose "
                          f"from: {', '.join(known)}")
      if plots.paper_number(v) is None:
        raise ConfigError(f"sweep.paper[{name!r}][{m!r}]={v!r} must be a number or '≈number'")


def _validated(config: ConfigDict, arm: str) -> None:
  try:
    validate(config)
  except ConfigError as e:
    raise ConfigError(f"arm {arm!r}: {e}") from None


def resolve_arms(config: ConfigDict, workdir: Optional[str | Path] = None) -> list[Trial]:
  """Every trial of the figure, validated, in run order (all seeds of arm 1, then arm 2, ...).

  Nothing is trained here, so a figure config can be checked end to end in a second. With a
  ``workdir`` the teacher store defaults to ``<workdir>/teachers``.
  """
  arms = arm_specs(config)
  _check_sweep(config, [name for name, _ in arms])
  s = config.sweep
  resolved = []  # (arm, config with the arm's own teacher size, x, series)
  for name, overrides in arms:
    c = apply_overrides(config, name, overrides)
    _validated(c, name)
    c.distill.teacher_members = int(c.distill.teacher_members or c.teacher.ensemble_size)
    if workdir is not None and not c.teacher.store:
      c.teacher.store = str((Path(workdir) / "teachers").absolute())
    x = _number(c, s.x_key, "sweep.x_key", name) if s.x_key else None
    series = ""
    if s.series_key:
      try:
        series = f"{s.series_key.split('.')[-1]}={get_dotted(c, s.series_key)}"
      except KeyError:
        raise ConfigError(f"sweep.series_key={s.series_key!r} is not a config key") from None
    resolved.append((name, c, x, series))

  size: dict[str, int] = {}
  for _, c, _, _ in resolved:
    key = teacher_key(c)
    size[key] = max(size.get(key, 0), int(c.teacher.ensemble_size))
  trials = []
  for name, c, x, series in resolved:
    key = teacher_key(c)
    c.teacher.ensemble_size = size[key]
    _validated(c, name)
    for seed in s.seeds:
      t = copy.deepcopy(c)
      t.seed = int(seed)
      trials.append(Trial(name, int(seed), t, f"{name}/seed{seed}", key, x, series))
  return trials


def select(trials: Sequence[Trial], only: Iterable[str]) -> list[Trial]:
  """The trials of the named arms (all when ``only`` is empty); unknown names are errors."""
  only = [a.strip() for a in only if a.strip()]
  arms = list(dict.fromkeys(t.arm for t in trials))
  for a in only:
    if a not in arms:
      raise ConfigError(f"--only={a!r} is not an arm of this sweep; arms: {', '.join(arms)}")
  return [t for t in trials if not only or t.arm in only]


def teacher_groups(trials: Sequence[Trial]) -> dict[str, list[Trial]]:
  groups: dict[str, list[Trial]] = {}
  for t in trials:
    groups.setdefault(t.group, []).append(t)
  return groups


# ---------------------------------------------------------------------- consistency check


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def _identity(config_dict: dict) -> dict[str, Any]:
  flat = _flat(config_dict)
  return {k: v for k, v in flat.items()
          if not any(k == n or k.startswith(n + ".") for n in NOT_IDENTITY)}


def check_existing(trials: Sequence[Trial], workdir: Path) -> None:
  """Refuses to mix results of another config into this figure's table (or resume from them)."""
  for t in trials:
    stored = Path(workdir) / t.path / "config.json"
    if not stored.exists():
      continue
    old = _identity(json.loads(stored.read_text()))
    new = _identity(json.loads(to_json(t.config)))
    for key in sorted(old.keys() & new.keys()):
      if old[key] != new[key]:
        raise ConfigError(f"{stored.parent} was run with {key}={old[key]!r}, this sweep has "
                          f"{new[key]!r}; use another --workdir or delete that folder")


# --------------------------------------------------------------------------------- running


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  minutes = int(round(seconds / 60))
  if seconds < 90:
    return f"{int(round(seconds))}s"
  return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def run_sweep(config: ConfigDict, workdir: str | Path, *, only: Iterable[str] = (),
              hook: Optional[Hook] = None, command: str = "") -> list[dict[str, Any]]:
  """Runs the missing trials (of the ``only`` arms), writing outputs after each; returns rows."""
  from kd_jax import train  # looked up at call time: tests replace train.run

  workdir = Path(workdir)
  trials = resolve_arms(config, workdir)
  chosen = select(trials, only)
  check_existing(trials, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  n = len(chosen)
  done = sum((workdir / t.path / RESULTS).exists() for t in chosen)
  times: list[float] = []
  rows = None  # outputs written after the last trial run here already hold every finished one
  for i, t in enumerate(chosen, 1):
    where = f"trial {i}/{n} (arm {t.arm}, seed {t.seed})"
    if (workdir / t.path / RESULTS).exists():
      print(f"[sweep] {where} finished before: skipped", flush=True)
      continue
    eta = sum(times) / len(times) * (n - done) if times else math.nan
    print(f"[sweep] {where} … done {done}/{n}, ETA {_duration(eta)}", flush=True)
    t0 = time.perf_counter()
    train.run(t.config, workdir / t.path, hook=hook)
    times.append(time.perf_counter() - t0)
    done += 1
    rows = write_outputs(config, trials, workdir, command)
  if rows is None:
    rows = write_outputs(config, trials, workdir, command)
  print(f"[sweep] {done}/{n} trials done; wrote {workdir / 'results.csv'}, results.md and the plot",
        flush=True)
  return rows


# --------------------------------------------------------------------------------- outputs


def columns(config: ConfigDict, trials: Sequence[Trial], rows: Sequence[dict]) -> list[str]:
  """Fixed by the config (not by which trials finished), so partial and full tables align."""
  cols = ["arm", "seed"]
  if config.sweep.x_key:
    cols.append("x")
  if config.sweep.series_key:
    cols.append("series")
  splits = ["test", "train"]
  if any(t.config.distill.augment for t in trials):
    splits.append("train_aug")
  found = {k for r in rows for k in r}
  for split in splits:
    names = [f"{split}_{m}" for m in SPLIT_METRICS]
    cols += names + sorted(k for k in found if _split_of(k) == split and k not in names)
  cols += sorted(k for k in found if not _split_of(k) and k not in cols + list(EXTRA_COLUMNS))
  return cols + list(EXTRA_COLUMNS)


def _split_of(column: str) -> str:
  for split in ("train_aug", "test", "train"):  # train_aug before its prefix train
    if column.startswith(split + "_"):
      return split
  return ""


def trial_row(t: Trial, results: dict) -> dict[str, Any]:
  row: dict[str, Any] = {"arm": t.arm, "seed": t.seed}
  if t.x is not None:
    row["x"] = t.x
  if t.series:
    row["series"] = t.series
  for split in SPLITS:
    for k, v in (results.get(split) or {}).items():
      row[f"{split}_{k}"] = v
  for k in EXTRA_COLUMNS:
    row[k] = results.get(k)
  for k, v in results.items():  # analysis results such as {"cka": {"stage1": 0.93, ...}}
    if k not in SPLITS and isinstance(v, dict) and v and all(_numeric(x) for x in v.values()):
      row.update({f"{k}_{name}": x for name, x in v.items()})
  return row


def _numeric(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def collect_rows(trials: Sequence[Trial], workdir: Path) -> list[dict[str, Any]]:
  rows = []
  for t in trials:
    path = Path(workdir) / t.path / RESULTS
    if path.exists():
      rows.append(trial_row(t, json.loads(path.read_text())))
  return rows


def write_csv(path: Path, cols: Sequence[str], rows: Sequence[dict]) -> None:
  tmp = path.with_suffix(".csv.tmp")
  with tmp.open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(cols)
    for r in rows:
      w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])
  tmp.replace(path)


def arm_stats(rows: Sequence[dict], arm: str, cols: Iterable[str]) -> dict[str, Stat]:
  """metric → (mean, sample std (nan for one seed), n) over the arm's finished seeds."""
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


def _cell(stat: Optional[Stat], metric: str) -> str:
  if stat is None:
    return "—"
  fmt = plots.metric_format(metric)
  mean, std, _ = stat
  return fmt.format(mean) + (" ± " + fmt.format(std) if math.isfinite(std) else "")


def machine_line() -> str:
  import jax
  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  return (f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
          f"({jax.default_backend()}: {len(devices)} × {', '.join(kinds)})")


def table_metrics(config: ConfigDict, cols: Sequence[str]) -> list[str]:
  wanted = list(config.sweep.metrics) + [m for m in TABLE_METRICS if m not in config.sweep.metrics]
  wanted += [c for c in cols if ANALYSIS_COLUMN.match(c) and c not in wanted]
  return [m for m in wanted if m in cols]


def markdown(config: ConfigDict, trials: Sequence[Trial], rows: Sequence[dict], command: str,
             image: Optional[str]) -> str:
  """The table a reader wants: one row per arm, measured next to the paper's number."""
  s = config.sweep
  cols = columns(config, trials, rows)
  metrics = table_metrics(config, cols)
  paper = dict(_pairs(s.paper, "sweep.paper"))
  arms = list(dict.fromkeys(t.arm for t in trials))
  x_of = {t.arm: t.x for t in trials}
  header = ["arm"] + ([s.x_label or s.x_key] if s.x_key else []) + ["seeds"]
  header += [plots.metric_label(m) for m in metrics] + ["paper"]
  lines = [f"# {s.title or config.name}", "",
           f"- command: `{command or 'kd_jax.sweep.run_sweep'}`",
           f"- machine: {machine_line()}",
           f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
           f"- trials finished: {len(rows)}/{len(trials)}; mean ± sample std over seeds; "
           "train = the distillation data (train_aug: as augmented); ≈ = read off the paper's plot",
           "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for arm in arms:
    stats = arm_stats(rows, arm, metrics)
    n = sum(r["arm"] == arm for r in rows)
    cells = [arm] + ([f"{x_of[arm]:g}"] if s.x_key else []) + [str(n)]
    cells += [_cell(stats.get(m), m) for m in metrics]
    cells.append(", ".join(f"{plots.metric_label(m)} {v}" for m, v in paper.get(arm, {}).items())
                 or "—")
    lines.append("| " + " | ".join(cells) + " |")
  groups = teacher_groups(trials)
  lines += ["", "Teachers: " + "; ".join(
      f"{key}: {g[0].config.teacher.ensemble_size} × {g[0].config.teacher.model.name} shared by "
      f"{', '.join(dict.fromkeys(t.arm for t in g))}" for key, g in groups.items())]
  if image:
    lines += ["", f"![{config.name}]({image})"]
  return "\n".join(lines) + "\n"


def plot_name(config: ConfigDict) -> str:
  return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", config.name or "sweep") + ".png"


def write_outputs(config: ConfigDict, trials: Sequence[Trial], workdir: Path,
                  command: str = "") -> list[dict[str, Any]]:
  """results.csv, results.md and the plot from every finished trial; returns the csv rows."""
  workdir = Path(workdir)
  rows = collect_rows(trials, workdir)
  cols = columns(config, trials, rows)
  write_csv(workdir / "results.csv", cols, rows)
  paper = {arm: {m: plots.paper_number(v) for m, v in values.items()}
           for arm, values in _pairs(config.sweep.paper, "sweep.paper")}
  first = {}
  for t in trials:
    first.setdefault(t.arm, t)
  points = [plots.ArmPoint(arm, t.x, t.series, arm_stats(rows, arm, config.sweep.metrics),
                           paper.get(arm, {})) for arm, t in first.items()]
  name = plot_name(config)
  drawn = plots.plot_sweep(points, list(config.sweep.metrics), workdir / name,
                           title=config.sweep.title or config.name,
                           x_label=config.sweep.x_label or config.sweep.x_key)
  (workdir / "results.md").write_text(
      markdown(config, trials, rows, command, name if drawn else None))
  return rows


# ------------------------------------------------------------------------------ dry run


def describe(config: ConfigDict, workdir: Path, only: Iterable[str] = ()) -> str:
  """The arms, resolved trials and teacher groups, for ``--dry_run``; runs the same checks."""
  from kd_jax import checkpoints
  trials = resolve_arms(config, workdir)
  chosen = select(trials, only)
  check_existing(trials, workdir)
  lines = ["[sweep] arms:"]
  for name, overrides in arm_specs(config):
    shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items()) or "(the base config)"
    lines.append(f"  {name}: {shown}")
  lines.append(f"[sweep] {len(chosen)} trials → {workdir}")
  for i, t in enumerate(chosen, 1):
    d = Path(workdir) / t.path
    state = ("done" if (d / RESULTS).exists() else "started" if (d / "config.json").exists()
             else "to run")
    extra = f" x={t.x:g}" if t.x is not None else ""
    lines.append(f"  {i:3d}. {t.path:<28} teacher {t.group} (uses "
                 f"{t.config.distill.teacher_members}/{t.config.teacher.ensemble_size}){extra}"
                 f"  {state}")
  lines.append("[sweep] teacher groups:")
  for key, group in teacher_groups(trials).items():
    c = group[0].config
    stored = checkpoints.find_teacher(Path(c.teacher.store), key, int(c.teacher.ensemble_size))
    arms = ", ".join(dict.fromkeys(t.arm for t in group))
    lines.append(f"  {key}: {c.teacher.ensemble_size} × {c.teacher.model.name}, "
                 f"{c.teacher.epochs} epochs, store {c.teacher.store} "
                 f"({'trained' if stored else 'to train'}); arms {arms}")
  return "\n".join(lines)


# -------------------------------------------------------------------------- command line


def _define_flags():
  """Defined on first use so importing this module (tests) does not clash with kd_jax.main's."""
  from absl import flags
  from ml_collections import config_flags
  if "only" in flags.FLAGS:
    return
  config_flags.DEFINE_config_file(
      "config", None, "Figure config file, e.g. configs/fig3_augmentation.py:mini.",
      lock_config=True)
  flags.DEFINE_string("workdir", None, "Sweep folder: trials, teachers, results.csv/.md/.png.")
  flags.DEFINE_list("only", [], "Comma-separated arm names to run (default: all).")
  flags.DEFINE_bool("dry_run", False, "Print the resolved trials and teacher groups, then exit.")
  flags.mark_flags_as_required(["config", "workdir"])


def use_compile_cache(workdir: str | Path) -> None:
  """One compile cache per sweep, beside its results (see kd_jax/cache.py)."""
  cache.use_compile_cache(Path(workdir) / "jax_cache")


def command_line(argv: Sequence[str]) -> str:
  return "python -m kd_jax.sweep " + " ".join(shlex.quote(a) for a in argv[1:])


def main(argv: list[str]) -> None:
  from absl import app, flags, logging
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every file it writes; tfds warns on probes
  from kd_jax import cli
  f = flags.FLAGS
  config = cli.config_value(flags.FLAGS["config"])
  try:
    if f.dry_run:
      print(describe(config, Path(f.workdir), f.only))
      return
    use_compile_cache(f.workdir)
    run_sweep(config, f.workdir, only=f.only, command=command_line(sys.argv))
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
  from kd_jax import cli
  _define_flags()
  cli.run_app(main)


if __name__ == "__main__":
  run()
