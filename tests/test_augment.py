"""Augmentation ops and the policy parser against numpy/scipy/colorsys references and invariants."""
from __future__ import annotations

import colorsys
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from kd_jax.data import augment, augment_ops
from kd_jax.core.errors import ConfigError


def _keys(n: int, seed: int = 0, start: int = 0) -> jax.Array:
  return augment.example_keys_for(jax.random.key(seed), jnp.arange(start, start + n))


_JITTED: dict = {}


def _run(policy, images, ex_keys, batch_key=None):
  """Runs a policy under jit, compiling each policy once for the whole file."""
  batch_key = jax.random.key(123) if batch_key is None else batch_key
  cache_key = tuple(policy) if isinstance(policy, list) else policy
  if cache_key not in _JITTED:
    _JITTED[cache_key] = jax.jit(augment.make_augment(policy))
  out, real = _JITTED[cache_key](jnp.asarray(images), ex_keys, batch_key)
  return np.asarray(out), np.asarray(real)


def _rand_images(shape, seed=0):
  # Strictly positive so no window of the image can be confused with zero padding.
  return np.random.default_rng(seed).uniform(0.05, 1.0, shape).astype(np.float32)


# ---------------------------------------------------------------------------- geometry


def test_crop_is_a_window_of_the_zero_padded_image_and_differs_per_example():
  pad, b = 2, 16
  img = _rand_images((8, 8, 1))
  x = np.broadcast_to(img, (b, 8, 8, 1))
  out, real = _run(f"crop({pad})", x, _keys(b))
  padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
  offsets = []
  for o in out:
    hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
            if np.array_equal(padded[dy:dy + 8, dx:dx + 8], o)]
    assert len(hits) == 1
    offsets.append(hits[0])
  assert len(set(offsets)) >= 4  # identical images, different keys → different crops
  assert real.all()


# "vflip" and "vflip()" are both the lone op (no preset is named like an op).
@pytest.mark.parametrize("name,axis", [("hflip", 1), ("vflip()", 0), ("vflip", 0)])
def test_flip_twice_with_the_same_keys_is_identity(name, axis):
  b = 32
  img = _rand_images((5, 6, 3))
  x = np.broadcast_to(img, (b, 5, 6, 3))
  keys = _keys(b)
  once, _ = _run(name, x, keys)
  twice, _ = _run(name, once, keys)
  np.testing.assert_array_equal(twice, x)
  flipped = [np.array_equal(o, np.flip(img, axis)) for o in once]
  kept = [np.array_equal(o, img) for o in once]
  assert all(f != k for f, k in zip(flipped, kept))
  assert 4 <= sum(flipped) <= 28  # p = 0.5 over 32 examples


_rotate = jax.jit(augment_ops.rotate_image)


def test_rotate_image_quarter_turns_equal_np_rot90():
  img = _rand_images((7, 7, 3))
  for angle, k in [(0.0, 0), (90.0, 1), (180.0, 2), (-90.0, 3), (270.0, 3), (450.0, 1)]:
    out = np.asarray(_rotate(jnp.asarray(img), angle))
    np.testing.assert_array_equal(out, np.rot90(img, k, axes=(0, 1)), err_msg=str(angle))


@pytest.mark.parametrize("angle", [30.0, -17.0, 123.0])
def test_rotate_image_matches_scipy_bilinear_zero_fill(angle):
  img = _rand_images((9, 12, 2))
  out = np.asarray(_rotate(jnp.asarray(img), angle))
  # scipy with axes=(1, 0) turns the displayed picture counter-clockwise for positive angles.
  ref = scipy.ndimage.rotate(img, angle, axes=(1, 0), reshape=False, order=1,
                             mode="grid-constant", cval=0.0, prefilter=False)
  np.testing.assert_allclose(out, ref, atol=2e-6)


_rotate_nearest = jax.jit(functools.partial(augment_ops.rotate_image, interpolation="nearest"))


@pytest.mark.parametrize("size", [7, 8])
def test_nearest_rotation_by_90_degrees_is_np_rot90(size):
  # Sign convention: +90° turns the displayed picture counter-clockwise, as np.rot90(k=1),
  # torchvision and Pillow do; -90° is k=3 (clockwise).
  img = _rand_images((size, size, 3), seed=size)
  for angle, k in [(90.0, 1), (-90.0, 3), (180.0, 2)]:
    out = np.asarray(_rotate_nearest(jnp.asarray(img), angle))
    np.testing.assert_array_equal(out, np.rot90(img, k, axes=(0, 1)), err_msg=str(angle))


