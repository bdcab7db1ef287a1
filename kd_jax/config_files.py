"""The one loader of config files, as every entry point names them: ``path.py[:arg]``.

A config file gives ``get_config(arg)`` (the experiment) and, for a figure, ``get_sweep(arg)``
(arms, seeds, plot). The command line (through ml_collections' flags), the Python API,
sweeps, ``sweep_report --rebuild`` and figure files that build on another file all load them
here, so a missing file, an unknown variant or a bad override reads the same everywhere.
"""
from __future__ import annotations

import importlib.util
import types
from pathlib import Path
from typing import Any, Iterable

from ml_collections import ConfigDict

from kd_jax.config import lock, sweep_config
from kd_jax.core.errors import ConfigError


def split_spec(spec: str | Path) -> tuple[str, str]:
  """``"configs/fig3.py:mini"`` → ``("configs/fig3.py", "mini")``."""
  path, _, arg = str(spec).partition(":")
  return path, arg


def load_module(path: str | Path) -> types.ModuleType:
  """The config file as a module; a missing file is one line naming it and what exists."""
  path = Path(path)
  if not path.is_file():
    near = sorted(p.name for p in path.parent.glob("*.py")) if path.parent.is_dir() else []
    listed = f"; {path.parent} holds: {', '.join(near)}" if near else ""
    raise ConfigError(f"config file {str(path)!r} does not exist; give a path such as "
                      f"'configs/mnist.py' (relative to the current directory or absolute){listed}")
  spec = importlib.util.spec_from_file_location(f"kd_jax_config_{path.stem}", str(path))
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # noqa: BLE001  a config file that raises on import: one line
    raise ConfigError(f"config file {str(path)!r} raised {type(e).__name__} on import: {e}; "
                      "fix the file (python -c 'import runpy; runpy.run_path(\"FILE\")' shows "
                      "the traceback)") from e
  return module


def get_config(module: types.ModuleType, arg: str = "", where: str = "") -> ConfigDict:
  """``get_config(arg)`` of a loaded file; an unknown variant is one ConfigError."""
  try:
    return module.get_config(arg) if arg else module.get_config()
  except ValueError as e:  # an unknown variant, as the config files report it
    raise ConfigError(f"{where or module.__name__}{':' + arg if arg else ''}: {e}") from None


def load(spec: str | Path, overrides: Iterable[tuple[str, Any]] = ()) -> ConfigDict:
  """``get_config(arg)`` of ``path[:arg]`` with dotted ``(key, value)`` overrides, locked like
  the command line's: setting a value works, a misspelt key is an error."""
  path, arg = split_spec(spec)
  config = get_config(load_module(path), arg, path)
  for key, value in overrides:
    set_dotted(config, key, value)
  return lock(config)


def load_sweep(spec: str | Path) -> ConfigDict:
  """``get_sweep(arg)`` of a figure file; a file without one is a single arm with one seed."""
  path, arg = split_spec(spec)
  module = load_module(path)
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


def has_sweep(spec: str | Path) -> bool:
  return hasattr(load_module(split_spec(spec)[0]), "get_sweep")


def get_dotted(config: ConfigDict, key: str, field: str = "") -> Any:
  """``config["a"]["b"]`` for ``"a.b"``; when any part is missing KeyError(key), or with
  ``field`` (the setting that named the key, e.g. ``sweep.x_key``) a ConfigError naming it."""
  node = config
  for part in key.split("."):
    if not (isinstance(node, ConfigDict) and part in node):
      if field:
        raise ConfigError(f"{field}={key!r} is not a config key")
      raise KeyError(key)
    node = node[part]
  return node


def set_dotted(config: ConfigDict, key: str, value: Any) -> None:
  """Sets ``"a.b"``; a string value is converted to the type of the value it replaces (as a
  ``--config.a.b=...`` flag is). An unknown key is a ConfigError naming it."""
  try:
    old = get_dotted(config, key)
  except KeyError:
    raise ConfigError(f"the config has no key {key!r}; --print_config lists every key") from None
  if isinstance(value, str) and not isinstance(old, str) and old is not None:
    value = _parse_like(old, value, key)
  config.update_from_flattened_dict({key: value})


def _parse_like(old: Any, text: str, key: str) -> Any:
  if isinstance(old, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ConfigError(f"{key}={text!r} must be true or false")
  try:
    return type(old)(text)
  except (TypeError, ValueError):
    raise ConfigError(f"{key}={text!r} is not a {type(old).__name__}") from None
