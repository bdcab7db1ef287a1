"""Pre-activation ResNet for CIFAR (docs/paper.md, Architectures).

The paper's "ResNet-56" and "ResNet-110" are *bottleneck* pre-activation ResNets (depth = 9n+2,
ending at 256 channels); shallower ones such as ResNet-20 use basic blocks (depth = 6n+2). The
LayerNorm variant (GroupNorm with one group) exists for the optimization experiments (Fig 6),
where BatchNorm statistics would make two networks with identical weights disagree.

Function and init follow the official code (gnosis/models/preresnet.py): the 1x1 projection
shortcut reads the block's raw input, convs get a He fan-out normal, norms scale 1 / bias 0, and
the linear head keeps PyTorch's default init.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.core.errors import ConfigError
from kd_jax.models.registry import MODELS
from kd_jax.models.init import he_fan_out_normal, torch_dense

NORMS = ("batch", "layer")
BN_EPSILON = 1e-5         # PyTorch's BatchNorm eps; kd_jax/models/fold.py folds with the same
STAGE_WIDTHS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)
BOTTLENECK_EXPANSION = 4

ModuleDef = Callable[..., nn.Module]


def block_layout(depth: int) -> tuple[str, int]:
  """Returns (block kind, blocks per stage) for a depth; rejects depths neither formula fits."""
  if isinstance(depth, int) and not isinstance(depth, bool):
    if 8 <= depth < 44 and (depth - 2) % 6 == 0:
      return "basic", (depth - 2) // 6
    if depth >= 44 and (depth - 2) % 9 == 0:
      return "bottleneck", (depth - 2) // 9
  raise ConfigError(f"model.depth={depth!r} is not a valid PreResNet depth; use 6n+2 below 44 "
                    "(basic blocks: 8, 14, 20, 26, 32, 38) or 9n+2 from 44 on "
                    "(bottleneck blocks: 47, 56, 65, ..., 110)")


def scaled_width(channels: int, width: float) -> int:
  """Channel count under the width multiplier, never below one channel."""
  return max(1, int(round(channels * width)))


def _check_options(norm: str, width: float) -> None:
  if norm not in NORMS:
    raise ConfigError(f"model.norm={norm!r} is not a PreResNet norm; choose one of: "
                      f"{', '.join(NORMS)}")
  if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
    raise ConfigError(f"model.width={width!r} must be a positive number (1.0 = 16/32/64 channels)")


def conv_layer(dtype: Any = jnp.float32) -> ModuleDef:
  """The bias-free, He fan-out initialized conv of every PreResNet layer."""
  return functools.partial(nn.Conv, use_bias=False, kernel_init=he_fan_out_normal, dtype=dtype)


def norm_layer(norm: str, train: bool, axis_name: Optional[str] = None,
               dtype: Any = jnp.float32) -> ModuleDef:
  """BatchNorm (PyTorch's momentum 0.1 and eps) or LayerNorm over (H, W, C) of each example."""
  if norm == "batch":
    return functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=BN_EPSILON, axis_name=axis_name, dtype=dtype)
  # One-group GroupNorm: no batch statistics at all.
  return functools.partial(nn.GroupNorm, num_groups=1, epsilon=1e-5, dtype=dtype)