@pytest.mark.parametrize("angle", [30.0, -17.0, 123.0])
def test_rotate_image_nearest_matches_scipy_order_0(angle):
  img = _rand_images((9, 12, 2))
  out = np.asarray(_rotate_nearest(jnp.asarray(img), angle))
  ref = scipy.ndimage.rotate(img, angle, axes=(1, 0), reshape=False, order=0,
                             mode="grid-constant", cval=0.0, prefilter=False)
  np.testing.assert_array_equal(out, ref)


def test_official_rotation_preset_copies_pixels_without_blending():
  b = 8
  img = _rand_images((8, 8, 1))
  out, real = _run("official_rotation", np.broadcast_to(img, (b, 8, 8, 1)), _keys(b))
  assert np.isin(out, np.append(img.ravel(), 0.0)).all()  # nearest: input values or fill
  assert len({o.tobytes() for o in out}) > 1 and real.all()


def test_rotate_op_angles_stay_in_range_and_vary():
  b, n, r = 16, 15, 6
  img = np.zeros((n, n, 1), np.float32)
  img[n // 2, n // 2 + r] = 1.0  # a dot straight right of the centre, at angle 0
  out, _ = _run("rotate(degrees=20)", np.broadcast_to(img, (b, n, n, 1)), _keys(b))
  ys, xs = np.mgrid[0:n, 0:n] - n // 2
  mass = out[..., 0].sum(axis=(1, 2))
  cy = (out[..., 0] * ys).sum(axis=(1, 2)) / mass
  cx = (out[..., 0] * xs).sum(axis=(1, 2)) / mass
  angles = np.degrees(np.arctan2(-cy, cx))  # counter-clockwise as displayed
  assert np.all(np.abs(angles) <= 21.0)
  assert angles.max() - angles.min() > 10.0


# ---------------------------------------------------------------------------- colour


@pytest.mark.parametrize("channels", [1, 3])
def test_jitter_zero_strength_is_identity_and_full_strength_stays_in_range(channels):
  x = _rand_images((6, 5, 5, channels))
  same, _ = _run("jitter(0, 0, 0, 0)", x, _keys(6))
  np.testing.assert_array_equal(same, x)
  out, _ = _run("jitter(0.5, 0.5, 0.5, 0.5)", x, _keys(6))
  assert out.min() >= 0.0 and out.max() <= 1.0
  assert not np.allclose(out, x)


def test_jitter_brightness_scales_each_image_by_one_factor_in_range():
  b, s = 32, 0.3
  x = _rand_images((b, 4, 4, 3)) * 0.5  # so 1.3 · x never clips
  out, _ = _run(f"jitter(brightness={s}, contrast=0, saturation=0, hue=0)", x, _keys(b))
  ratio = out / x
  per_image = ratio.reshape(b, -1)
  np.testing.assert_allclose(per_image, np.broadcast_to(per_image[:, :1], per_image.shape),
                             rtol=1e-5)
  assert np.all(per_image >= 1 - s - 1e-5) and np.all(per_image <= 1 + s + 1e-5)
  assert per_image[:, 0].std() > 0.05


def test_colour_adjustments_match_closed_forms():
  img = _rand_images((4, 5, 3))
  gray = img @ np.array([0.2989, 0.587, 0.114], np.float32)
  for f in (0.0, 0.6, 1.4):
    sat = np.clip(f * img + (1 - f) * gray[..., None], 0, 1)
    np.testing.assert_allclose(augment_ops.adjust_saturation(jnp.asarray(img), f), sat, atol=1e-6)
    con = np.clip(f * img + (1 - f) * gray.mean(), 0, 1)
    np.testing.assert_allclose(augment_ops.adjust_contrast(jnp.asarray(img), f), con, atol=1e-6)
    np.testing.assert_allclose(augment_ops.adjust_brightness(jnp.asarray(img), f),
                               np.clip(f * img, 0, 1), atol=1e-6)
  one = img[..., :1]
  np.testing.assert_array_equal(augment_ops.adjust_saturation(jnp.asarray(one), 0.3), one)
  np.testing.assert_array_equal(augment_ops.adjust_hue(jnp.asarray(one), 0.3), one)


@pytest.mark.parametrize("shift", [0.0, 0.13, -0.4, 0.5])
def test_adjust_hue_matches_colorsys(shift):
  img = _rand_images((6, 6, 3), seed=3)
  img[0, 0] = [0.5, 0.5, 0.5]  # grey: hue undefined, must stay put
  img[0, 1] = [0.0, 0.0, 0.0]
  img[0, 2] = [1.0, 0.0, 0.0]
  ref = np.empty_like(img)
  for idx in np.ndindex(img.shape[:2]):
    h, s, v = colorsys.rgb_to_hsv(*img[idx].astype(np.float64))
    ref[idx] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
  out = np.asarray(jax.jit(augment_ops.adjust_hue)(jnp.asarray(img), shift))
  np.testing.assert_allclose(out, ref, atol=2e-6)


# ---------------------------------------------------------------------------- batch ops


def test_mixup_is_a_convex_mix_with_a_permutation():
  b = 8
  x = _rand_images((b, 4, 4, 3)).astype(np.float64)
  out, real = _run("mixup(1.0)", x.astype(np.float32), _keys(b), jax.random.key(7))
  assert real.all()
  lams, partners = [], []
  for i in range(b):
    best = (np.abs(out[i] - x[i]).max(), i, None)  # a fixed point of the permutation
    for j in range(b):
      if best[0] < 1e-5:
        break
      if j == i:
        continue
      d = (x[i] - x[j]).ravel()
      lam = float(d @ (out[i] - x[j]).ravel() / (d @ d))  # least-squares λ for partner j
      err = np.abs(lam * x[i] + (1 - lam) * x[j] - out[i]).max()
      if err < best[0]:
        best = (err, j, lam)
    assert best[0] < 1e-5
    partners.append(best[1])
    if best[2] is not None:
      lams.append(best[2])
  assert sorted(partners) == list(range(b))
  assert lams, "the permutation fixed every example"
  np.testing.assert_allclose(lams, lams[0], atol=1e-5)
  assert 0.0 <= lams[0] <= 1.0


def _cutmix_box(x, out):
  """Recovers the partner of each example and the pasted region (brute force)."""
  b = x.shape[0]
  partners, masks = [], []
  for i in range(b):
    changed = np.any(out[i] != x[i], axis=-1)
    cands = [j for j in range(b)
             if np.array_equal(out[i][changed], x[j][changed])
             and (j == i) == (not changed.any())]
    assert len(cands) == 1, "a pixel came from neither x nor one partner"
    partners.append(cands[0])
    if cands[0] != i:
      masks.append(changed)
  assert sorted(partners) == list(range(b))
  return masks


def test_cutmix_pastes_one_rectangle_of_plausible_size_from_a_permuted_partner():
  # α large → λ ≈ 0.5, so an unclipped box is ≈ sqrt(0.5)·H by sqrt(0.5)·W.
  b, h, w = 6, 32, 24
  x = _rand_images((b, h, w, 1))
  side_h, side_w = np.sqrt(0.5) * h, np.sqrt(0.5) * w
  unclipped = 0
  for seed in range(12):
    out, real = _run("cutmix(alpha=10000.0)", x, _keys(b), jax.random.key(seed))
    assert real.all()
    masks = _cutmix_box(x, out)
    if not masks:
      continue
    for m in masks:
      np.testing.assert_array_equal(m, masks[0])  # one box for the whole batch
    rows, cols = np.nonzero(masks[0].any(1))[0], np.nonzero(masks[0].any(0))[0]
    assert masks[0][rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # a filled rectangle
    assert masks[0].sum() == rows.size * cols.size
    assert rows.size <= side_h + 1 and cols.size <= side_w + 1
    if rows[0] > 0 and rows[-1] < h - 1 and cols[0] > 0 and cols[-1] < w - 1:
      unclipped += 1
      assert abs(rows.size - side_h) <= 1 and abs(cols.size - side_w) <= 1
  assert unclipped >= 1


def test_noise_replaces_about_p_and_flags_is_real():
  b, p = 4000, 0.2
  x = np.full((b, 2, 2, 1), 0.5, np.float32)
  out, real = _run(f"noise({p})", x, _keys(b))
  replaced = np.any(out != 0.5, axis=(1, 2, 3))
  np.testing.assert_array_equal(real, ~replaced)
  sd = np.sqrt(b * p * (1 - p))
  assert abs(replaced.sum() - b * p) < 5 * sd
  assert out.min() >= 0.0 and out.max() <= 1.0


# ---------------------------------------------------------------------------- keys, devices

# Every per-example op; jitter's contrast uses a per-image mean, a classic place to leak
# statistics across the batch.
_PER_EXAMPLE = "crop|hflip|rotate(30)|jitter(0.2,0.2,0.2,0.1)|noise(0.5)"


def test_example_keys_depend_only_on_position():
  step = jax.random.key(5)
  all_keys = augment.example_keys_for(step, jnp.arange(10))
  some = augment.example_keys_for(step, jnp.array([7, 3]))
  data = np.asarray(jax.random.key_data(all_keys))
  np.testing.assert_array_equal(np.asarray(jax.random.key_data(some)), data[[7, 3]])
  assert len({tuple(d) for d in data}) == 10
  np.testing.assert_array_equal(data[4], np.asarray(jax.random.key_data(
      jax.random.fold_in(step, 4))))


def test_same_example_key_same_output_whatever_the_batch():
  x = _rand_images((8, 8, 8, 3))
  keys = augment.example_keys_for(jax.random.key(9), jnp.arange(100, 108))
  full, real_full = _run(_PER_EXAMPLE, x, keys, jax.random.key(1))
  order = np.array([4, 1])
  other = np.concatenate([x[order], _rand_images((6, 8, 8, 3), seed=8)])
  other_keys = jnp.concatenate([keys[order], _keys(6, seed=4)])
  part, real_part = _run(_PER_EXAMPLE, other, other_keys, jax.random.key(2))
  np.testing.assert_allclose(part[:2], full[order], atol=1e-6)
  np.testing.assert_array_equal(real_part[:2], real_full[order])


def test_sharded_over_devices_equals_single_device():
  from jax.sharding import Mesh, PartitionSpec as P
  n_dev = jax.device_count()
  assert n_dev == 4
  b = 2 * n_dev
  x = jnp.asarray(_rand_images((b, 8, 8, 3)))
  keys = _keys(b, seed=3)
  bkey = jax.random.key(11)
  policy = "crop|hflip|rotate(30)"  # key handling is shared by all per-example ops
  fn = augment.make_augment(policy)
  ref_out, ref_real = _run(policy, x, keys, bkey)
  mesh = Mesh(np.array(jax.devices()), ("data",))
  sharded = jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P("data"), P("data"), P()),
                                  out_specs=(P("data"), P("data"))))
  out, real = sharded(x, keys, bkey)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref_out), atol=1e-6)
  np.testing.assert_array_equal(np.asarray(real), np.asarray(ref_real))


