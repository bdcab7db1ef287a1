"""``python -m kd_jax.sweep --config=configs/<figure>.py[:variant]``: a whole figure (all its
arms × seeds, then the table and plot). This module is the command line (flags, launchers);
the sweep itself is ``kd_jax.sweeps.sweep``."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from ml_collections import ConfigDict

from kd_jax.core.errors import ConfigError, UserFacingError
from kd_jax.sweeps import launchers
from kd_jax import config_files
from kd_jax.sweeps.sweep import (default_workdir, describe, missing_data, run_sweep,
                                  use_compile_cache)
from kd_jax.sweeps.trials import resolve_arms


def _define_flags():
  """Defined on first use so importing this module (tests) does not clash with kd_jax.main's."""
  from absl import flags
  from ml_collections import config_flags
  if "only" in flags.FLAGS:
    return
  from kd_jax.core.distributed import define_flags
  define_flags()
  from kd_jax import cli
  cli.define_time_budget()
  config_flags.DEFINE_config_file(
      "config", None, "Figure config file, e.g. configs/fig3_augmentation.py:mini.",
      lock_config=True)
  flags.DEFINE_string("workdir", None, "Sweep folder: trials, teachers, results.csv/.md/.png "
                      "(default: runs/<config name>).")
  flags.DEFINE_list("only", [], "Comma-separated arm names to run (default: all).")
  flags.DEFINE_bool("dry_run", False, "Print the resolved trials and teacher groups, then exit.")
  flags.DEFINE_enum("diverged", None, ["stop", "record"],
                    "A trial whose loss turns non-finite: stop the sweep, or record it and go "
                    "on (default: the figure's sweep.diverged). record suits a sweep of "
                    "learning rates, where divergence is an outcome.")
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


#: ``--launcher`` → the ``launch`` argument of ``run_sweep`` (None: trials in this process).
LAUNCHERS = {
    "inprocess": lambda f: None,
    "submitit": lambda f: launchers.LaunchOptions(**{n: f[n].value for n in SUBMITIT_FLAGS}),
}


def launch_options(f) -> Optional[launchers.LaunchOptions]:
  """The submitit flags; given with the in-process launcher they are an error, not ignored."""
  given = [n for n in SUBMITIT_FLAGS if f[n].present]
  if f.launcher != "submitit" and given:
    raise ConfigError(f"--{given[0]} is for --launcher=submitit; add it or drop --{given[0]}")
  return LAUNCHERS[f.launcher](f)


def load_sweep(config_flag) -> ConfigDict:
  """The sweep of the file named by ``--config=path[:arg]``."""
  from ml_collections import config_flags
  return config_files.load_sweep(config_flags.get_config_filename(config_flag))


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
  workdir = Path(f.workdir) if f.workdir else default_workdir(config.name)
  if not f.workdir:
    print(f"[sweep] no --workdir given: using {workdir} (runs/<config name>)", flush=True)
  try:
    check_not_published(workdir)
    sweep = load_sweep(flags.FLAGS["config"])
    if f.diverged:
      with sweep.unlocked():
        sweep.diverged = f.diverged
    launch = launch_options(f)
    if f.dry_run:
      trials = resolve_arms(config, sweep, workdir)
      print(describe(trials, sweep, workdir, f.only), flush=True)
      missing = missing_data(trials, workdir, f.only)
      for line in missing:
        print(f"error: {line}", file=sys.stderr)
      if missing:
        sys.exit(2)
      print("[sweep] data: every source the trials read is there")
      return
    if f.time_budget and f.launcher != "inprocess":
      raise ConfigError("--time_budget stops the in-process launcher's trials; with "
                        "--launcher=submitit use --time_min (each job checkpoints and requeues)")
    cli.start_time_budget()
    use_compile_cache(workdir)
    from kd_jax.core import distributed
    distributed.initialize_from_flags()  # many hosts: every host runs this same command
    if launch is not None:
      import jax
      jax.config.update("jax_platforms", "cpu")  # the runner computes nothing: leave GPUs to jobs
    run_sweep(config, sweep, workdir, only=f.only, command=command_line(sys.argv),
              launch=launch)
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def check_not_published(workdir: Path) -> None:
  """A sweep does not write into a published results folder of this checkout: those hold
  per-trial files checked against their commit (``sweep_report --collect`` publishes)."""
  from kd_jax.core import provenance
  published = (provenance.ROOT / "experiments" / "results").resolve()
  if published in (workdir.resolve(), *workdir.resolve().parents):
    raise ConfigError(f"--workdir={workdir} is inside experiments/results/, which holds "
                      "published results; run in runs/<name> and publish with python -m "
                      "kd_jax.sweep_report --collect runs/<name> --out experiments/results/<name>")


def run() -> None:
  from kd_jax import cli
  _define_flags()
  cli.run_app(main)


if __name__ == "__main__":
  run()
