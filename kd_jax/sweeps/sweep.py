"""A whole paper figure from one command: every arm × seed, shared teachers, a table and a plot.

    python -m kd_jax.sweep --config=configs/fig3_augmentation.py:mini --workdir=runs/fig3

Without ``--workdir`` the sweep goes to ``runs/<config name>`` (and says so);
``--dry_run`` prints the trials, teacher groups and a time estimate and checks that every
dataset the trials read is there, without training anything; a real run checks the data too,
before its first trial (``kd_jax.data.check``).

A figure file gives the trial and, apart from it, the sweep: ``get_config(arg)`` returns the
base experiment config (what ``kd_jax.main`` would run) and ``get_sweep(arg)`` the arms, seeds,
plot and paper values (``kd_jax.config.sweep_config``)::

    s.arms = (
        ("baseline_t1", {"distill.temperature": 1.0}),
        ("mixup_t4", {"distill.augment": "mixup", "distill.temperature": 4.0}),
    )
    s.seeds = (0, 1, 2)
    s.paper = (("mixup_t4", {"test/agreement": 86, "test/student_acc": "≈74.5"}),)

``arms`` is a tuple of ``(arm_name, overrides)`` pairs; overrides map a dotted config key to
its value for that arm (a value for a section, e.g. ``"distill.model"``, may be a dict or a
ConfigDict). No arms = one arm named ``default``; a file without ``get_sweep`` is one arm with
one seed. A trial is one arm with one student seed and runs ``kd_jax.runner.experiment.run`` in
``<workdir>/<arm>/seed<k>``.

Arms whose teachers have the same ``kd_jax.runner.identity.teacher_key`` share one trained ensemble:
its size is the largest any of them asks for, and each arm distills from its own first k
members (``distill.teacher_members``). Teachers live in ``<workdir>/teachers`` unless the
config names a ``teacher.store`` (then several figures can share them).

Trials run one after another in this process by default; ``--launcher=submitit`` runs them as
parallel jobs on a SLURM cluster or as local processes (``kd_jax.sweeps.launchers``), teachers first.
A trial with a ``results.json`` is done and skipped, a half-done one resumes from its own
checkpoints, so a killed sweep is finished by running the same command again. After every
trial the outputs of ``kd_jax.sweeps.report`` are rewritten. A workdir whose trials ran with
different settings is refused rather than mixed into the table.

The plot is a bar per arm, or, with ``x_key`` (a numeric dotted key such as
``"distill.init.lam"``), lines over x split by ``series_key`` (e.g.
``"distill.teacher_members"``). ``metrics`` and ``paper`` name result columns ``"split/metric"``
(``test/agreement``, ``distill/kl``, ``running/agreement``, ``cka/stage1``); a paper value may be a
number or a string ``"≈74.5"`` for one read off a plot.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from ml_collections import ConfigDict

from kd_jax.core import budget, cache
from kd_jax.core.errors import ConfigError, OutOfTime, TrainingDiverged
from kd_jax.sweeps import launchers, rebuild, report as sweep_report
from kd_jax import config_files
from kd_jax.runner import estimate
from kd_jax.runner.experiment import RESULTS
from kd_jax.train.writer import format_duration
from kd_jax.train.trainer import Hook
from kd_jax.sweeps.trials import (Trial, arm_specs, check_existing, resolve_arms, select,
                                  teacher_groups)

# --------------------------------------------------------------------------------- running


def run_sweep(config: ConfigDict, sweep: ConfigDict, workdir: str | Path, *,
              only: Iterable[str] = (), hook: Optional[Hook] = None, command: str = "",
              launch: Optional[launchers.LaunchOptions] = None) -> list[dict[str, Any]]:
  """Runs the missing trials (of the ``only`` arms), writing outputs after each; returns rows.

  Trials run one after another in this process, or with ``launch`` as submitit jobs
  (``kd_jax.sweeps.launchers``), teachers first.
  """
  commit = sweep_report.git_commit()  # the code this process runs, not what is checked out later
  workdir = Path(workdir) if launch is None else Path(workdir).absolute()
  trials = resolve_arms(config, sweep, workdir)
  chosen = select(trials, only)
  check_existing(trials, workdir)
  check_data(chosen, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  _record_command(workdir, command)
  if launch is not None:
    return launchers.run_submitit(config.name, sweep, trials, chosen, workdir, launch,
                                  command=command, hook=hook)
  _announce(trials, chosen, workdir)
  return _run_here(config.name, sweep, trials, chosen, workdir, hook, command, commit)


def _run_here(name: str, sweep: ConfigDict, trials: list[Trial], chosen: list[Trial],
              workdir: Path, hook: Optional[Hook], command: str,
              commit: str) -> list[dict[str, Any]]:
  """The chosen trials one after another in this process; ``name``: the figure's config name."""
  from kd_jax.runner import experiment  # looked up at call time: tests replace experiment.run

  n = len(chosen)
  done = sum((workdir / t.path / RESULTS).exists() for t in chosen)
  times: list[float] = []
  rows = None  # outputs written after the last trial run here already hold every finished one
  for i, t in enumerate(chosen, 1):
    where = f"trial {i}/{n} (arm {t.arm}, seed {t.seed})"
    if (workdir / t.path / RESULTS).exists():
      print(f"[sweep] {where} finished before: skipped", flush=True)
      continue
    try:
      budget.before_trial()
    except budget.TimeUp:
      raise OutOfTime("the sweep", done, n, done, "trial") from None
    eta = sum(times) / len(times) * (n - done) if times else math.nan
    print(f"[sweep] {where} … done {done}/{n}, ETA {format_duration(eta)}", flush=True)
    t0 = time.perf_counter()
    try:
      experiment.run(t.config, workdir / t.path, hook=hook)
    except TrainingDiverged as e:
      if sweep.get("diverged", "stop") != "record":
        raise
      record_diverged(t, workdir / t.path, e)
      print(f"[sweep] {where} diverged ({e}); recorded, the sweep goes on", flush=True)
    times.append(time.perf_counter() - t0)
    done += 1
    rows = _outputs(name, sweep, trials, workdir, command, chosen, commit)
  if rows is None:
    rows = _outputs(name, sweep, trials, workdir, command, chosen, commit)
  print(f"[sweep] {done}/{n} trials done; wrote {workdir / 'results.csv'}, results.md and the plot",
        flush=True)
  return rows


