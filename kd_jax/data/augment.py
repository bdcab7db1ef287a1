"""On-device augmentation ops and the policy parser (docs/paper.md, Fig 3 policies).

Images are float32 NHWC in [0, 1]; normalization to the model's input range comes after the
policy (``normalize``). Randomness never depends on how a batch is split over devices:

* per-example ops (crop, flips, rotate, jitter, noise) draw only from that example's own key,
  which the trainer derives from the example's global position (``example_keys_for``);
* batch ops (mixup, cutmix) draw λ, the box and the partner permutation from ``batch_key``,
  shared by the whole global batch; the permutation is over the local batch.

Each op folds its position in the policy into the keys, so two ops never reuse a draw.

A policy is a string ``"crop|hflip|mixup(1.0)"``, a list of op strings, or a preset name from
``POLICY_PRESETS``. A string that is exactly a preset name is the preset: ``"noise"`` means
``"crop|hflip|noise(0.2)"``; write ``"noise()"`` for the lone op.
"""
from __future__ import annotations

import ast
import functools
import inspect
import math
import re
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from kd_jax.errors import ConfigError
from kd_jax.registry import Registry

Array = jax.Array
# op(images, is_real, example_keys, batch_key) -> (images, is_real)
Op = Callable[[Array, Array, Array, Array], tuple[Array, Array]]
ParsedPolicy = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
PolicySpec = Union[str, Sequence[str], ParsedPolicy]

AUGMENTATIONS: Registry[Callable[..., Op]] = Registry("augmentation", "augment policy")
NORMALIZATIONS: Registry[Callable[..., Array]] = Registry("normalization", "data.normalization")

# Rotation (Fig 3) is not pinned down by the paper, so its degrees, interpolation and place in
# the policy are spelt out here. `rotation` and `combined` (±20°, bilinear, after crop|hflip)
# follow docs/paper.md's reading of the paper ("up to 20°") and are what the figure configs use
# (configs/fig3_augmentation.py, fig5_train_agreement.py, fig13_vgg.py), so their results stay
# comparable with the runs already reported. `official_rotation` is the official code's
# default: config/image_classification.yaml declares RandomRotation(degrees=90) before crop and
# horizontal_flip, and torchvision's RandomRotation interpolates nearest-neighbour by default.
# The official code applies ops in the order of the run's `augmentation.transforms_list`; the
# Fig 3 command lines are not in its repository, so "before the crop" is the declared order.
POLICY_PRESETS: dict[str, str] = {
    "none": "",
    "baseline": "crop|hflip",
    "rotation": "crop|hflip|rotate(20,'bilinear')",
    "official_rotation": "rotate(90,'nearest')|crop|hflip",
    "vflip": "crop|hflip|vflip",
    "colorjitter": "crop|hflip|jitter(0.2,0.2,0.2,0.2)",
    "combined": "crop|hflip|rotate(20,'bilinear')|vflip|jitter(0.2,0.2,0.2,0.2)",
    "mixup": "crop|hflip|mixup(1.0)",
    "cutmix": "crop|hflip|cutmix(1.0)",
    "noise": "crop|hflip|noise(0.2)",
    "ood": "crop|hflip",  # the OOD images are appended to the data by the splits module
}

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


# ----------------------------------------------------------------------------- parser

_OP_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def _signature_text(name: str) -> str:
  params = inspect.signature(AUGMENTATIONS.get(name)).parameters.values()
  return f"{name}(" + ", ".join(f"{p.name}={p.default!r}" for p in params) + ")"


def _op_error(policy: str, name: str, problem: str) -> ConfigError:
  return ConfigError(f"augment policy {policy!r}: op {name!r} {problem}; "
                     f"allowed: {_signature_text(name)}")


