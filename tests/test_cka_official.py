"""kd_jax.kd.cka_official against a float64 numpy transcription of the official computation."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.kd import cka_official


# ------------------------------------------------------- the official steps, in numpy float64
# gnosis/utils/metrics.py preact_cka and cka/CKA.py kernel_CKA / kernel_HSIC / rbf / centering.


def _ref_centering(k: np.ndarray) -> np.ndarray:
  n = k.shape[0]
  h = np.eye(n) - np.ones([n, n]) / n
  return np.dot(np.dot(h, k), h)


def _ref_rbf(x: np.ndarray) -> np.ndarray:
  gx = np.dot(x, x.T)
  kx = np.diag(gx) - gx + (np.diag(gx) - gx).T
  mdist = np.median(kx[kx != 0])
  sigma = math.sqrt(mdist)
  kx *= -0.5 / (sigma * sigma)
  return np.exp(kx)


def _ref_kernel_cka(x: np.ndarray, y: np.ndarray) -> float:
  hsic = lambda a, b: np.sum(_ref_centering(_ref_rbf(a)) * _ref_centering(_ref_rbf(b)))
  return hsic(x, y) / (np.sqrt(hsic(x, x)) * np.sqrt(hsic(y, y)))


def _ref_preact_cka(t_nhwc: np.ndarray, s_nhwc: np.ndarray, batch_size: int) -> float:
  t_nchw = np.transpose(t_nhwc, (0, 3, 1, 2)).astype(np.float64)
  s_nchw = np.transpose(s_nhwc, (0, 3, 1, 2)).astype(np.float64)
  num_batches = math.ceil(len(t_nchw) / batch_size)  # len(dataloader), drop_last=False
  cka = 0.0
  for i in range(0, len(t_nchw), batch_size):
    avg_t = np.mean(t_nchw[i:i + batch_size], axis=(1, 2))
    avg_s = np.mean(s_nchw[i:i + batch_size], axis=(1, 2))
    cka += _ref_kernel_cka(avg_t.T, avg_s.T) / num_batches
  return cka


# ---------------------------------------------------------------------------- tests


def _features(n: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, h, w, c)).astype(np.float32)


def _related(t: np.ndarray, c_s: int, seed: int, noise: float = 0.5) -> np.ndarray:
  """A 'student' that mixes the teacher's channels (c_t → c_s) plus noise."""
  rng = np.random.default_rng(seed)
  mix = rng.normal(size=(t.shape[-1], c_s)).astype(np.float32)
  return (t @ mix + noise * rng.normal(size=t.shape[:3] + (c_s,))).astype(np.float32)


def test_batch_matches_the_official_steps():
  # H, W, C all distinct (and differing channel counts) so a wrong axis cannot pass.
  t = _features(128, 6, 8, 5, seed=0)
  s = _related(t, 7, seed=1)
  got = float(cka_official.official_cka_batch(t, s))
  want = _ref_preact_cka(t, s, 128)
  assert got == pytest.approx(want, abs=2e-5)
  assert 0.0 < want < 1.0
  unrelated = _features(128, 6, 8, 5, seed=2)
  assert float(cka_official.official_cka_batch(t, unrelated)) == pytest.approx(
      _ref_preact_cka(t, unrelated, 128), abs=2e-5)


def test_split_average_weights_a_short_last_batch_like_full_ones():
  t = _features(300, 4, 8, 3, seed=3)   # batches of 128, 128 and 44
  s = _related(t, 6, seed=4)
  want = _ref_preact_cka(t, s, 128)
  assert cka_official.official_cka(t, s, batch_size=128) == pytest.approx(want, abs=2e-5)
  per_batch = [float(cka_official.official_cka_batch(t[i:i + 128], s[i:i + 128]))
               for i in (0, 128, 256)]
  assert cka_official.official_cka(t, s) == pytest.approx(np.mean(per_batch), abs=1e-6)
  # Column profiles [N, W] give the same number as the full NHWC outputs.
  profiles = [np.asarray(cka_official.column_profiles(f)) for f in (t, s)]
  assert profiles[0].shape == (300, 8)
  assert cka_official.official_cka(*profiles) == pytest.approx(want, abs=2e-5)


def test_identical_scaled_or_channel_permuted_inputs_give_one():
  t = _features(64, 5, 8, 6, seed=5)
  assert cka_official.official_cka(t, t, batch_size=32) == pytest.approx(1.0, abs=1e-5)
  # Channels and rows are averaged away; the median bandwidth absorbs any scale.
  assert cka_official.official_cka(t, 3.7 * t[..., ::-1]) == pytest.approx(1.0, abs=1e-5)