def test_empty_policy_is_identity():
  x = _rand_images((3, 4, 4, 1))
  for spec in ("", "none", [], ()):
    out, real = _run(spec, x, _keys(3))
    np.testing.assert_array_equal(out, x)
    assert real.dtype == bool and real.all()


# ---------------------------------------------------------------------------- parser


def test_presets_parse_to_the_paper_policies():
  base = (("crop", (("pad", 4),)), ("hflip", ()))
  jit = ("jitter", (("brightness", 0.2), ("contrast", 0.2), ("saturation", 0.2), ("hue", 0.2)))
  rot20 = ("rotate", (("degrees", 20.0), ("interpolation", "bilinear")))
  expected = {
      "none": (),
      "baseline": base,
      "baseline+rotation": base + (rot20,),
      "official_rotation": (("rotate", (("degrees", 90.0), ("interpolation", "nearest"))),)
                           + base,
      "baseline+vflip": base + (("vflip", ()),),
      "baseline+colorjitter": base + (jit,),
      "combined": base + (rot20, ("vflip", ()), jit),
      "baseline+mixup": base + (("mixup", (("alpha", 1.0),)),),
      "baseline+cutmix": base + (("cutmix", (("alpha", 1.0),)),),
      "baseline+noise": base + (("noise", (("p", 0.2),)),),
  }
  assert set(augment.POLICY_PRESETS) == set(expected)
  for name, want in expected.items():
    assert augment.parse_policy(name) == want, name
  from kd_jax.data.augment_ops import AUGMENTATIONS
  assert not set(augment.POLICY_PRESETS) & set(AUGMENTATIONS.names())  # no preset shadows an op
  for op in ("noise", "noise()"):
    assert augment.parse_policy(op) == (("noise", (("p", 0.2),)),)