def record_diverged(t: Trial, trial_dir: Path, error: Exception) -> None:
  """A diverged trial's results.json: no numbers, the error, its provenance (it is finished:
  a rerun would diverge the same way)."""
  from kd_jax.core import atomic, provenance
  c = t.config
  trial_dir.mkdir(parents=True, exist_ok=True)
  res = {"name": c.name, "splits": {}, "diverged": str(error), "wall_time_s": None,
         "teacher": {"members_used": int(c.distill.teacher_members or c.teacher.ensemble_size)},
         "provenance": provenance.record(trial_dir)}
  atomic.write_json(trial_dir / RESULTS, res)


# ------------------------------------------------------------------------------ dry run


def describe(trials: list[Trial], sweep: ConfigDict, workdir: Path,
             only: Iterable[str] = ()) -> str:
  """The arms, resolved trials (``resolve_arms``) and teacher groups, for ``--dry_run``; runs
  the same checks as a sweep."""
  from kd_jax.runner.identity import find_teacher
  chosen = select(trials, only)
  check_existing(trials, workdir)
  lines = ["[sweep] arms:"]
  for name, overrides in arm_specs(sweep):
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
    stored = find_teacher(Path(c.teacher.store), c.data, c.teacher, int(c.teacher.ensemble_size),
                          missing_ok=True)
    arms = ", ".join(dict.fromkeys(t.arm for t in group))
    lines.append(f"  {key}: {c.teacher.ensemble_size} × {c.teacher.model.name}, "
                 f"{c.teacher.epochs} epochs, store {c.teacher.store} "
                 f"({'trained' if stored else 'to train'}); arms {arms}")
  backend, devices = estimate.backend_devices()
  secs = estimate.seconds(_work(trials, chosen, workdir), backend, devices)
  lines.append("[sweep] estimate for what is left: "
               + (f"{estimate.hours(secs)} on {devices} × {backend}: "
                  f"{estimate.basis(backend)}"
                  if secs is not None and backend in estimate.BASIS
                  else "none (a model or data size not in kd_jax/runner/estimate.py)"))
  return "\n".join(lines)


