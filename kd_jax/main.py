"""Command line: ``python -m kd_jax.main --config=configs/mnist.py --workdir=runs/mnist``.

Every key of a config, with its value: add ``--print_config`` (no --workdir needed); change
any of them with ``--config.<key>=<value>``, e.g. ``--config.distill.temperature=2``.
Rerunning the same command resumes the run in --workdir; a workdir holding a run of another
config is refused (use a new --workdir, or --restart to start it over). A figure file runs its
base config here; ``python -m kd_jax.sweep`` runs its arms.

Thin on purpose: flags → ``experiment.run``. Any ``UserFacingError`` (a ``ConfigError``: bad
name, bad value, missing dataset, unwritable folder; or ``TrainingDiverged``) is printed as one
line, without a traceback, and exits with 2; Ctrl-C prints where it stopped and exits with 130.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from kd_jax import cli as cli_flags
from kd_jax.core.errors import UserFacingError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/mnist.py or configs/cifar100.py:mini.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go.")
_RESTART = flags.DEFINE_bool(
    "restart", False, "Delete the run already in --workdir (student checkpoints, metrics, "
    "results; never stored teachers) and start over.")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print every key of the resolved config (overrides applied) with "
    "its value, then exit.")
flags.mark_flags_as_required(["config"])
from kd_jax.core.distributed import define_flags  # noqa: E402  (imports jax lazily)

define_flags()
cli_flags.define_time_budget()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every file it writes; tfds warns on probes
  from kd_jax import cli
  config = cli.config_value(_CONFIG)
  if _PRINT_CONFIG.value:
    cli.print_config(config.to_dict())
    return
  if not _WORKDIR.value:
    cli.fail("--workdir is required: the folder for checkpoints, metrics and results "
             "(--print_config needs none)")
  from kd_jax.core import distributed  # after flag parsing: --help stays fast
  distributed.initialize_from_flags()  # many hosts: from the flags or the environment
  _note_sweep_arms()  # imports kd_jax modules: after the multi-host initialization
  from kd_jax.core import cache
  from kd_jax.runner import estimate, experiment
  cache.use_compile_cache()
  try:
    if distributed.is_primary():
      estimate.announce(config, _WORKDIR.value)
    cli.start_time_budget()
    experiment.run(config, _WORKDIR.value, restart=_RESTART.value)
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _note_sweep_arms() -> None:
  """A figure file's arms are the sweep's to run: say so rather than ignore them silently."""
  from kd_jax.sweeps import sweep
  try:
    from ml_collections import config_flags
    arms = sweep.figure_arms(config_flags.get_config_filename(flags.FLAGS["config"]))
  except UserFacingError:
    return  # a broken get_sweep is the sweep's error to report; main runs get_config only
  if arms:
    print(f"note: this file defines {arms} sweep arms; kd_jax.main runs the base config only; "
          "use python -m kd_jax.sweep to run the figure", file=sys.stderr, flush=True)


def run() -> None:
  from kd_jax import cli
  cli.run_app(main)


if __name__ == "__main__":
  run()