def test_parser_args_lists_and_hashability():
  a = augment.parse_policy("crop(4)|rotate(degrees=20)")
  b = augment.parse_policy(["crop", " rotate( 20 ) "])
  c = augment.parse_policy("crop(pad=4)|rotate(20.0)")
  assert a == b == c
  assert hash(a) == hash(c)
  assert augment.parse_policy("jitter(0.1, hue=0.05)")[0][1] == (
      ("brightness", 0.1), ("contrast", 0.2), ("saturation", 0.2), ("hue", 0.05))
  assert augment.parse_policy(a) == a  # parsed tuples pass through
  assert augment.parse_policy(augment.format_policy(a)) == a
  assert isinstance(augment.parse_policy("mixup(2)")[0][1][0][1], float)


def test_parser_rotate_interpolation_argument():
  want = (("rotate", (("degrees", 90.0), ("interpolation", "nearest"))),)
  for spec in ("rotate(90,'nearest')", 'rotate(degrees=90, interpolation="nearest")',
               "rotate(90.0, interpolation='nearest')"):
    assert augment.parse_policy(spec) == want, spec
  assert augment.parse_policy("rotate") == (
      ("rotate", (("degrees", 20.0), ("interpolation", "bilinear"))),)
  assert augment.parse_policy(augment.format_policy(want)) == want


