"""On-device augmentation ops (docs/paper.md, Fig 3 policies), registered by name.

Images are float32 NHWC in [0, 1]. Randomness never depends on how a batch is split over
devices:

* per-example ops (crop, flips, rotate, jitter, noise) draw only from that example's own key,
  which the trainer derives from the example's global position;
* batch ops (mixup, cutmix) draw λ, the box and the partner permutation from ``batch_key``,
  shared by the whole global batch; the permutation is over the local batch.

Policies (strings of ops) are parsed and applied by ``kd_jax.data.augment``.
"""
from __future__ import annotations

from typing import Any, Callable, Union

import jax
import jax.numpy as jnp

from kd_jax.core.registry import Registry

Array = jax.Array
# op(images, is_real, example_keys, batch_key) -> (images, is_real)
Op = Callable[[Array, Array, Array, Array], tuple[Array, Array]]

AUGMENTATIONS: Registry[Callable[..., Op]] = Registry("augmentation", "augment policy")

# torchvision's rgb_to_grayscale weights, so jitter matches ColorJitter.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


class _BadArg(ValueError):
  """Raised by an op factory for an out-of-range argument; the parser adds the policy."""

  def __init__(self, arg: str, value: Any, allowed: str):
    super().__init__(f"{arg}={value!r} must be {allowed}")


def _check(ok: bool, arg: str, value: Any, allowed: str) -> None:
  if not ok:
    raise _BadArg(arg, value, allowed)


def _per_example(fn: Callable[[Array, Array], Array]) -> Op:
  """Lifts ``fn(image HWC, key) -> image`` to a batched op that keeps ``is_real``."""

  def op(images, is_real, example_keys, batch_key):
    del batch_key
    return jax.vmap(fn)(images, example_keys), is_real

  return op


# ----------------------------------------------------------------------------- geometry


def _bilinear_zero_fill(image: Array, ys: Array, xs: Array) -> Array:
  """Samples an HWC image at float pixel coordinates; outside the image reads as zero."""
  h, w, c = image.shape
  flat = image.reshape(h * w, c)
  y0 = jnp.floor(ys)
  x0 = jnp.floor(xs)
  wy = (ys - y0)[..., None]
  wx = (xs - x0)[..., None]
  y0 = y0.astype(jnp.int32)
  x0 = x0.astype(jnp.int32)

  def tap(yi, xi):
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    idx = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    return jnp.where(inside[..., None], jnp.take(flat, idx, axis=0), 0.0)

  return ((1 - wy) * ((1 - wx) * tap(y0, x0) + wx * tap(y0, x0 + 1))
          + wy * ((1 - wx) * tap(y0 + 1, x0) + wx * tap(y0 + 1, x0 + 1)))


