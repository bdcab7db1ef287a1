"""What the two entry points (``kd_jax.main``, ``kd_jax.sweep``) share: flag parsing and errors.

A bad config path, variant or override (``--config.distill.temprature=2``) fails while absl
parses flags, deep inside ml_collections; users get one line naming it, not a traceback.
"""
from __future__ import annotations

import re
import sys
from typing import Callable, NoReturn

from kd_jax.errors import ConfigError, UserFacingError


def fail(message: str) -> NoReturn:
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(2)


def _override_flag(argv: list[str], key: str) -> str:
  for arg in argv:
    if arg.startswith("--config.") and re.search(rf"\.{re.escape(key)}(=|\.|$)", arg.split("=")[0]):
      return arg.split("=")[0]
  return "--config"


def explain(message: str, argv: list[str]) -> str:
  """ml_collections' flag errors → one readable line (the key, what was meant, the cause)."""
  message = str(message)
  meant = re.search(r'Did you mean \\?"(\w+)\\?" instead of \\?"(\w+)\\?"', message)
  if meant:
    key = meant.group(2)
    return (f"{_override_flag(argv, key)}: the config has no key {key!r}; "
            f"did you mean {meant.group(1)!r}?")
  if "Traceback" in message:  # an exception inside the config file: keep its last line
    lines = [l.strip() for l in message.strip().splitlines() if l.strip()]
    head = message.split(":", 1)[0] if message.startswith("flag ") else "--config"
    return f"{head}: {lines[-1]}"
  if "Failed loading config file" in message or "No such file" in message:
    paths = [a.split("=", 1)[1].split(":")[0] for a in argv if a.startswith("--config=")]
    return f"--config={paths[0] if paths else '?'}: no such config file"
  return message


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose failures exit with one line (status 2)."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except (flags.Error, ConfigError, KeyError, ValueError, TypeError, AttributeError,
          OSError) as e:
    fail(explain(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e), argv))


def config_value(holder) -> object:
  """The parsed config; a config file that failed to load is reported in one line."""
  try:
    config = holder.value
    config.keys()  # a lazily failed load raises only on first use
    return config
  except OSError as e:
    fail(explain(str(e), sys.argv))


def run_app(main: Callable[[list[str]], None]) -> None:
  from absl import app
  try:
    app.run(main, flags_parser=parse_flags)
  except UserFacingError as e:
    fail(str(e))