def _standard_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
  """Kornblith et al.: images are the samples, all activations their features."""
  x = x.reshape(len(x), -1).astype(np.float64)
  y = y.reshape(len(y), -1).astype(np.float64)
  k = _ref_centering(x @ x.T)
  l = _ref_centering(y @ y.T)
  return float(np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))


def test_it_is_not_standard_cka_over_examples():
  # Noise with zero mean over rows and channels at every (image, column) changes the images
  # but not a single column profile: standard CKA drops, the official one stays at 1.
  t = _features(32, 4, 8, 3, seed=6)
  noise = np.random.default_rng(9).normal(size=t.shape).astype(np.float32)
  noise -= noise.mean(axis=(1, 3), keepdims=True)
  s = t + 2.0 * noise
  np.testing.assert_allclose(cka_official.column_profiles(s), cka_official.column_profiles(t),
                             atol=1e-5)
  assert cka_official.official_cka(t, s) == pytest.approx(1.0, abs=1e-5)
  assert _standard_linear_cka(t, s) < 0.9


def test_shape_errors():
  t = _features(16, 4, 8, 3, seed=7)
  with pytest.raises(ValueError, match="same width"):
    cka_official.official_cka_batch(t, _features(16, 4, 6, 3, seed=8))
  with pytest.raises(ValueError, match="same images"):
    cka_official.official_cka(t, t[:8])
  with pytest.raises(ValueError, match="NHWC"):
    cka_official.column_profiles(t[0])


def test_kernel_bandwidth_is_the_median_squared_distance():
  # Points 0, 1, 3, 7 on a line: squared distances 1, 4, 9, 16, 36, 49 (each twice in the
  # matrix). σ² = their median 12.5, not (median distance)² = 3.5² = 12.25.
  x = np.array([[0.0], [1.0], [3.0], [7.0]], np.float32)
  got = np.asarray(cka_official._rbf_median(x))
  d2 = (x - x.T) ** 2
  np.testing.assert_allclose(got, np.exp(-d2 / (2 * 12.5)), rtol=1e-6)
  np.testing.assert_allclose(got, _ref_rbf(x.astype(np.float64)), rtol=1e-6)
  assert not np.allclose(got, np.exp(-d2 / (2 * 12.25)), rtol=1e-3)
  rng = np.random.default_rng(10)
  x = rng.normal(size=(8, 128)).astype(np.float32)
  np.testing.assert_allclose(cka_official._rbf_median(x), _ref_rbf(x.astype(np.float64)),
                             rtol=1e-5, atol=1e-7)


def _random_variables(model, x, seed):
  """Random weights of ``model`` drawn in numpy: He fan-out conv and dense kernels (as the
  model's own init), norm scales near 1, small biases. Only the shapes come from flax
  (``eval_shape`` traces the init without compiling it: eager ``model.init`` compiles every
  initializer op by op, ~15 s on 2 cores, for weights this wiring test does not care about)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if leaf.ndim >= 2:  # conv [kh, kw, in, out] or dense [in, out] kernel
      fan_out = math.prod(leaf.shape[:-2]) * leaf.shape[-1]
      v = rng.normal(0.0, math.sqrt(2.0 / fan_out), leaf.shape)
    elif "scale" in name:
      v = 1.0 + 0.1 * rng.normal(size=leaf.shape)
    else:
      v = 0.1 * rng.normal(size=leaf.shape)
    return jnp.asarray(v, leaf.dtype)

  shapes = jax.eval_shape(model.init, jax.random.key(seed), x)
  return jax.tree_util.tree_map_with_path(draw, shapes)


def test_analysis_official_kernel_uses_column_profiles_of_stage_outputs():
  """The wiring: analysis.cka(kernel="official") on two PreResNets equals the numpy
  transcription above applied to the models' own stage outputs."""
  from kd_jax.runner import analysis
  from kd_jax.models import get_model
  model = get_model("preresnet", 10, depth=8, norm="layer", width=0.25)
  x = np.random.default_rng(0).uniform(-1, 1, (150, 32, 32, 3)).astype(np.float32)
  v_t, v_s = _random_variables(model, x[:1], 0), _random_variables(model, x[:1], 1)
  got = analysis.cka(model, v_t, model, v_s, jnp.asarray(x), "official")
  feats = lambda v: model.apply(v, x, train=False, return_features=True)[1]
  for i, (ft, fs) in enumerate(zip(feats(v_t), feats(v_s))):
    want = _ref_preact_cka(np.asarray(ft, np.float64), np.asarray(fs, np.float64), 128)
    assert got[f"stage{i + 1}"] == pytest.approx(want, abs=1e-4), i
