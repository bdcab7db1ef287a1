"""Weight initializers of the official PyTorch models, in one place so every model agrees.

The official code sets a He fan-out normal on the PreResNet and VGG convolutions and leaves every
other Linear / Conv2d at PyTorch's default, which draws the weight (kaiming_uniform with a=√5)
and the bias both from U(−1/√fan_in, 1/√fan_in). Flax's defaults (lecun_normal kernels, zero
biases) are a different starting distribution, so the models use these instead.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = nn.initializers.Initializer

# normal(0, √(2 / (k·k·out_channels))), untruncated: the explicit conv init of PreResNet and VGG.
he_fan_out_normal: Initializer = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def torch_default_kernel() -> Initializer:
  """U(−b, b) with b = 1/√fan_in: U(−b, b) has variance b²/3, hence the scale 1/3.

  Flax counts fan_in as PyTorch does: ``in`` for a Dense kernel, in·kh·kw for a conv kernel.
  """
  return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias(fan_in: int) -> Initializer:
  """U(−1/√fan_in, 1/√fan_in); a bias initializer sees only its own shape, hence the argument."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_dense(features: int, fan_in: int, **kwargs: Any) -> nn.Dense:
  """nn.Dense initialized as PyTorch's nn.Linear; ``fan_in`` is the input width."""
  return nn.Dense(features, kernel_init=torch_default_kernel(),
                  bias_init=torch_default_bias(fan_in), **kwargs)


def torch_conv(features: int, kernel_size: Sequence[int], in_channels: int,
               **kwargs: Any) -> nn.Conv:
  """nn.Conv initialized as PyTorch's nn.Conv2d (fan_in = in_channels·kh·kw)."""
  fan_in = in_channels * math.prod(kernel_size)
  return nn.Conv(features, tuple(kernel_size), kernel_init=torch_default_kernel(),
                 bias_init=torch_default_bias(fan_in), **kwargs)