def _coerce(policy: str, name: str, arg: str, value: Any, default: Any) -> Any:
  """Gives each argument the type of its default: ints stay ints, floats accept ints, strings
  must be quoted strings."""
  if isinstance(default, str):
    if isinstance(value, str):
      return value
    raise _op_error(policy, name, f"argument {arg}={value!r} must be a quoted string")
  is_num = isinstance(value, (int, float)) and not isinstance(value, bool)
  if isinstance(default, int) and not isinstance(default, bool):
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    raise _op_error(policy, name, f"argument {arg}={value!r} must be an int")
  if is_num and math.isfinite(value):
    return float(value)
  raise _op_error(policy, name, f"argument {arg}={value!r} must be a finite number")


def _parse_op(text: str, policy: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
  match = _OP_RE.match(text)
  if not match:
    raise ConfigError(f"augment policy {policy!r}: cannot read op {text.strip()!r}; "
                      "write name or name(args), e.g. crop(4) or rotate(degrees=20)")
  name, arg_text = match.group(1), match.group(2)
  if name not in AUGMENTATIONS:
    raise ConfigError(f"augment policy {policy!r}: unknown op {name!r}; "
                      f"choose one of: {', '.join(AUGMENTATIONS.names())}")
  args: list[Any] = []
  kwargs: dict[str, Any] = {}
  if arg_text and arg_text.strip():
    try:
      call = ast.parse(f"_({arg_text})", mode="eval").body
      if not isinstance(call, ast.Call):
        raise ValueError(arg_text)
      for node in call.args:
        if isinstance(node, ast.Starred):
          raise ValueError(arg_text)
        args.append(ast.literal_eval(node))
      for kw in call.keywords:
        if kw.arg is None:
          raise ValueError(arg_text)
        kwargs[kw.arg] = ast.literal_eval(kw.value)
    except (SyntaxError, ValueError, TypeError):
      raise _op_error(policy, name, f"has unreadable arguments ({arg_text.strip()}); "
                      "use literal numbers or quoted strings, positional or keyword") from None
  factory = AUGMENTATIONS.get(name)
  sig = inspect.signature(factory)
  try:
    bound = sig.bind(*args, **kwargs)
  except TypeError as e:
    raise _op_error(policy, name, f"got bad arguments ({e})") from None
  bound.apply_defaults()
  values = tuple((k, _coerce(policy, name, k, v, sig.parameters[k].default))
                 for k, v in bound.arguments.items())
  try:
    factory(**dict(values))  # range checks happen here, once, at parse time
  except _BadArg as e:
    raise _op_error(policy, name, f"argument {e}") from None
  return name, values


def _is_parsed(spec: Any) -> bool:
  return isinstance(spec, tuple) and all(
      isinstance(op, tuple) and len(op) == 2 and isinstance(op[0], str)
      and isinstance(op[1], tuple) for op in spec) and len(spec) > 0


def parse_policy(spec: PolicySpec) -> ParsedPolicy:
  """Policy string, list of op strings, preset name or parsed tuple → validated parsed tuple.

  Returns ``((name, ((arg, value), ...)), ...)`` with every argument filled in (defaults
  included), so equal policies parse equal and the result can be a static jit argument.
  """
  if _is_parsed(spec):
    return tuple(_parse_op(_render(name, kw), repr(spec)) for name, kw in spec)
  if isinstance(spec, str):
    text = spec.strip()
    policy = spec
    if text in POLICY_PRESETS:
      text = POLICY_PRESETS[text]
    pieces = text.split("|") if text else []
  elif isinstance(spec, (list, tuple)) and all(isinstance(s, str) for s in spec):
    policy = "|".join(spec)
    pieces = [p for s in spec for p in s.split("|")]
  else:
    raise ConfigError(f"augment policy {spec!r} must be a string like 'crop|hflip', a list of "
                      f"op strings or a preset: {', '.join(POLICY_PRESETS)}")
  for piece in pieces:
    if not piece.strip():
      raise ConfigError(f"augment policy {policy!r} has an empty op; separate ops by a single "
                        "'|', e.g. 'crop|hflip'")
  return tuple(_parse_op(piece, policy) for piece in pieces)


def _render(name: str, kwargs: tuple[tuple[str, Any], ...]) -> str:
  return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in kwargs) + ")"