def missing_data(trials: list[Trial], workdir: Path, only: Iterable[str] = ()) -> list[str]:
  """One line per data source the chosen trials (of ``resolve_arms``) read that is not there
  (with its fix)."""
  return _missing(select(trials, only), workdir)


def _missing(chosen, workdir: Path) -> list[str]:
  from kd_jax.data import check
  lines: dict[str, None] = {}
  for t in chosen:
    if not (Path(workdir) / t.path / RESULTS).exists():  # a finished trial reads nothing
      for line in check.missing(t.config.data):
        lines.setdefault(line)
  return list(lines)


def check_data(chosen, workdir: Path) -> None:
  """Before any training: a source that a later trial reads and is missing stops the sweep now,
  not hours in (--dry_run lists every one)."""
  missing = _missing(chosen, workdir)
  if missing:
    more = f" (and {len(missing) - 1} more: --dry_run lists them)" if len(missing) > 1 else ""
    raise ConfigError(missing[0] + more)


def _work(trials, chosen, workdir: Path) -> list:
  """The training left: teachers not in their store (once per group, at the group's size)
  and the chosen trials without results."""
  left = [t for t in chosen if not (workdir / t.path / RESULTS).exists()]
  needed = {t.group for t in left}
  work = []
  for key, group in teacher_groups(trials).items():
    c = group[0].config
    if key in needed and not estimate.teacher_stored(c.data, c.teacher, workdir / group[0].path):
      work.append(estimate.teacher_work(c.data, c.teacher))
  return work + [estimate.student_work(t.config.data, t.config.teacher, t.config.distill)
                 for t in left]


def _announce(trials, chosen, workdir: Path) -> None:
  """Where the trials run, and a warning first when what is left looks long."""
  from kd_jax.core import distributed
  if not distributed.is_primary():
    return
  print(estimate.describe_devices(), flush=True)
  backend, devices = estimate.backend_devices()
  line = estimate.warning(estimate.seconds(_work(trials, chosen, workdir), backend, devices),
                          backend, devices, what="this sweep")
  if line:
    print(line, flush=True)


def figure_arms(spec: str | Path) -> int:
  """How many arms the file ``path[:arg]`` declares in ``get_sweep`` (0: none)."""
  if not config_files.has_sweep(spec):
    return 0
  return len(arm_specs(config_files.load_sweep(spec)))


def _outputs(name: str, sweep: ConfigDict, trials, workdir: Path, command: str,
             chosen, commit: str) -> list[dict[str, Any]]:
  """Table, CSV and plot after a trial; on many hosts process 0 writes them, the others only
  read the rows back."""
  from kd_jax.core import distributed
  rows = None
  if distributed.is_primary():
    rows = sweep_report.write_outputs(name, sweep, trials, workdir, command, chosen, commit)
  distributed.barrier("kd_jax.sweeps.sweep.outputs")
  return rows if rows is not None else sweep_report.collect_rows(trials, workdir)


def _record_command(workdir: Path, command: str) -> None:
  """``<workdir>/sweep.json``: the command, for ``sweep_report --collect`` (which rebuilds the
  trial list from it); process 0 writes it on many hosts."""
  from kd_jax.core import atomic, distributed
  if command and distributed.is_primary():
    atomic.write_text(workdir / rebuild.SWEEP_FILE, json.dumps({"command": command}) + "\n")


def default_workdir(name: str) -> Path:
  """``runs/<config name>``."""
  return Path("runs") / name


def use_compile_cache(workdir: str | Path) -> None:
  """One compile cache per sweep, beside its results (see kd_jax/core/cache.py)."""
  cache.use_compile_cache(Path(workdir) / "jax_cache")
