"""LeNet-5 as in the paper (docs/paper.md, Architectures), for the MNIST experiment (Fig 2).

Every layer keeps PyTorch's default init, as in the official code (gnosis/models/lenet.py).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.models.registry import MODELS
from kd_jax.models.init import torch_conv, torch_dense


class LeNet5(nn.Module):
  """conv 6@5x5 pad 2 → ReLU → avgpool 2 → conv 16@5x5 → ReLU → avgpool 2 → 120 → 84 → C."""
  num_classes: int
  bn_axis_name: Optional[str] = None  # unused: LeNet has no BatchNorm; kept for one interface.

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, return_features: bool = False):
    del train
    h1 = nn.relu(torch_conv(6, (5, 5), x.shape[-1], padding=2)(x))
    h1 = nn.avg_pool(h1, (2, 2), strides=(2, 2))
    h2 = nn.relu(torch_conv(16, (5, 5), h1.shape[-1], padding="VALID")(h1))
    h2 = nn.avg_pool(h2, (2, 2), strides=(2, 2))
    flat = h2.reshape((h2.shape[0], -1))
    h3 = nn.relu(torch_dense(120, flat.shape[-1])(flat))
    h3 = nn.relu(torch_dense(84, h3.shape[-1])(h3))
    logits = torch_dense(self.num_classes, h3.shape[-1])(h3).astype(jnp.float32)
    if return_features:
      return logits, [h1, h2, h3]
    return logits


@MODELS.register("lenet5")
def lenet5(num_classes: int, bn_axis_name: Optional[str] = None) -> nn.Module:
  return LeNet5(num_classes=num_classes, bn_axis_name=bn_axis_name)
