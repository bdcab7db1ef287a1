"""The model registry: ``MODELS`` (name → Flax module constructor) and ``get_model``. Each model
module registers itself here; ``kd_jax.models`` imports them all (the registration list)."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import flax.linen as nn

from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model", "model.name")


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
  """Builds a registered model; an unknown keyword is a config error naming the allowed ones."""
  ctor = MODELS.get(name)
  check_options(ctor, kwargs, name)
  return ctor(num_classes=num_classes, **kwargs)


def check_options(ctor: Callable[..., Any], kwargs: dict, name: str,
                  section: str = "model") -> None:
  """An option ``ctor`` does not take is a config error naming the allowed ones."""
  params = inspect.signature(ctor).parameters
  if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
    allowed = sorted(k for k in params if k != "num_classes")
    for k in kwargs:
      if k not in params:
        raise ConfigError(f"{section}.{k} is not an option of model {name!r}; "
                          f"allowed: {', '.join(allowed)}")


def supports_dtype(name: str) -> bool:
  """Whether model ``name`` can compute in another dtype (``run.dtype``): its constructor
  takes ``dtype``. Others compute in float32 whatever run.dtype says, so asking is an error."""
  return "dtype" in inspect.signature(MODELS.get(name)).parameters