class BasicBlock(nn.Module):
  """norm → ReLU → conv3x3 → norm → ReLU → conv3x3, plus the shortcut.

  Where the stride or width changes, the shortcut is a strided 1x1 conv of the raw input ``x``
  (not of the pre-activation), as in the official code.
  """
  planes: int
  stride: int
  conv: ModuleDef
  norm: ModuleDef
  folded: bool = False  # norm2 folded into conv1 (a biased conv): eval-mode teachers only

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    pre = nn.relu(self.norm(name="norm1")(x))
    y = self.conv(self.planes, (3, 3), strides=self.stride, padding=1, use_bias=self.folded,
                  name="conv1")(pre)
    y = nn.relu(y if self.folded else self.norm(name="norm2")(y))
    y = self.conv(self.planes, (3, 3), padding=1, name="conv2")(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.planes:
      shortcut = self.conv(self.planes, (1, 1), strides=self.stride, padding=0,
                           name="proj")(x)
    return y + shortcut


class BottleneckBlock(nn.Module):
  """norm → ReLU → 1x1 → norm → ReLU → 3x3 (strided) → norm → ReLU → 1x1 (×4 channels).

  As in BasicBlock, a needed projection shortcut is a 1x1 conv of the raw input ``x``; every
  bottleneck model needs one in its first block too (16 → 64 channels).
  """
  planes: int
  stride: int
  conv: ModuleDef
  norm: ModuleDef
  folded: bool = False  # norm2 / norm3 folded into conv1 / conv2: eval-mode teachers only

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    out_channels = self.planes * BOTTLENECK_EXPANSION
    pre = nn.relu(self.norm(name="norm1")(x))
    y = self.conv(self.planes, (1, 1), padding=0, use_bias=self.folded, name="conv1")(pre)
    y = nn.relu(y if self.folded else self.norm(name="norm2")(y))
    y = self.conv(self.planes, (3, 3), strides=self.stride, padding=1, use_bias=self.folded,
                  name="conv2")(y)
    y = nn.relu(y if self.folded else self.norm(name="norm3")(y))
    y = self.conv(out_channels, (1, 1), padding=0, name="conv3")(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out_channels:
      shortcut = self.conv(out_channels, (1, 1), strides=self.stride, padding=0,
                           name="proj")(x)
    return y + shortcut


class PreResNet(nn.Module):
  """Stem conv → three stages (strides 1/2/2) → norm → ReLU → global average pool → dense.

  The official code pools with a fixed 8x8 window; on 32x32 inputs that is this global mean.
  ``folded=True`` is the eval-only form whose variables :func:`kd_jax.models.fold.fold_batchnorm`
  makes: every norm that reads a conv's output directly is folded into that conv.
  """
  num_classes: int
  depth: int = 56
  norm: str = "batch"
  width: float = 1.0
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32
  folded: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, return_features: bool = False):
    kind, blocks = block_layout(self.depth)
    _check_options(self.norm, self.width)
    if self.folded and (train or self.norm != "batch"):
      raise ValueError("a folded PreResNet is an eval-mode BatchNorm model (train=False only)")
    conv = conv_layer(self.dtype)
    norm = norm_layer(self.norm, train, self.bn_axis_name, self.dtype)
    block_cls = BasicBlock if kind == "basic" else BottleneckBlock

    y = conv(scaled_width(STAGE_WIDTHS[0], self.width), (3, 3), padding=1, name="stem")(x)
    features = []
    for s, (channels, stride) in enumerate(zip(STAGE_WIDTHS, STAGE_STRIDES)):
      planes = scaled_width(channels, self.width)
      for b in range(blocks):
        y = block_cls(planes=planes, stride=stride if b == 0 else 1, conv=conv, norm=norm,
                      folded=self.folded, name=f"stage{s + 1}_block{b + 1}")(y)
      features.append(y.astype(jnp.float32))
    y = nn.relu(norm(name="final_norm")(y))
    y = jnp.mean(y, axis=(1, 2))
    logits = torch_dense(self.num_classes, y.shape[-1], dtype=self.dtype,
                         name="head")(y).astype(jnp.float32)
    if return_features:
      return logits, features
    return logits


def _build(num_classes: int, depth: int, norm: str, width: float, bn_axis_name: Optional[str],
           dtype: Any) -> PreResNet:
  block_layout(depth)  # fail at build time, not at the first apply
  _check_options(norm, width)
  return PreResNet(num_classes=num_classes, depth=depth, norm=norm, width=width,
                   bn_axis_name=bn_axis_name, dtype=dtype)


@MODELS.register("preresnet")
def preresnet(num_classes: int, depth: int = 56, norm: str = "batch", width: float = 1.0,
              bn_axis_name: Optional[str] = None, dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, depth, norm, width, bn_axis_name, dtype)


@MODELS.register("preresnet20")
def preresnet20(num_classes: int, width: float = 1.0, bn_axis_name: Optional[str] = None,
                dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, 20, "batch", width, bn_axis_name, dtype)


@MODELS.register("preresnet56")
def preresnet56(num_classes: int, width: float = 1.0, bn_axis_name: Optional[str] = None,
                dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, 56, "batch", width, bn_axis_name, dtype)


@MODELS.register("preresnet110")
def preresnet110(num_classes: int, width: float = 1.0, bn_axis_name: Optional[str] = None,
                 dtype: Any = jnp.float32) -> nn.Module:
  return _build(num_classes, 110, "batch", width, bn_axis_name, dtype)


@MODELS.register("resnet20_ln")
def resnet20_ln(num_classes: int, width: float = 1.0, bn_axis_name: Optional[str] = None,
                dtype: Any = jnp.float32) -> nn.Module:
  """ResNet-20 with LayerNorm, for the optimization experiments (Fig 6, Table 1)."""
  return _build(num_classes, 20, "layer", width, bn_axis_name, dtype)
