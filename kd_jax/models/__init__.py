"""Model registry: ``get_model(name, num_classes, **kwargs)`` builds a Flax linen module.

Every model is called as ``module.apply(variables, x, train=bool)`` on float32 NHWC inputs (text
models: ``(tokens, lengths)``) and returns float32 logits; with ``return_features=True`` it returns ``(logits, [stage outputs])``
(used for CKA). BatchNorm layers take ``bn_axis_name`` so the trainer can average batch
statistics across the device mesh.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import flax.linen as nn

from kd_jax.errors import ConfigError
from kd_jax.registry import Registry

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


# Importing the modules fills the registry.
from kd_jax.models import lenet  # noqa: E402,F401
from kd_jax.models import lstm  # noqa: E402,F401
from kd_jax.models import preresnet  # noqa: E402,F401
from kd_jax.models import resnet  # noqa: E402,F401
from kd_jax.models import vgg  # noqa: E402,F401
from kd_jax.models import sngan  # noqa: E402,F401