def _nearest_zero_fill(image: Array, ys: Array, xs: Array) -> Array:
  """Reads the pixel whose centre is nearest (halves round up, as Pillow); outside is zero."""
  h, w, _ = image.shape
  yi = jnp.floor(ys + 0.5).astype(jnp.int32)
  xi = jnp.floor(xs + 0.5).astype(jnp.int32)
  inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
  pixels = image[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
  return jnp.where(inside[..., None], pixels, 0.0)


_SAMPLERS = {"bilinear": _bilinear_zero_fill, "nearest": _nearest_zero_fill}


def rotate_image(image: Array, angle_degrees: Union[float, Array],
                 interpolation: str = "bilinear") -> Array:
  """Rotates an HWC image counter-clockwise (as displayed, row 0 on top) about its centre.

  ``interpolation`` is 'bilinear' or 'nearest' (torchvision RandomRotation's default); zero
  fill, same output size. Positive angles turn the picture the way ``np.rot90(image, k=1)``
  does, and multiples of 90° are exact in both modes (the sample points land on pixel
  centres), so square images give exactly ``np.rot90``.
  """
  if interpolation not in _SAMPLERS:
    raise ValueError(f"interpolation={interpolation!r} must be one of {sorted(_SAMPLERS)}")
  h, w, _ = image.shape
  theta = jnp.deg2rad(jnp.mod(jnp.asarray(angle_degrees, jnp.float32), 360.0))
  # float32 cos(pi/2) is ~-4e-8, not 0: snap so quarter turns hit pixel centres exactly.
  cos = jnp.cos(theta)
  sin = jnp.sin(theta)
  cos = jnp.where(jnp.abs(cos) < 1e-6, 0.0, cos)
  sin = jnp.where(jnp.abs(sin) < 1e-6, 0.0, sin)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  yo, xo = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy,
                        jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
  # Inverse map: the output pixel at offset (yo, xo) reads the source at R(-θ)(yo, xo).
  ys = cos * yo + sin * xo + cy
  xs = cos * xo - sin * yo + cx
  return _SAMPLERS[interpolation](image, ys, xs).astype(image.dtype)


@AUGMENTATIONS.register("crop")
def crop(pad: int = 4) -> Op:
  """Zero-pad by ``pad`` on every side, then a random window of the original size."""
  _check(pad >= 0, "pad", pad, "an int >= 0")

  def one(image, key):
    if pad == 0:
      return image
    h, w, c = image.shape
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    oy, ox = jax.random.randint(key, (2,), 0, 2 * pad + 1)
    return jax.lax.dynamic_slice(padded, (oy, ox, 0), (h, w, c))

  return _per_example(one)


def _flip(axis: int) -> Op:
  def one(image, key):
    return jnp.where(jax.random.bernoulli(key, 0.5), jnp.flip(image, axis), image)

  return _per_example(one)


@AUGMENTATIONS.register("hflip")
def hflip() -> Op:
  """Left-right flip with probability 0.5 per example."""
  return _flip(1)


@AUGMENTATIONS.register("vflip")
def vflip() -> Op:
  """Up-down flip with probability 0.5 per example."""
  return _flip(0)


@AUGMENTATIONS.register("rotate")
def rotate(degrees: float = 20.0, interpolation: str = "bilinear") -> Op:
  """Rotation by an angle uniform in [-degrees, degrees] (see ``rotate_image``).

  Its place relative to ``crop`` changes the images (after the crop, the crop's zero padding
  is rotated too), so presets state the order.
  """
  _check(0 <= degrees <= 180, "degrees", degrees, "in [0, 180]")
  _check(interpolation in _SAMPLERS, "interpolation", interpolation,
         " or ".join(repr(k) for k in _SAMPLERS))

  def one(image, key):
    angle = jax.random.uniform(key, (), minval=-degrees, maxval=degrees)
    return rotate_image(image, angle, interpolation)

  return _per_example(one)


# ----------------------------------------------------------------------------- colour


def _gray(image: Array) -> Array:
  """HW1 luma of an HWC image (identity for one channel)."""
  if image.shape[-1] == 1:
    return image
  wts = jnp.asarray(_GRAY_WEIGHTS, image.dtype)
  return jnp.sum(image * wts, axis=-1, keepdims=True)


def _blend(a: Array, b: Array, factor: Union[float, Array]) -> Array:
  return jnp.clip(factor * a + (1 - factor) * b, 0.0, 1.0)


def adjust_brightness(image: Array, factor: Union[float, Array]) -> Array:
  """Scales intensities (blend with black), as torchvision."""
  return jnp.clip(factor * image, 0.0, 1.0)


def adjust_contrast(image: Array, factor: Union[float, Array]) -> Array:
  """Blends with the image's mean luma, as torchvision."""
  return _blend(image, jnp.mean(_gray(image)), factor)


def adjust_saturation(image: Array, factor: Union[float, Array]) -> Array:
  """Blends with the per-pixel luma; a one-channel image is returned unchanged."""
  if image.shape[-1] == 1:
    return image
  return _blend(image, _gray(image), factor)


def rgb_to_hsv(rgb: Array) -> Array:
  """[..., 3] RGB in [0, 1] → HSV with hue as a fraction of a full turn in [0, 1)."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  maxc = jnp.max(rgb, axis=-1)
  minc = jnp.min(rgb, axis=-1)
  delta = maxc - minc
  safe_delta = jnp.where(delta > 0, delta, 1.0)
  sat = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
  hue = jnp.where(maxc == r, (g - b) / safe_delta,
                  jnp.where(maxc == g, 2.0 + (b - r) / safe_delta, 4.0 + (r - g) / safe_delta))
  hue = jnp.where(delta > 0, jnp.mod(hue / 6.0, 1.0), 0.0)
  return jnp.stack([hue, sat, maxc], axis=-1)


def hsv_to_rgb(hsv: Array) -> Array:
  """Inverse of ``rgb_to_hsv``."""
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  h6 = jnp.mod(h, 1.0) * 6.0
  sector = jnp.floor(h6)
  f = h6 - sector
  sector = sector.astype(jnp.int32) % 6
  p = v * (1 - s)
  q = v * (1 - s * f)
  t = v * (1 - s * (1 - f))
  # Rows: sector 0..5; columns: which of (v, t, p, q) each channel takes.
  r = jnp.choose(sector, [v, q, p, p, t, v], mode="clip")
  g = jnp.choose(sector, [t, v, v, q, p, p], mode="clip")
  b = jnp.choose(sector, [p, p, t, v, v, q], mode="clip")
  return jnp.stack([r, g, b], axis=-1)


def adjust_hue(image: Array, shift: Union[float, Array]) -> Array:
  """Turns the hue by ``shift`` of a full turn; a one-channel image is returned unchanged."""
  if image.shape[-1] == 1:
    return image
  hsv = rgb_to_hsv(image)
  hsv = hsv.at[..., 0].set(jnp.mod(hsv[..., 0] + shift, 1.0))
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


@AUGMENTATIONS.register("jitter")
def jitter(brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
           hue: float = 0.2) -> Op:
  """torchvision ColorJitter in the fixed order brightness, contrast, saturation, hue.

  Factors are uniform in [max(0, 1 - s), 1 + s], the hue shift uniform in [-hue, hue] turns.
  A zero strength skips its step, so all-zero strengths are exactly the identity.
  """
  for name, val in (("brightness", brightness), ("contrast", contrast),
                    ("saturation", saturation)):
    _check(val >= 0, name, val, ">= 0")
  _check(0 <= hue <= 0.5, "hue", hue, "in [0, 0.5]")

  def factor(key, s):
    return jax.random.uniform(key, (), minval=max(0.0, 1.0 - s), maxval=1.0 + s)

  def one(image, key):
    kb, kc, ks, kh = jax.random.split(key, 4)
    if brightness > 0:
      image = adjust_brightness(image, factor(kb, brightness))
    if contrast > 0:
      image = adjust_contrast(image, factor(kc, contrast))
    if saturation > 0:
      image = adjust_saturation(image, factor(ks, saturation))
    if hue > 0:
      image = adjust_hue(image, jax.random.uniform(kh, (), minval=-hue, maxval=hue))
    return image

  return _per_example(one)


# ----------------------------------------------------------------------------- batch ops


@AUGMENTATIONS.register("mixup")
def mixup(alpha: float = 1.0) -> Op:
  """λ·x + (1−λ)·x[perm], one λ ~ Beta(α, α) per batch; the teacher labels the result."""
  _check(alpha > 0, "alpha", alpha, "> 0")

  def op(images, is_real, example_keys, batch_key):
    del example_keys
    k_lam, k_perm = jax.random.split(batch_key)
    lam = jax.random.beta(k_lam, alpha, alpha).astype(images.dtype)
    perm = jax.random.permutation(k_perm, images.shape[0])
    return lam * images + (1 - lam) * images[perm], is_real

  return op


@AUGMENTATIONS.register("cutmix")
def cutmix(alpha: float = 1.0) -> Op:
  """Pastes one box of x[perm] into x; box area ≈ (1−λ)·H·W at a random centre, clipped."""
  _check(alpha > 0, "alpha", alpha, "> 0")

  def op(images, is_real, example_keys, batch_key):
    del example_keys
    _, h, w, _ = images.shape
    k_lam, k_perm, k_y, k_x = jax.random.split(batch_key, 4)
    lam = jax.random.beta(k_lam, alpha, alpha)
    ratio = jnp.sqrt(1.0 - lam)
    box_h = jnp.round(ratio * h).astype(jnp.int32)
    box_w = jnp.round(ratio * w).astype(jnp.int32)
    cy = jax.random.randint(k_y, (), 0, h)
    cx = jax.random.randint(k_x, (), 0, w)
    y1, x1 = cy - box_h // 2, cx - box_w // 2
    rows = jnp.arange(h)
    cols = jnp.arange(w)
    in_rows = (rows >= y1) & (rows < y1 + box_h)  # out-of-image parts simply never match
    in_cols = (cols >= x1) & (cols < x1 + box_w)
    mask = (in_rows[:, None] & in_cols[None, :])[None, :, :, None]
    perm = jax.random.permutation(k_perm, images.shape[0])
    return jnp.where(mask, images[perm], images), is_real

  return op


@AUGMENTATIONS.register("noise")
def noise(p: float = 0.2) -> Op:
  """Replaces each image by uniform noise in [0, 1] with probability p; flags it not real."""
  _check(0 <= p <= 1, "p", p, "in [0, 1]")

  def one(image, key):
    k_coin, k_noise = jax.random.split(key)
    replace = jax.random.bernoulli(k_coin, p)
    fake = jax.random.uniform(k_noise, image.shape, image.dtype)
    return jnp.where(replace, fake, image), replace

  def op(images, is_real, example_keys, batch_key):
    del batch_key
    out, replaced = jax.vmap(one)(images, example_keys)
    return out, is_real & ~replaced

  return op


# ----------------------------------------------------------------------------- 1-D signals


@AUGMENTATIONS.register("shift")
def shift(max_shift: int = 4) -> Op:
  """Moves each example along the width by a uniform integer in [-max_shift, max_shift],
  repeating its edge columns (a 1-D signal, shaped 1 × L: MNIST-1D's translations, without
  the step a zero fill would put into a signal whose zero is not the middle of [0, 1])."""
  _check(max_shift >= 0, "max_shift", max_shift, "an int >= 0")

  def one(image, key):
    if max_shift == 0:
      return image
    h, w, c = image.shape
    padded = jnp.pad(image, ((0, 0), (max_shift, max_shift), (0, 0)), mode="edge")
    ox = jax.random.randint(key, (), 0, 2 * max_shift + 1)
    return jax.lax.dynamic_slice(padded, (0, ox, 0), (h, w, c))

  return _per_example(one)


@AUGMENTATIONS.register("gauss")
def gauss(std: float = 0.01) -> Op:
  """Adds i.i.d. Gaussian noise of ``std`` (in the [0, 1] units of the images) to every value;
  unlike ``noise``, the example stays real (a jittered signal, not a stand-in)."""
  _check(std >= 0, "std", std, ">= 0")

  def one(image, key):
    return image + std * jax.random.normal(key, image.shape, image.dtype)

  return _per_example(one)
