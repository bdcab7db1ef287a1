"""The exceptions users see as a single line (no traceback) from the command line."""
from __future__ import annotations


class UserFacingError(Exception):
  """An error whose message alone tells the user what happened and what to do."""


class ConfigError(UserFacingError, ValueError):
  """Bad user input: a config value, a missing dataset, an unwritable path.

  The message must name what is wrong and what to do; ``kd_jax.main`` prints it alone.
  """


class TrainingDiverged(UserFacingError, RuntimeError):
  """The loss became NaN/inf: not bad input but a run to retry with other settings; the last
  good checkpoint is kept."""


class Interrupted(KeyboardInterrupt):
  """Ctrl-C during training, with where it stopped; still a KeyboardInterrupt for callers
  (notebooks, the sweep) that handle those. The command lines print it as one line, exit 130."""

  def __init__(self, phase: str, epoch: int, epochs: int, saved: int):
    self.phase, self.epoch, self.epochs, self.saved = phase, epoch, epochs, saved
    at = f"after epoch {epoch}/{epochs}" if epoch else f"in epoch 1/{epochs}"
    where = "" if saved == epoch else (
        f" (its last checkpoint is after epoch {saved}: a rerun resumes there)" if saved else
        " (no checkpoint of it yet: a rerun starts it again)")
    super().__init__(f"interrupted {at} of {phase}{where}; rerun the same command to resume")


class OutOfTime(Interrupted):
  """A run stopped at a checkpoint boundary for its time budget (``--time_budget``); the
  command lines print it as one line and exit with status 75 (``kd_jax.core.budget``)."""

  def __init__(self, phase: str, epoch: int, epochs: int, saved: int, unit: str = "epoch"):
    KeyboardInterrupt.__init__(
        self, f"stopped for the time budget after {unit} {epoch}/{epochs} of {phase}; rerun "
        "the same command to resume")
    self.phase, self.epoch, self.epochs, self.saved = phase, epoch, epochs, saved
