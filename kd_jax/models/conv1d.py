"""A small 1-D convolutional network for MNIST-1D (configs/testbed.py).

The paper's students are convolutional networks of the teacher's own architecture; for a
length-40 signal the same idea is a stack of strided 1-D convolutions (as in the MNIST-1D
paper's ConvBase: 3 layers, kernel 5 then 3, stride 2, then a linear readout of the flattened
features, which keeps where along the signal a feature fired). Signals arrive as float32
NHWC with H = 1 (``kd_jax.data.mnist1d_source``), so a 1-D convolution is a 2-D one with a
1 × k kernel: no reshape, the pipeline and augmentation see the same 4-D arrays as images.

``norm``: ``none`` (the ConvBase), ``layer`` (one-group GroupNorm after each conv: no batch
statistics, so two networks with equal weights agree, the Fig 6 setting) or ``batch``.
Initialization is PyTorch's default, as in the official code's small models (kd_jax/models/init.py).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.core.errors import ConfigError
from kd_jax.models.init import torch_conv, torch_dense
from kd_jax.models.registry import MODELS

NORMS = ("none", "layer", "batch")


class Conv1DNet(nn.Module):
  """``depth`` × (conv 1×k, stride 2 → norm → ReLU) → flatten → dense → C."""
  num_classes: int
  width: int = 32
  depth: int = 3
  kernel: int = 5
  norm: str = "none"
  bn_axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, return_features: bool = False):
    features = []
    h = x
    for i in range(self.depth):
      k = self.kernel if i == 0 else max(3, self.kernel - 2)
      h = torch_conv(self.width, (1, k), h.shape[-1], strides=(1, 2),
                     padding=((0, 0), (k // 2, k // 2)))(h)
      if self.norm == "layer":
        h = nn.GroupNorm(num_groups=1, epsilon=1e-5)(h)
      elif self.norm == "batch":
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         axis_name=self.bn_axis_name)(h)
      h = nn.relu(h)
      features.append(h)
    flat = h.reshape((h.shape[0], -1))
    logits = torch_dense(self.num_classes, flat.shape[-1])(flat).astype(jnp.float32)
    if return_features:
      return logits, features
    return logits


@MODELS.register("conv1d")
def conv1d(num_classes: int, width: int = 32, depth: int = 3, kernel: int = 5,
           norm: str = "none", bn_axis_name: Optional[str] = None) -> nn.Module:
  """The 1-D conv net; ``width`` channels in every layer, ``depth`` strided layers."""
  if norm not in NORMS:
    raise ConfigError(f"model.norm={norm!r} is not a norm of conv1d; use one of {NORMS}")
  for name, value in (("width", width), ("depth", depth), ("kernel", kernel)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"model.{name}={value!r} must be a positive int")
  return Conv1DNet(num_classes=num_classes, width=width, depth=depth, kernel=kernel, norm=norm,
                   bn_axis_name=bn_axis_name)
