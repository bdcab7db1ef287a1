"""What one launched job runs: a teacher group's training, or one trial (``experiment.run``).

Both are submitit *checkpointable* callables: when SLURM preempts a job or its time limit
nears, submitit sends it a signal and calls ``checkpoint``, which resubmits the same callable
(``DelayedSubmission(self)``) and requeues the job. Nothing needs saving at that moment: every
run already checkpoints each ``run.checkpoint_every`` epochs and resumes exactly from the last
one, so the requeued job ends with the numbers of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from ml_collections import ConfigDict

from kd_jax.train.trainer import Hook


def import_submitit():
  """submitit, imported without its logging setup.

  On import submitit calls ``logging.config.dictConfig``, which closes every handler already
  installed (absl's, and with it the stream it writes to: a test runner's captured stderr).
  Imported with ``SUBMITIT_LOG_LEVEL=NOCONFIG`` (for this import only, so job processes still
  log) its logger gets one plain handler instead.
  """
  import logging
  import sys
  if "submitit" in sys.modules:
    return sys.modules["submitit"]
  before = os.environ.get("SUBMITIT_LOG_LEVEL")
  os.environ["SUBMITIT_LOG_LEVEL"] = "NOCONFIG"
  try:
    import submitit
  finally:
    if before is None:
      del os.environ["SUBMITIT_LOG_LEVEL"]
    else:
      os.environ["SUBMITIT_LOG_LEVEL"] = before
  log = logging.getLogger("submitit")
  if not log.handlers:
    log.addHandler(logging.StreamHandler())
    log.setLevel(logging.WARNING)
  return submitit


def _setup(compile_cache: str) -> None:
  """A fresh process: quiet absl logging (orbax logs every file) and the sweep's compile cache."""
  from absl import logging
  from kd_jax.core import cache
  logging.set_verbosity(logging.ERROR)
  if compile_cache:
    cache.use_compile_cache(compile_cache)


@dataclasses.dataclass
class TrialJob:
  """One arm × seed: ``kd_jax.runner.experiment.run`` in the trial's folder, as ``kd_jax.main`` runs it."""
  config: ConfigDict
  workdir: str
  compile_cache: str = ""
  hook: Optional[Hook] = None  # tests: a picklable hook, e.g. one that preempts the job once

  def __call__(self) -> str:
    _setup(self.compile_cache)
    from kd_jax.runner import experiment
    experiment.run(self.config, self.workdir, hook=self.hook)
    return os.path.join(self.workdir, experiment.RESULTS)

  def checkpoint(self, *args, **kwargs):
    return import_submitit().helpers.DelayedSubmission(self)  # resumes from the run's own checkpoints


@dataclasses.dataclass
class TeacherJob:
  """A teacher group's ensemble, trained into the store before the trials that need it run."""
  config: ConfigDict          # the group's config, with the largest ensemble any arm uses
  workdir: str                # metrics.jsonl of the training
  compile_cache: str = ""
  hook: Optional[Hook] = None

  def __call__(self) -> str:
    _setup(self.compile_cache)
    return str(train_teacher(self.config, Path(self.workdir), self.hook))

  def checkpoint(self, *args, **kwargs):
    return import_submitit().helpers.DelayedSubmission(self)


def train_teacher(config: ConfigDict, workdir: Path, hook: Optional[Hook] = None) -> Path:
  """The teacher half of ``experiment.run``: data → ``teachers.get_teacher``; its store entry."""
  from kd_jax.runner import experiment, teachers
  from kd_jax.train import writer as report
  from kd_jax.runner.identity import store_keys
  from kd_jax.runner.validate import validate
  validate(config)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh, data = experiment.load_data(config.data, config.run.num_devices)
  writer = report.MetricWriter(workdir, tensorboard=config.run.tensorboard)
  try:
    key = store_keys(config.data, config.teacher)
    return teachers.get_teacher(config.teacher, key, config.run, workdir, data, mesh, writer,
                                hook, config.evals).entry
  finally:
    writer.close()