def format_policy(parsed: ParsedPolicy) -> str:
  """Parsed policy → a canonical policy string (for logs and result tables)."""
  return "|".join(_render(name, kw) for name, kw in parsed)


def apply_policy(policy: PolicySpec, images: Array, example_keys: Array,
                 batch_key: Array) -> tuple[Array, Array]:
  """Runs a policy on a [B, H, W, C] float batch in [0, 1].

  ``example_keys``: [B] typed keys, one per example (``example_keys_for``); ``batch_key``: one
  key shared by the global batch. Returns the images and ``is_real`` ([B] bool, False where an
  image was replaced by noise).
  """
  parsed = parse_policy(policy)  # trace-time only; cheap, and re-checks hand-built tuples
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise TypeError(f"augmentation expects float images in [0, 1], got dtype {images.dtype}")
  if images.ndim != 4:
    raise TypeError(f"augmentation expects NHWC images, got shape {images.shape}")
  is_real = jnp.ones(images.shape[:1], bool)
  for i, (name, kwargs) in enumerate(parsed):
    op = AUGMENTATIONS.get(name)(**dict(kwargs))
    keys_i = jax.vmap(jax.random.fold_in, in_axes=(0, None))(example_keys, i)
    images, is_real = op(images, is_real, keys_i, jax.random.fold_in(batch_key, i))
  return images, is_real


def make_augment(spec: PolicySpec) -> Callable[[Array, Array, Array], tuple[Array, Array]]:
  """Parses once, so config errors surface here; returns ``fn(images, example_keys, batch_key)``."""
  parsed = parse_policy(spec)
  return functools.partial(apply_policy, parsed)


def example_keys_for(step_key: Array, positions: Array) -> Array:
  """[B] per-example keys: each example's global position folded into the step key.

  Because a key depends only on (step key, position), an example is augmented the same way
  whichever device or local batch slot it lands in.
  """
  positions = jnp.asarray(positions, jnp.uint32)
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, positions)


# ----------------------------------------------------------------------------- normalization


@NORMALIZATIONS.register("unit_cube")
def _unit_cube(images01: Array, mean: Optional[Any] = None,
               std: Optional[Any] = None) -> Array:
  del mean, std
  return 2.0 * images01 - 1.0


@NORMALIZATIONS.register("zscore")
def _zscore(images01: Array, mean: Optional[Any] = None, std: Optional[Any] = None) -> Array:
  if mean is None or std is None:
    raise ConfigError("data.normalization='zscore' needs the per-channel mean and std of the "
                      "training images; pass mean= and std=, or use 'unit_cube'")
  mean_a = np.asarray(mean, np.float32).reshape(-1)
  std_a = np.asarray(std, np.float32).reshape(-1)
  channels = images01.shape[-1]
  if mean_a.size not in (1, channels) or std_a.size not in (1, channels):
    raise ConfigError(f"data.normalization='zscore': mean {mean_a.tolist()} and std "
                      f"{std_a.tolist()} need 1 or {channels} values (one per channel)")
  if not np.all(std_a > 0):
    raise ConfigError(f"data.normalization='zscore': std {std_a.tolist()} must be > 0")
  return (images01 - mean_a) / std_a


def check_normalization(mode: str) -> None:
  NORMALIZATIONS.check(mode)


def normalize(images01: Array, mode: str, mean: Optional[Any] = None,
              std: Optional[Any] = None) -> Array:
  """Maps [0, 1] images to the model's input range: 'unit_cube' → 2x−1, 'zscore' per channel."""
  return NORMALIZATIONS.get(mode)(images01, mean=mean, std=std)
