"""Inception-v3 as FID and IS use it: the 2015 TensorFlow graph, in the form pytorch-fid ports it.

FID numbers are only comparable when they come from the same network with the same weights, so
this module follows pytorch-fid's ``fid_inception_v3`` (torchvision's Inception3 with its
``FIDInceptionA/C/E_1/E_2`` patches) layer for layer: 3×3 average pools in the A, C and first E
blocks leave the zero padding out of the mean (TensorFlow's pooling), the last E block pools
with a max, every conv is bias-free and followed by BatchNorm (ε = 1e-3, frozen statistics) and
ReLU, no auxiliary head, and a 1008-way classifier (the graph's 1001 ImageNet classes padded).

Inputs are NHWC images in [−1, 1] of any size ≥ 75×75 after resizing; :func:`resize` brings them
to 299×299 bilinearly with half-pixel centres and no antialiasing (torch's
``F.interpolate(mode="bilinear", align_corners=False)``, as pytorch-fid). The network returns the
2048-d average-pooled features (FID) and the classifier's logits without its bias: the original
Inception Score code multiplies the pool features by the classifier matrix alone (torch-fidelity
calls these ``logits_unbiased`` for that reason), so IS numbers stay comparable with it.

Module and parameter names mirror the PyTorch ``state_dict`` names
(``Mixed_5b.branch1x1.conv.weight`` ↔ ``params/Mixed_5b/branch1x1/conv/kernel``), so
``kd_jax.runner.inception_weights`` maps a state dict onto these variables name by name.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

#: Side length the FID Inception expects.
SIZE = 299
#: Classes of the 2015 graph's classifier (1001 ImageNet classes, padded to 1008).
NUM_CLASSES = 1008
FEATURES = 2048
#: Smallest input side the network takes (its stride-2 stages need at least this much).
MIN_SIZE = 75

Pad = tuple[tuple[int, int], tuple[int, int]]


def _pad(padding: int | tuple[int, int]) -> Pad:
  ph, pw = (padding, padding) if isinstance(padding, int) else padding
  return ((ph, ph), (pw, pw))


class BasicConv(nn.Module):
  """Conv (no bias) → BatchNorm (ε 1e-3, running statistics) → ReLU: torchvision's BasicConv2d."""
  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  padding: int | tuple[int, int] = 0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.features, self.kernel, strides=(self.stride, self.stride),
                padding=_pad(self.padding), use_bias=False, name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
    return nn.relu(x)


def _avg3(x: jax.Array) -> jax.Array:
  """3×3 stride-1 mean over the real pixels only (TensorFlow's SAME average pool)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=_pad(1), count_include_pad=False)


def _max3(x: jax.Array, stride: int = 1, padding: int = 1) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=_pad(padding))


class InceptionA(nn.Module):
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv(64, name="branch1x1")(x)
    b5 = BasicConv(48, name="branch5x5_1")(x)
    b5 = BasicConv(64, (5, 5), padding=2, name="branch5x5_2")(b5)
    b3 = BasicConv(64, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, (3, 3), padding=1, name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, (3, 3), padding=1, name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, name="branch_pool")(_avg3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """35×35 → 17×17 (Mixed_6a)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
    bd = BasicConv(64, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, (3, 3), padding=1, name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max3(x, 2, 0)], axis=-1)


class InceptionC(nn.Module):
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = self.channels_7x7
    b1 = BasicConv(192, name="branch1x1")(x)
    b7 = BasicConv(c, name="branch7x7_1")(x)
    b7 = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c, name="branch7x7dbl_1")(x)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, name="branch_pool")(_avg3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """17×17 → 8×8 (Mixed_7a)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv(192, name="branch3x3_1")(x)
    b3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv(192, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max3(x, 2, 0)], axis=-1)


class InceptionE(nn.Module):
  """The 8×8 blocks; ``max_pool`` marks the last one, which the 2015 graph pools with a max."""
  max_pool: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv(320, name="branch1x1")(x)
    b3 = BasicConv(384, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, (3, 3), padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], -1)
    pooled = _max3(x) if self.max_pool else _avg3(x)
    bp = BasicConv(192, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """The FID Inception on NHWC inputs in [−1, 1] already at their final size (see :func:`resize`);
  returns ``(pool features (N, 2048), logits without the classifier bias (N, 1008))``."""
  num_classes: int = NUM_CLASSES

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
    x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
    x = BasicConv(64, (3, 3), padding=1, name="Conv2d_2b_3x3")(x)
    x = _max3(x, 2, 0)
    x = BasicConv(80, name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
    x = _max3(x, 2, 0)
    for name, pool in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
      x = InceptionA(pool, name=name)(x)
    x = InceptionB(name="Mixed_6a")(x)
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                     ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    pool = jnp.mean(x, axis=(1, 2))
    return pool, UnbiasedDense(self.num_classes, name="fc")(pool)


class UnbiasedDense(nn.Module):
  """A Dense layer that holds its bias (so the weights load whole) but leaves it out of the
  output, as the original IS code does."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    self.param("bias", nn.initializers.zeros, (self.features,))
    return x @ kernel


def resize(x: jax.Array, size: int = SIZE) -> jax.Array:
  """NHWC images to ``size``×``size``, bilinear, half-pixel centres, no antialiasing (torch's
  ``interpolate(mode="bilinear", align_corners=False)``, which pytorch-fid uses)."""
  n, _, _, c = x.shape
  return jax.image.resize(x, (n, size, size, c), "bilinear", antialias=False)


def variables_like() -> dict:
  """Shapes and dtypes of the network's variables (``params``, ``batch_stats``); no compute. They
  do not depend on the input size, so the smallest input the network takes is traced."""
  net = InceptionV3()
  return jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1, MIN_SIZE, MIN_SIZE, 3))))
