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