@pytest.mark.parametrize("spec,needles", [
    ("crop|blur", ["'blur'", "crop|blur", "cutmix", "rotate"]),
    ("crop(size=3)", ["'crop'", "size", "pad"]),
    ("crop(1, 2)", ["'crop'", "pad"]),
    ("crop(2.5)", ["pad=2.5", "int"]),
    ("crop(-1)", ["pad=-1", ">= 0"]),
    ("noise(1.5)", ["'noise'", "p=1.5", "[0, 1]"]),
    ("mixup(0)", ["alpha=0.0", "> 0"]),
    ("rotate('a lot')", ["degrees='a lot'", "number"]),
    ("rotate(x)", ["'rotate'", "unreadable"]),
    ("rotate(90,nearest)", ["'rotate'", "unreadable", "quoted strings"]),
    ("rotate(20,'cubic')", ["interpolation='cubic'", "'bilinear' or 'nearest'",
                            "interpolation='bilinear'"]),
    ("rotate(interpolation=1)", ["interpolation=1", "quoted string"]),
    ("jitter(hue=0.7)", ["hue=0.7", "[0, 0.5]"]),
    ("crop||hflip", ["crop||hflip", "empty"]),
    ("crop(4", ["crop(4"]),
])
def test_bad_policies_raise_config_error(spec, needles):
  with pytest.raises(ConfigError) as err:
    augment.parse_policy(spec)
  msg = str(err.value)
  assert "\n" not in msg
  for needle in needles:
    assert needle in msg, (needle, msg)


def test_make_augment_validates_before_running():
  with pytest.raises(ConfigError, match="blur"):
    augment.make_augment("baseline|blur")
  with pytest.raises(ConfigError, match="3"):
    augment.make_augment(3)


# ---------------------------------------------------------------------------- normalization


def test_normalize_modes():
  x = _rand_images((2, 3, 3, 3))
  np.testing.assert_allclose(augment.normalize(jnp.asarray(x), "unit_cube"), 2 * x - 1,
                             atol=1e-6)
  mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
  ref = (x - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(augment.normalize(jnp.asarray(x), "zscore", mean, std), ref,
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ConfigError, match="data.normalization"):
    augment.normalize(jnp.asarray(x), "minmax")
  with pytest.raises(ConfigError, match="data.normalization"):
    augment.normalize(jnp.asarray(x), "zscore")
  with pytest.raises(ConfigError, match="std"):
    augment.normalize(jnp.asarray(x), "zscore", mean, [0.2, 0.0, 0.3])
