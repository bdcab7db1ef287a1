"""VGG-16 / VGG-19 without BatchNorm for CIFAR (docs/paper.md, Architectures; Fig 13).

Without normalization layers the network has no batch statistics, so teacher and student
differ only through their weights. Init follows the official code (gnosis/models/vgg.py): He
fan-out normal conv kernels with zero biases, and PyTorch's default for the linear layers.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.core.errors import ConfigError
from kd_jax.models.registry import MODELS
from kd_jax.models.init import he_fan_out_normal, torch_dense
from kd_jax.models.preresnet import scaled_width

POOL = "M"
CFGS: dict[int, tuple[Union[int, str], ...]] = {
    16: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
         512, 512, 512, POOL),
    19: (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
         512, 512, 512, 512, POOL),
}
HEAD_WIDTH = 512
FEATURE_POOLS = (3, 4, 5)  # stage outputs for CKA: after these max pools


def _check_options(depth: int, width: float, dropout: float) -> None:
  if isinstance(depth, bool) or depth not in CFGS:
    raise ConfigError(f"model.depth={depth!r} is not a VGG depth; choose one of: "
                      f"{', '.join(str(d) for d in sorted(CFGS))}")
  if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
    raise ConfigError(f"model.width={width!r} must be a positive number (1.0 = 64..512 channels)")
  if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
    raise ConfigError(f"model.dropout={dropout!r} must be a rate in [0, 1)")


class VGG(nn.Module):
  """3x3 conv (bias) + ReLU blocks with 2x2 max pools → Dropout → 512 → ReLU → Dropout → 512 → C.

  ``width`` scales every hidden width, the 512-unit head included. Pools use ceil mode ("SAME"
  padding) so inputs that are not multiples of 32 (e.g. 28x28) still pass all five pools; on
  32x32 inputs this is exactly the usual floor-mode pooling.
  """
  num_classes: int
  depth: int = 16
  width: float = 1.0
  dropout: float = 0.5
  bn_axis_name: Optional[str] = None  # unused: no BatchNorm; kept for one interface.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, return_features: bool = False):
    _check_options(self.depth, self.width, self.dropout)
    y = x
    features = []
    n_pools = 0
    n_convs = 0
    for item in CFGS[self.depth]:
      if item == POOL:
        y = nn.max_pool(y, (2, 2), strides=(2, 2), padding="SAME")
        n_pools += 1
        if n_pools in FEATURE_POOLS:
          features.append(y.astype(jnp.float32))
      else:
        n_convs += 1
        # He fan-out kernel, zero bias: set explicitly by the official code, unlike its linears.
        y = nn.Conv(scaled_width(item, self.width), (3, 3), padding=1,
                    kernel_init=he_fan_out_normal,
                    bias_init=nn.initializers.zeros, dtype=self.dtype, name=f"conv{n_convs}")(y)
        y = nn.relu(y)
    y = y.reshape((y.shape[0], -1))
    hidden = scaled_width(HEAD_WIDTH, self.width)
    y = nn.Dropout(self.dropout, deterministic=not train, name="drop1")(y)
    y = nn.relu(torch_dense(hidden, y.shape[-1], dtype=self.dtype, name="fc1")(y))
    y = nn.Dropout(self.dropout, deterministic=not train, name="drop2")(y)
    y = nn.relu(torch_dense(hidden, y.shape[-1], dtype=self.dtype, name="fc2")(y))
    logits = torch_dense(self.num_classes, y.shape[-1], dtype=self.dtype,
                         name="head")(y).astype(jnp.float32)
    if return_features:
      return logits, features
    return logits


def _build(num_classes: int, depth: int, width: float, dropout: float,
           bn_axis_name: Optional[str], dtype: Any) -> VGG:
  _check_options(depth, width, dropout)  # fail at build time, not at the first apply
  return VGG(num_classes=num_classes, depth=depth, width=width, dropout=dropout,
             bn_axis_name=bn_axis_name, dtype=dtype)


@MODELS.register("vgg")
def vgg(num_classes: int, depth: int = 16, width: float = 1.0, dropout: float = 0.5,
        bn_axis_name: Optional[str] = None, dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, depth, width, dropout, bn_axis_name, dtype)


@MODELS.register("vgg16")
def vgg16(num_classes: int, width: float = 1.0, dropout: float = 0.5,
          bn_axis_name: Optional[str] = None, dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, 16, width, dropout, bn_axis_name, dtype)


@MODELS.register("vgg19")
def vgg19(num_classes: int, width: float = 1.0, dropout: float = 0.5,
          bn_axis_name: Optional[str] = None, dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, 19, width, dropout, bn_axis_name, dtype)
