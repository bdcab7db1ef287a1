"""Command line: ``python -m kd_jax.main --config=configs/mnist.py --workdir=runs/mnist``.

Thin on purpose: flags → ``experiment.run``. Any ``UserFacingError`` (a ``ConfigError``: bad
name, bad value, missing dataset, unwritable folder; or ``TrainingDiverged``) is printed as one
line, without a traceback, and exits with 2.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from kd_jax.errors import UserFacingError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/mnist.py or configs/cifar100.py:mini.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)  # orbax logs every file it writes; tfds warns on probes
  import jax  # after flag parsing: --help stays fast
  jax.distributed.initialize() if _multi_host() else None
  from kd_jax import cache, cli, experiment
  config = cli.config_value(_CONFIG)
  cache.use_compile_cache()
  try:
    experiment.run(config, _WORKDIR.value)
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _multi_host() -> bool:
  """Multi-host runs (TPU pods, SLURM) set these; a single machine needs no initialization."""
  import os
  return any(k in os.environ for k in ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS_PER_NODE"))


def run() -> None:
  from kd_jax import cli
  cli.run_app(main)


if __name__ == "__main__":
  run()
