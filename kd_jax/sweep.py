"""A whole paper figure from one command: every arm × seed, shared teachers, a table and a plot.

    python -m kd_jax.sweep --config=configs/fig3_augmentation.py:mini --workdir=runs/fig3

Without ``--workdir`` the sweep goes to ``runs/<config name>`` (and says so);
``--dry_run`` prints the trials and teacher groups without training anything.

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
one seed. A trial is one arm with one student seed and runs ``kd_jax.experiment.run`` in
``<workdir>/<arm>/seed<k>``.

Arms whose teachers have the same ``kd_jax.config.teacher_key`` share one trained ensemble:
its size is the largest any of them asks for, and each arm distills from its own first k
members (``distill.teacher_members``). Teachers live in ``<workdir>/teachers`` unless the
config names a ``teacher.store`` (then several figures can share them).

Trials run one after another in this process by default; ``--launcher=submitit`` runs them as
parallel jobs on a SLURM cluster or as local processes (``kd_jax.launchers``), teachers first.
A trial with a ``results.json`` is done and skipped, a half-done one resumes from its own
checkpoints, so a killed sweep is finished by running the same command again. After every
trial the outputs of ``kd_jax.sweep_report`` are rewritten. A workdir whose trials ran with
different settings is refused rather than mixed into the table.

The plot is a bar per arm, or, with ``x_key`` (a numeric dotted key such as
``"distill.init.lam"``), lines over x split by ``series_key`` (e.g.
``"distill.teacher_members"``). ``metrics`` and ``paper`` name result columns ``"split/metric"``
(``test/agreement``, ``train/kl``, ``running/agreement``, ``cka/stage1``); a paper value may be a
number or a string ``"≈74.5"`` for one read off a plot.
"""
from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ml_collections import ConfigDict

from kd_jax import cache, launchers, sweep_report
from kd_jax.config import sweep_config
from kd_jax.errors import ConfigError, UserFacingError
from kd_jax.experiment import RESULTS
from kd_jax.report import format_duration
from kd_jax.trainer import Hook
from kd_jax.trials import arm_specs, check_existing, resolve_arms, select, teacher_groups

# --------------------------------------------------------------------------------- running


def run_sweep(config: ConfigDict, sweep: ConfigDict, workdir: str | Path, *,
              only: Iterable[str] = (), hook: Optional[Hook] = None,
              command: str = "") -> list[dict[str, Any]]:
  """Runs the missing trials (of the ``only`` arms), writing outputs after each; returns rows."""
  from kd_jax import experiment  # looked up at call time: tests replace experiment.run

  workdir = Path(workdir)
  commit = sweep_report.git_commit()  # the code this process runs, not what is checked out later
  trials = resolve_arms(config, sweep, workdir)
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
    print(f"[sweep] {where} … done {done}/{n}, ETA {format_duration(eta)}", flush=True)
    t0 = time.perf_counter()
    experiment.run(t.config, workdir / t.path, hook=hook)
    times.append(time.perf_counter() - t0)
    done += 1
    rows = _outputs(config, sweep, trials, workdir, command, chosen, commit)
  if rows is None:
    rows = _outputs(config, sweep, trials, workdir, command, chosen, commit)
  print(f"[sweep] {done}/{n} trials done; wrote {workdir / 'results.csv'}, results.md and the plot",
        flush=True)
  return rows


# ------------------------------------------------------------------------------ dry run


def describe(config: ConfigDict, sweep: ConfigDict, workdir: Path,
             only: Iterable[str] = ()) -> str:
  """The arms, resolved trials and teacher groups, for ``--dry_run``; runs the same checks."""
  from kd_jax import checkpoints
  trials = resolve_arms(config, sweep, workdir)
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
  from kd_jax.distributed import define_flags
  define_flags()
  config_flags.DEFINE_config_file(
      "config", None, "Figure config file, e.g. configs/fig3_augmentation.py:mini.",
      lock_config=True)
  flags.DEFINE_string("workdir", None, "Sweep folder: trials, teachers, results.csv/.md/.png "
                      "(default: runs/<config name>).")
  flags.DEFINE_list("only", [], "Comma-separated arm names to run (default: all).")
  flags.DEFINE_bool("dry_run", False, "Print the resolved trials and teacher groups, then exit.")
  flags.DEFINE_enum("launcher", "inprocess", list(LAUNCHERS),
                    "inprocess: trials one after another here; submitit: parallel jobs.")
  d = launchers.LaunchOptions()
  flags.DEFINE_enum("cluster", d.cluster, launchers.CLUSTERS.names(),
                    "submitit: slurm (sbatch), local (processes here), debug (in this process).")
  flags.DEFINE_integer("parallel", d.parallel,
                       "submitit: trials at once (local processes; SLURM array parallelism).")
  flags.DEFINE_integer("gpus_per_trial", d.gpus_per_trial, "submitit: GPUs per job.")
  flags.DEFINE_integer("cpus_per_trial", d.cpus_per_trial,
                       "submitit, SLURM: CPUs per job (0: the cluster's default).")
  flags.DEFINE_integer("time_min", d.time_min,
                       "submitit: time limit per job in minutes; then it checkpoints and requeues.")
  flags.DEFINE_string("slurm_partition", d.slurm_partition, "submitit, SLURM: the partition.")
  flags.DEFINE_string("slurm_account", d.slurm_account, "submitit, SLURM: the account.")
  flags.mark_flags_as_required(["config"])


