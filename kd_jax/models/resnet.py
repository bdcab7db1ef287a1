"""ResNet-50 for ImageNet (docs/paper.md, Table 2): v1.5, BatchNorm, the standard ImageNet stem.

v1.5 puts the stride of a downsampling bottleneck on its 3x3 convolution (v1 put it on the first
1x1), as torchvision's ``resnet50`` does. Stem: 7x7/2 conv → BN → ReLU → 3x3/2 max pool. Four
stages of 3, 4, 6, 3 bottleneck blocks (64, 128, 256, 512 planes, ×4 out) → global mean →
dense. With 1000 classes it has 25,557,032 parameters (BN scales and biases counted, running
statistics not), torchvision's count.

Initialisation is torchvision's: convolutions He fan-out normal, BN scale 1 / bias 0, the
head PyTorch's default Linear init; ``zero_init_residual`` sets the last BN scale of every block
to 0, so each block starts as the identity (Goyal et al., "Accurate, Large Minibatch SGD").
``dtype=bfloat16`` computes in bfloat16 while parameters and BN statistics stay float32
(flax keeps ``param_dtype`` float32 and computes BN statistics in at least float32).
``width`` scales every channel count (the CPU-sized ``mini`` runs a quarter-width ResNet-50).
"""
from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.core.errors import ConfigError
from kd_jax.models.registry import MODELS
from kd_jax.models.init import he_fan_out_normal, torch_dense
from kd_jax.models.preresnet import ModuleDef, scaled_width

STAGE_PLANES = (64, 128, 256, 512)
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
EXPANSION = 4



class Bottleneck(nn.Module):
  """1x1 → BN → ReLU → 3x3 (strided, v1.5) → BN → ReLU → 1x1 (×4) → BN, + shortcut → ReLU.

  The shortcut is a strided 1x1 conv + BN where the shape changes, else the input.
  """
  planes: int
  stride: int
  conv: ModuleDef
  norm: ModuleDef
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    out = self.planes * EXPANSION
    y = nn.relu(self.norm(name="bn1")(self.conv(self.planes, (1, 1), name="conv1")(x)))
    y = self.conv(self.planes, (3, 3), strides=self.stride, padding=1, name="conv2")(y)
    y = nn.relu(self.norm(name="bn2")(y))
    y = self.conv(out, (1, 1), name="conv3")(y)
    last_scale = nn.initializers.zeros if self.zero_init_residual else nn.initializers.ones
    y = self.norm(name="bn3", scale_init=last_scale)(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != out:
      shortcut = self.conv(out, (1, 1), strides=self.stride, name="proj_conv")(x)
      shortcut = self.norm(name="proj_bn")(shortcut)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """The ImageNet ResNet (bottleneck depths 50 / 101 / 152) on NHWC float inputs."""
  num_classes: int
  depth: int = 50
  width: float = 1.0
  zero_init_residual: bool = False
  bn_axis_name: Optional[str] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, return_features: bool = False):
    blocks = stage_blocks(self.depth)
    conv = functools.partial(nn.Conv, use_bias=False, padding=0, kernel_init=he_fan_out_normal,
                             dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, axis_name=self.bn_axis_name, dtype=self.dtype)
    y = conv(scaled_width(64, self.width), (7, 7), strides=2, padding=3, name="stem_conv")(
        x.astype(self.dtype))
    y = nn.relu(norm(name="stem_bn")(y))
    y = nn.max_pool(y, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    features = []
    for s, (planes, n) in enumerate(zip(STAGE_PLANES, blocks)):
      for b in range(n):
        y = Bottleneck(planes=scaled_width(planes, self.width),
                       stride=2 if (b == 0 and s > 0) else 1, conv=conv, norm=norm,
                       zero_init_residual=self.zero_init_residual,
                       name=f"stage{s + 1}_block{b + 1}")(y)
      features.append(y.astype(jnp.float32))
    y = jnp.mean(y, axis=(1, 2))
    logits = torch_dense(self.num_classes, y.shape[-1], dtype=self.dtype,
                         name="head")(y).astype(jnp.float32)
    return (logits, features) if return_features else logits


def stage_blocks(depth: int) -> Sequence[int]:
  """Bottleneck blocks per stage of a depth; other depths are a config error."""
  blocks = STAGE_BLOCKS.get(depth) if isinstance(depth, int) else None
  if blocks is None:
    raise ConfigError(f"model.depth={depth!r} is not a bottleneck ResNet depth; use 50, 101 "
                      "or 152")
  return blocks


def _check_width(width: float) -> None:
  if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
    raise ConfigError(f"model.width={width!r} must be a positive number (1.0 = 64…2048 "
                      "channels)")


@MODELS.register("resnet")
def resnet(num_classes: int, depth: int = 50, width: float = 1.0,
           zero_init_residual: bool = False, bn_axis_name: Optional[str] = None,
           dtype: Any = jnp.float32) -> nn.Module:
  stage_blocks(depth)  # fail at build time, not at the first apply
  _check_width(width)
  return ResNet(num_classes=num_classes, depth=depth, width=width,
                zero_init_residual=bool(zero_init_residual), bn_axis_name=bn_axis_name,
                dtype=dtype)


@MODELS.register("resnet50")
def resnet50(num_classes: int, width: float = 1.0, zero_init_residual: bool = False,
             bn_axis_name: Optional[str] = None, dtype: Any = jnp.float32) -> nn.Module:
  return resnet(num_classes, 50, width, zero_init_residual, bn_axis_name, dtype)
