"""SN-GAN (Miyato et al. 2018) for 32×32 images, as the paper's official code builds it.

Generator: z (128) → Dense 4·4·k → three upsampling residual blocks (BN, ReLU, 2× bilinear,
3×3 conv, BN, ReLU, 3×3 conv; identity bypass on the upsampled input) → BN, ReLU, 3×3 conv →
tanh, so samples lie in [−1, 1]. Discriminator: residual blocks with 2×2 average-pool
downsampling (the first block without a leading ReLU and with a 1×1 bypass), ReLU, global mean
over 8×8, Dense → one logit. Every discriminator layer is spectrally normalized, no generator
layer is; kernels are Xavier-uniform (gain √2 for 1×1 convs), biases PyTorch's default.

Spectral normalization is flax's ``nn.SpectralNorm``: it keeps the power-iteration vector ``u``
(and σ) in the ``batch_stats`` collection, i.e. as state beside the parameters, and writes it
only when called with ``update_stats=True`` (training). It reshapes a conv kernel HWIO to
(H·W·I, O); PyTorch reshapes (O, I·H·W): the same matrix transposed, the same top singular
value. One difference: in eval mode flax still runs its power iteration from the stored ``u``
(without storing the result) where PyTorch reuses the stored vectors as they are.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from kd_jax.models.init import torch_default_bias
from kd_jax.core.registry import Registry

#: GAN families by name (``gan.model.name``): each builds a (generator, discriminator) pair.
GAN_MODELS: Registry[Callable[..., tuple[nn.Module, nn.Module]]] = Registry(
    "GAN model", "gan.model.name")


def xavier(kernel_size: tuple[int, int]) -> nn.initializers.Initializer:
  """Xavier-uniform with the official gains: √2 on 1×1 convs (bypasses), 1 elsewhere."""
  gain = math.sqrt(2.0) if tuple(kernel_size) == (1, 1) else 1.0
  return nn.initializers.variance_scaling(gain * gain, "fan_avg", "uniform")


def conv(features: int, size: int, in_ch: int, name: str | None = None) -> nn.Conv:
  ks = (size, size)
  return nn.Conv(features, ks, padding="SAME", kernel_init=xavier(ks),
                 bias_init=torch_default_bias(in_ch * size * size), name=name)


def dense(features: int, fan_in: int, name: str | None = None) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.initializers.xavier_uniform(),
                  bias_init=torch_default_bias(fan_in), name=name)


def avg_pool2(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def upsample2(x: jax.Array) -> jax.Array:
  """2× bilinear (half-pixel centres, as torch's ``Upsample(mode='bilinear')``)."""
  n, h, w, c = x.shape
  return jax.image.resize(x, (n, 2 * h, 2 * w, c), "bilinear")


class GenBlock(nn.Module):
  """BN-ReLU-up-conv-BN-ReLU-conv plus the upsampled input (in = out channels)."""
  k: int

  @nn.compact
  def __call__(self, x, train: bool):
    bn = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
    h = upsample2(nn.relu(bn()(x)))
    h = conv(self.k, 3, self.k)(h)
    h = conv(self.k, 3, self.k)(nn.relu(bn()(h)))
    return h + upsample2(x)


class Generator(nn.Module):
  """z [B, z_dim] → images [B, 32, 32, channels] in [−1, 1] (the unit cube, rescaled)."""
  z_dim: int = 128
  k: int = 256
  channels: int = 3

  @nn.compact
  def __call__(self, z, train: bool = False):
    h = dense(4 * 4 * self.k, self.z_dim)(z).reshape(z.shape[0], 4, 4, self.k)
    for _ in range(3):
      h = GenBlock(self.k)(h, train)
    h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h))
    return jnp.tanh(conv(self.channels, 3, self.k)(h))


def sn(layer: nn.Module, x: jax.Array, train: bool) -> jax.Array:
  """``layer`` with a spectrally normalized kernel; ``u`` updates only when training."""
  return nn.SpectralNorm(layer)(x, update_stats=train)


class DiscBlock(nn.Module):
  """(ReLU)-conv-ReLU-conv, then 2× average pool when ``down``; bypass 1×1 conv if in ≠ out."""
  k: int
  in_ch: int
  down: bool
  first: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    h = x if self.first else nn.relu(x)
    h = sn(conv(self.k, 3, self.in_ch), h, train)
    h = sn(conv(self.k, 3, self.k), nn.relu(h), train)
    skip = x if self.in_ch == self.k else sn(conv(self.k, 1, self.in_ch), x, train)
    if self.down:
      h, skip = avg_pool2(h), avg_pool2(skip)
    return h + skip


class Discriminator(nn.Module):
  """images [B, 32, 32, C] in [−1, 1] → one logit per image [B]."""
  k: int = 128
  channels: int = 3

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = DiscBlock(self.k, self.channels, down=True, first=True)(x, train)
    h = DiscBlock(self.k, self.k, down=True)(h, train)
    h = DiscBlock(self.k, self.k, down=False)(h, train)
    h = DiscBlock(self.k, self.k, down=False)(h, train)
    h = jnp.mean(nn.relu(h), axis=(1, 2))          # AvgPool(8) over the 8×8 map
    return sn(dense(1, self.k), h, train)[:, 0]


@GAN_MODELS.register("sngan")
def sngan(z_dim: int = 128, gen_width: int = 256, disc_width: int = 128,
          channels: int = 3) -> tuple[nn.Module, nn.Module]:
  """The official sizes: z = 128, generator k = 256, discriminator k = 128."""
  return (Generator(z_dim=z_dim, k=gen_width, channels=channels),
          Discriminator(k=disc_width, channels=channels))


def get_gan(model_cfg: Any) -> tuple[nn.Module, nn.Module]:
  """(generator, discriminator) from ``gan.model`` (``name`` plus constructor options)."""
  opts = {k: v for k, v in dict(model_cfg).items() if k != "name"}
  from kd_jax.models.registry import check_options  # the shared "unknown option" error
  ctor = GAN_MODELS.get(model_cfg["name"])
  check_options(ctor, opts, model_cfg["name"], "gan.model")
  return ctor(**opts)
