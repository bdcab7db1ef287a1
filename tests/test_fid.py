"""FID and IS against closed forms and scipy written here, the streaming moments against numpy,
and the GAN evaluation end to end with random Inception weights (no real weights are reachable)."""
import json

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import scipy.stats

from kd_jax.models import inception
from kd_jax.runner import fid, gans
from kd_jax.runner.validate import validate
from kd_jax.core.errors import ConfigError
from random_inception import random_state_dict
from test_gan import _small_config, _tiny_config
from tiny import small_gan_images


def test_moments_match_numpy_over_uneven_batches():
  x = np.random.default_rng(0).normal(3.0, 2.0, (103, 7))
  m = fid.Moments(7)
  for a, b in ((0, 1), (1, 40), (40, 40), (40, 103)):
    m.add(x[a:b])
  np.testing.assert_allclose(m.mean, x.mean(axis=0), rtol=1e-12)
  np.testing.assert_allclose(m.cov, np.cov(x, rowvar=False), rtol=1e-10)
  assert m.n == 103


def test_fid_of_diagonal_gaussians_is_the_closed_form():
  rng = np.random.default_rng(1)
  mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
  d1, d2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
  # diagonal: (Σ₁Σ₂)^½ = diag(√(d₁d₂)), so FID = |μ₁−μ₂|² + Σ(√d₁ − √d₂)²
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
  got = fid.frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2))
  np.testing.assert_allclose(got, want, rtol=1e-10)


def test_fid_of_sample_statistics_matches_scipy_sqrtm():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12))
  y = rng.normal(0.5, 1.0, (300, 12)) @ rng.normal(size=(12, 12))
  mu1, s1, mu2, s2 = x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
  np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2), want, rtol=1e-8)


@pytest.mark.parametrize("rows,tol", [(300, 1e-12), (5, 1e-6)])
def test_fid_of_identical_statistics_is_zero(rows, tol):
  # 5 rows in 30 dims: a rank-4 covariance. Its 26 zero eigenvalues come out as ±1e-16 round-off,
  # whose square roots add ~1e-8 each (scipy's sqrtm is off by as much here).
  x = np.random.default_rng(3).normal(size=(rows, 30))
  mu, s = x.mean(0), np.cov(x, rowvar=False)
  assert abs(fid.frechet_distance(mu, s, mu, s)) < tol * np.trace(s)


def test_inception_score_closed_forms():
  uniform = np.zeros((50, 8))
  assert fid.inception_score(uniform) == pytest.approx((1.0, 0.0), abs=1e-12)
  # every split holds each of 4 classes equally often, predicted with certainty: IS = 4
  one_hot = 60.0 * np.eye(4)[np.tile(np.arange(4), 10 * 3)]
  mean, std = fid.inception_score(one_hot)
  assert mean == pytest.approx(4.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_matches_scipy_on_random_logits():
  z = np.random.default_rng(4).normal(0, 3, (95, 6))   # 95 rows: splits of 9 and 10
  scores = []
  for i in range(10):
    p = scipy.special.softmax(z[i * 95 // 10:(i + 1) * 95 // 10], axis=1)
    scores.append(np.exp(np.mean([scipy.stats.entropy(r, p.mean(0)) for r in p])))
  np.testing.assert_allclose(fid.inception_score(z), (np.mean(scores), np.std(scores)),
                             rtol=1e-10)


def test_fid_config_errors_are_one_line(tmp_path):
  c = _tiny_config(tmp_path)
  c.gan.inception_path = str(tmp_path / "missing.npz")
  with pytest.raises(ConfigError, match="gan.inception_path=.*no such file") as e:
    validate(c)
  assert "\n" not in str(e.value)
  np.savez(tmp_path / "w.npz", x=np.zeros(1))
  c.gan.inception_path = str(tmp_path / "w.npz")
  c.gan.fid_samples = 5
  with pytest.raises(ConfigError, match="gan.fid_samples=5 must be at least 10"):
    validate(c)


class _SmallInputScorer(fid.InceptionScorer):
  """The scorer at the smallest input the FID Inception takes (75², not 299²): the same weights,
  layers, 2048-d features and 1008 logits, ~1/16 of the convolution work. The resolution is the
  scorer's own argument (part of its cache key); the wiring below does not depend on it."""

  made: list = []   # the size of each scorer built (the patch below is in effect)

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("size", inception.MIN_SIZE)
    super().__init__(*args, **kwargs)
    self.made.append(self.size)


def test_gan_evaluation_writes_fid_and_is(tmp_path, monkeypatch):
  monkeypatch.setattr(fid, "InceptionScorer", _SmallInputScorer)   # what fid.scorer_for builds
  monkeypatch.setattr(_SmallInputScorer, "made", [])
  weights = tmp_path / "inception.npz"
  np.savez(weights, **random_state_dict(0, fc_scale=2.0))
  c = _small_config(tmp_path / "store")  # 8×8 samples and images, resized for the network
  c.gan.inception_path = str(weights)
  c.gan.fid_samples = 10
  c.gan.fid_batch = 10
  images = small_gan_images()
  gan = gans.get_gan(c.gan, gans.gan_key(c.gan, c.data), tmp_path, images,
                     tensorboard=False)
  records = [json.loads(l) for l in (gan.entry / "metrics.jsonl").read_text().splitlines()]
  q = records[-1]["inception"]
  assert q["samples"] == 10 and q["real"] == 10
  assert np.isfinite(q["fid"]) and q["fid"] > 0            # samples ≠ real images
  assert q["is"] == pytest.approx(1.0) and q["is_std"] == pytest.approx(0.0)  # 1 image a split
  assert len(list(gan.entry.glob("fid-real-*.npz"))) == 1   # the real statistics, cached
  # a later run reads the finished GAN's numbers and the real statistics from the entry
  monkeypatch.setattr(fid, "extract", lambda *a, **k: pytest.fail("recomputed"))
  again = gans.get_gan(c.gan, gans.gan_key(c.gan, c.data), tmp_path, images,
                     tensorboard=False)
  assert not again.trained_now
  assert gans.inception_quality(c.gan, again, images) == q
  assert _SmallInputScorer.made and set(_SmallInputScorer.made) == {inception.MIN_SIZE}


def test_bad_weights_stop_before_any_gan_training(tmp_path):
  state = random_state_dict(0)
  del state["fc.bias"]
  np.savez(tmp_path / "w.npz", **state)
  c = _tiny_config(tmp_path / "store")
  c.gan.inception_path = str(tmp_path / "w.npz")
  images = np.zeros((12, 32, 32, 3), np.uint8)
  with pytest.raises(ConfigError, match="1 weights missing .*fc.bias") as e:
    gans.get_gan(c.gan, gans.gan_key(c.gan, c.data), tmp_path, images,
                     tensorboard=False)
  assert "\n" not in str(e.value)
  assert not [p for p in (tmp_path / "store").glob("gan-*") if p.is_dir()]  # no GAN entry
