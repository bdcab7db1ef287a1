"""Name → implementation lookup shared by models, augmentations, optimizers, losses and sources.

Configs refer to everything by name; one registry type keeps the error for an unknown name the
same everywhere: it names the config key, the bad value and the allowed values.
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Iterator, TypeVar

from kd_jax.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
  """A dict of named entries whose lookup errors say what is allowed."""

  def __init__(self, kind: str, key: str):
    self.kind = kind  # e.g. "model"
    self.key = key  # the config key users set, e.g. "model.name"
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def deco(obj: T) -> T:
      if name in self._entries:
        raise KeyError(f"{self.kind} {name!r} registered twice")
      self._entries[name] = obj
      return obj
    return deco

  def get(self, name: str, key: str = "") -> T:
    if name not in self._entries:
      raise ConfigError(f"{key or self.key}={name!r} is not a known {self.kind}; "
                        f"choose one of: {', '.join(sorted(self._entries))}")
    return self._entries[name]

  def check(self, name: str, key: str = "") -> None:
    """Raises the one-line ConfigError for an unknown name (validation before any work);
    ``key`` names where the name was set when one registry serves several keys."""
    self.get(name, key)

  def __contains__(self, name: str) -> bool:
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(sorted(self._entries))

  def names(self) -> list[str]:
    return sorted(self._entries)


def lookup(cfg: Any, key: str, default: Any = None) -> Any:
  """``key`` of a ConfigDict, an object or a plain mapping; absent means ``default``. Data
  loaders take any of the three, so tests and notebooks can pass a dict."""
  if isinstance(cfg, dict):
    return cfg.get(key, default)
  return getattr(cfg, key, default)
