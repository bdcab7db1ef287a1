"""What the two entry points (``kd_jax.main``, ``kd_jax.sweep``) share: flag parsing and errors.

A bad config path, variant or override (``--config.distill.temprature=2``) fails while absl
parses flags, deep inside ml_collections; users get one line naming it, not a traceback.
"""
from __future__ import annotations

import difflib
import re
import sys
from typing import Callable, NoReturn, Optional

from kd_jax.core import budget
from kd_jax.core.errors import ConfigError, OutOfTime, UserFacingError

HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml")
#: Exit status after Ctrl-C, as shells report a process ended by SIGINT (128 + 2).
INTERRUPTED = 130


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
  bare = re.fullmatch(r"""["']*(\w+)["']*""", message.strip())
  unknown = _unknown_key(bare.group(1), argv) if bare else None
  if unknown:
    return unknown
  if "Traceback" in message:  # an exception inside the config file: keep its last line
    lines = [l.strip() for l in message.strip().splitlines() if l.strip()]
    head = message.split(":", 1)[0] if message.startswith("flag ") else "--config"
    return f"{head}: {lines[-1]}"
  if "Failed loading config file" in message or "No such file" in message:
    paths = [a.split("=", 1)[1].split(":")[0] for a in argv if a.startswith("--config=")]
    path = paths[0] if paths else "?"
    from kd_jax import config_files
    holds = ""
    try:  # the loader's own line lists the config files that do exist beside it
      config_files.load_module(path)
    except ConfigError as e:
      holds = str(e).partition(" (relative to the current directory or absolute)")[2]
    return f"--config={path}: no such config file{holds}"
  return message


def load_config_file(spec: str):
  """``get_config(arg)`` of ``path[:arg]``, for messages about its keys (no flags involved)."""
  from kd_jax import config_files
  path, arg = config_files.split_spec(spec)
  return config_files.get_config(config_files.load_module(path), arg, path)


def _schema_keys(argv: list[str]) -> list[str]:
  """Every dotted key and section of the config named by ``--config=`` (else the base one)."""
  from kd_jax import config as config_lib
  from kd_jax.runner import identity as rundir
  files = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
  try:
    config = load_config_file(files[0])
  except Exception:  # noqa: BLE001  only for a better message: fall back to the schema
    config = config_lib.base_config()
  keys = list(rundir.flat(config.to_dict()))
  return list(dict.fromkeys(".".join(k.split(".")[:i + 1]) for k in keys
                            for i in range(k.count(".") + 1)))


def _unknown_key(key: str, argv: list[str]) -> Optional[str]:
  """``--config.model.name=x`` → where ``model`` is missing and the keys it may have meant."""
  flags = [a.split("=")[0] for a in argv if a.startswith("--config.")]
  flag = next((f for f in flags if key in f[len("--config."):].split(".")), None)
  if flag is None:
    return None
  parts = flag[len("--config."):].split(".")
  i = parts.index(key)
  keys = _schema_keys(argv)
  where = f"in {'.'.join(parts[:i])}" if i else "at its top level"
  rest = ".".join(parts[i:])
  meant = [k for k in keys if k.endswith("." + rest)]
  if not meant:
    prefix = ".".join(parts[:i] + [""]) if i else ""
    siblings = [k[len(prefix):] for k in keys
                if k.startswith(prefix) and "." not in k[len(prefix):]]
    meant = [prefix + m + rest[len(key):] for m in difflib.get_close_matches(key, siblings)]
  hint = (f"did you mean {' or '.join('--config.' + m for m in meant[:3])}?" if meant else
          "--print_config lists every key")
  return f"{flag}: the config has no key {key!r} {where}; {hint}"


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose failures exit with one line (status 2); ``--help`` exits 0."""
  from absl import flags
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:  # absl's help flags print the usage, then exit with 1
    sys.exit(0 if e.code == 1 and any(a in HELP_FLAGS for a in argv[1:]) else e.code)
  except (flags.Error, ConfigError, KeyError, ValueError, TypeError, AttributeError,
          OSError) as e:
    fail(explain(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e), argv))
  except Exception:  # noqa: BLE001  the --config file raised on import (ml_collections loads it)
    files = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    if not files:
      raise
    from kd_jax import config_files
    try:  # the one loader's line for it
      config_files.load_module(config_files.split_spec(files[0])[0])
    except ConfigError as again:
      fail(str(again))
    raise


def config_value(holder) -> object:
  """The parsed config; a config file that failed to load is reported in one line."""
  try:
    config = holder.value
    config.keys()  # a lazily failed load raises only on first use
    return config
  except OSError as e:
    fail(explain(str(e), sys.argv))


def print_config(values: dict) -> None:
  """Every key of the resolved config (``config.to_dict()``) with its value, one ``key =
  value`` a line: each is what ``--config.<key>=<value>`` sets."""
  from kd_jax.runner import identity as rundir
  for key, value in rundir.flat(values).items():
    print(f"{key} = {value!r}")


def run_app(main: Callable[[list[str]], None]) -> None:
  from absl import app
  try:
    app.run(main, flags_parser=parse_flags)
  except UserFacingError as e:
    fail(str(e))
  except OutOfTime as e:  # --time_budget: stopped at a checkpoint boundary; a rerun goes on
    print(str(e), file=sys.stderr)
    sys.exit(budget.EXIT_STATUS)
  except KeyboardInterrupt as e:  # Ctrl-C: one line (kd_jax.core.errors.Interrupted says where)
    text = str(e) if str(e) else "interrupted; rerun the same command to resume"
    print(text, file=sys.stderr)
    sys.exit(INTERRUPTED)


def define_time_budget() -> None:
  """``--time_budget`` for the entry points (kd_jax.main, kd_jax.sweep, kd_jax.gan_main)."""
  from absl import flags
  if "time_budget" in flags.FLAGS:
    return
  flags.DEFINE_string(
      "time_budget", "", "Stop at the last checkpoint boundary before this much wall time (e.g. "
      "9m, 90s, 1.5h) with exit status 75; rerunning the same command resumes. Default: none.")


def start_time_budget() -> None:
  from absl import flags
  seconds = budget.parse(flags.FLAGS.time_budget)
  budget.start(seconds)
  if seconds:
    print(f"[budget] stopping at the last checkpoint boundary before {seconds:g} s",
          flush=True)
