"""The one exception type users see as a single line (no traceback) from the command line."""
from __future__ import annotations


class ConfigError(ValueError):
  """Bad user input: a config value, a missing dataset, an unwritable path.

  The message must name what is wrong and what to do; ``kd_jax.main`` prints it alone.
  """