SUBMITIT_FLAGS = ("cluster", "parallel", "gpus_per_trial", "cpus_per_trial", "time_min",
                  "slurm_partition", "slurm_account")


def launch_options(f) -> launchers.LaunchOptions:
  """The submitit flags; given with the in-process launcher they are an error, not ignored."""
  given = [n for n in SUBMITIT_FLAGS if f[n].present]
  if f.launcher != "submitit" and given:
    raise ConfigError(f"--{given[0]} is for --launcher=submitit; add it or drop --{given[0]}")
  return launchers.LaunchOptions(**{n: f[n].value for n in SUBMITIT_FLAGS})


def _in_process(config, sweep, workdir, options, only, command) -> list[dict[str, Any]]:
  return run_sweep(config, sweep, workdir, only=only, command=command)


def _submitit(config, sweep, workdir, options, only, command) -> list[dict[str, Any]]:
  import jax
  jax.config.update("jax_platforms", "cpu")  # the runner computes nothing: leave GPUs to jobs
  return launchers.run_submitit(config, sweep, workdir, options, only=only, command=command)


LAUNCHERS = {"inprocess": _in_process, "submitit": _submitit}


def _figure_module(path: str | Path):
  import importlib.util
  spec = importlib.util.spec_from_file_location("kd_jax_figure", str(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def sweep_of(path: str | Path, arg: str = "") -> ConfigDict:
  """``get_sweep(arg)`` of a figure file; a file without one is a single arm with one seed."""
  module = _figure_module(path)
  if not hasattr(module, "get_sweep"):
    return sweep_config()
  try:
    sweep = module.get_sweep(arg) if arg else module.get_sweep()
  except ValueError as e:  # an unknown variant, as get_config reports it
    raise ConfigError(f"--config={path}:{arg}: {e}") from None
  if not isinstance(sweep, ConfigDict):
    raise ConfigError(f"get_sweep of {path} returned {type(sweep).__name__}; return "
                      "kd_jax.config.sweep_config() with the figure's values")
  return sweep


def figure_arms(config_flag) -> int:
  """How many arms the file of ``--config=path[:arg]`` declares in ``get_sweep`` (0: none)."""
  from ml_collections import config_flags
  path, _, arg = str(config_flags.get_config_filename(config_flag)).partition(":")
  if not hasattr(_figure_module(path), "get_sweep"):
    return 0
  return len(arm_specs(sweep_of(path, arg)))


def _outputs(config: ConfigDict, sweep: ConfigDict, trials, workdir: Path, command: str,
             chosen, commit: str) -> list[dict[str, Any]]:
  """Table, CSV and plot after a trial; on many hosts process 0 writes them, the others only
  read the rows back."""
  from kd_jax import distributed
  rows = None
  if distributed.is_primary():
    rows = sweep_report.write_outputs(config.name, sweep, trials, workdir, command, chosen,
                                      commit)
  distributed.barrier("kd_jax.sweep.outputs")
  return rows if rows is not None else sweep_report.collect_rows(trials, workdir)


def default_workdir(config: ConfigDict) -> Path:
  return Path("runs") / config.name


def load_sweep(config_flag) -> ConfigDict:
  """The sweep of the file named by ``--config=path[:arg]``."""
  from ml_collections import config_flags
  name = config_flags.get_config_filename(config_flag)
  path, _, arg = str(name).partition(":")
  return sweep_of(path, arg)


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
  workdir = Path(f.workdir) if f.workdir else default_workdir(config)
  if not f.workdir:
    print(f"[sweep] no --workdir given: using {workdir} (runs/<config name>)", flush=True)
  try:
    sweep = load_sweep(flags.FLAGS["config"])
    options = launch_options(f)
    if f.dry_run:
      print(describe(config, sweep, workdir, f.only))
      return
    use_compile_cache(workdir)
    from kd_jax import distributed
    distributed.initialize_from_flags()  # many hosts: every host runs this same command
    LAUNCHERS[f.launcher](config, sweep, workdir, options, f.only, command_line(sys.argv))
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
  from kd_jax import cli
  _define_flags()
  cli.run_app(main)


if __name__ == "__main__":
  run()
