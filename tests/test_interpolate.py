"""Interpolated init and BatchNorm refresh, checked against numpy written here."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict

from kd_jax.core.errors import ConfigError
from kd_jax.kd.interpolate import interpolate, refresh_batch_stats, scaled_lr


def _trees(seed: int = 0):
  rng = np.random.default_rng(seed)
  def tree():
    return {
        "params": {"dense": {"kernel": rng.normal(size=(3, 4)).astype(np.float32),
                             "bias": rng.normal(size=(4,)).astype(np.float32)}},
        "batch_stats": {"bn": {"mean": rng.normal(size=(4,)).astype(np.float32),
                               "var": rng.uniform(0.5, 2, size=(4,)).astype(np.float32)}},
    }
  teacher, random = tree(), tree()
  # Signed zeros and an infinity make arithmetic end points (0·t + 1·r, 1·t + 0·r) differ bitwise.
  teacher["params"]["dense"]["bias"][0] = -0.0
  teacher["params"]["dense"]["bias"][1] = np.inf
  random["params"]["dense"]["bias"][2] = -0.0
  random["params"]["dense"]["bias"][3] = np.inf
  return teacher, random


def _bits(tree):
  return [np.asarray(x).view(np.uint32) for x in jax.tree_util.tree_leaves(tree)]


@pytest.mark.parametrize("lam, expect", [(0.0, "random"), (1.0, "teacher")])
def test_end_points_are_bitwise(lam, expect):
  teacher, random = _trees()
  out = interpolate(teacher, random, lam)
  want = random if expect == "random" else teacher
  assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(random)
  for got, ref in zip(_bits(out), _bits(want)):
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("lam", [0.5, 0.3])
def test_interior_is_leafwise_mix(lam):
  teacher, random = _trees(1)
  out = interpolate(teacher, random, lam)
  for path_t, t in jax.tree_util.tree_flatten_with_path(teacher)[0]:
    r = random
    o = out
    for k in path_t:
      r, o = r[k.key], o[k.key]
    ref = lam * t.astype(np.float64) + (1 - lam) * r.astype(np.float64)
    finite = np.isfinite(ref)
    np.testing.assert_allclose(np.asarray(o)[finite], ref[finite], rtol=1e-6, atol=1e-6)
    assert np.asarray(o).dtype == np.float32


def test_traced_lam_under_jit_matches_numpy():
  teacher, random = _trees(2)
  f = jax.jit(interpolate)
  for lam in (0.0, 0.25, 1.0):
    out = f(teacher, random, jnp.float32(lam))
    k_t = teacher["params"]["dense"]["kernel"]
    k_r = random["params"]["dense"]["kernel"]
    np.testing.assert_allclose(out["params"]["dense"]["kernel"], lam * k_t + (1 - lam) * k_r,
                               rtol=1e-6, atol=1e-7)
  zero = f(teacher, random, jnp.float32(0.0))
  for got, ref in zip(_bits(zero), _bits(random)):
    np.testing.assert_array_equal(got, ref)


def test_frozendict_and_dict_interpolate_together():
  teacher, random = _trees(3)
  out = interpolate(FrozenDict(teacher), random, 0.5)
  np.testing.assert_allclose(out["batch_stats"]["bn"]["var"],
                             0.5 * teacher["batch_stats"]["bn"]["var"]
                             + 0.5 * random["batch_stats"]["bn"]["var"], rtol=1e-6)


def test_shape_mismatch_names_path():
  teacher, random = _trees()
  random["params"]["dense"]["kernel"] = np.zeros((3, 5), np.float32)
  with pytest.raises(ConfigError) as err:
    interpolate(teacher, random, 0.5)
  msg = str(err.value)
  assert "['params']['dense']['kernel']" in msg and "(3, 4)" in msg and "(3, 5)" in msg
  assert "\n" not in msg and "teacher" in msg


def test_missing_leaf_names_path():
  teacher, random = _trees()
  del random["batch_stats"]
  with pytest.raises(ConfigError, match=r"\['batch_stats'\]\['bn'\]\['mean'\]"):
    interpolate(teacher, random, 0.5)


def test_model_width_mismatch_from_registry():
  from kd_jax.models import get_model
  x = jnp.zeros((1, 28, 28, 1))
  # Shapes only (no convolution is run): the check happens before any arithmetic.
  t = jax.eval_shape(get_model("lenet5", 10).init, jax.random.key(0), x)
  s = jax.eval_shape(get_model("lenet5", 7).init, jax.random.key(1), x)
  with pytest.raises(ConfigError, match=r"\['params'\]\['Dense_2'\]\['bias'\]: shape \(10,\).*\(7,\)"):
    interpolate(t, s, 0.5)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_bad_lam(lam):
  teacher, random = _trees()
  with pytest.raises(ConfigError, match=r"distill\.init\.lam=.*\[0, 1\]"):
    interpolate(teacher, random, lam)
  with pytest.raises(ConfigError, match=r"distill\.init\.lam"):
    scaled_lr(0.1, lam, 1e-6)


def test_scaled_lr():
  assert scaled_lr(0.05, 0.0, 1e-6) == pytest.approx(0.05)
  assert scaled_lr(0.05, 0.5, 1e-6) == pytest.approx(0.025)
  assert scaled_lr(0.05, 0.875, 1e-6) == pytest.approx(0.00625)
  assert scaled_lr(0.05, 1.0, 1e-6) == pytest.approx(1e-6)
  assert scaled_lr(0.05, 0.99999, 1e-4) == pytest.approx(1e-4)


class _BNNet(nn.Module):
  momentum: float

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.Dense(3)(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5)(h)
    return nn.Dense(2)(h)


class _PlainNet(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(2)(x)


def _bn_setup(momentum: float, n_batches: int, batch: int = 32):
  rng = np.random.default_rng(4)
  model = _BNNet(momentum)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 5)))
  # Stats far from the data, as interpolated statistics would be.
  variables = {"params": variables["params"],
               "batch_stats": {"BatchNorm_0": {"mean": jnp.full((3,), 7.0),
                                               "var": jnp.full((3,), 9.0)}}}
  batches = [(rng.normal(size=(batch, 5)) * 2 + 1.5).astype(np.float32)
             for _ in range(n_batches)]
  k = np.asarray(variables["params"]["Dense_0"]["kernel"], np.float64)
  b = np.asarray(variables["params"]["Dense_0"]["bias"], np.float64)
  feats = [x.astype(np.float64) @ k + b for x in batches]
  return model, variables, batches, feats


def test_refresh_momentum_zero_takes_last_batch():
  model, variables, batches, feats = _bn_setup(0.0, 3)
  out = refresh_batch_stats(model.apply, variables, batches)
  bs = out["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(bs["mean"], feats[-1].mean(0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(bs["var"], feats[-1].var(0), rtol=1e-4, atol=1e-5)


def test_refresh_ema_follows_numpy_and_approaches_data_mean():
  model, variables, batches, feats = _bn_setup(0.9, 60)
  out = refresh_batch_stats(model.apply, variables, batches)
  mean, var = np.full(3, 7.0), np.full(3, 9.0)
  for h in feats:
    mean = 0.9 * mean + 0.1 * h.mean(0)
    var = 0.9 * var + 0.1 * h.var(0)
  bs = out["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(bs["mean"], mean, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(bs["var"], var, rtol=1e-4, atol=1e-4)
  data = np.concatenate(feats)
  # 0.9**60 ≈ 0.002 of the far start remains; the rest is a noisy average of batch means.
  assert np.all(np.abs(np.asarray(bs["mean"]) - data.mean(0)) < 0.1 * data.std(0))
  assert np.all(np.abs(np.asarray(variables["batch_stats"]["BatchNorm_0"]["mean"])
                       - data.mean(0)) > 1.0)
  for got, ref in zip(jax.tree_util.tree_leaves(out["params"]),
                      jax.tree_util.tree_leaves(variables["params"])):
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_refresh_reset_is_exact_batch_average(momentum):
  model, variables, batches, feats = _bn_setup(momentum, 5)
  out = refresh_batch_stats(model.apply, variables, batches, reset=True)
  bs = out["batch_stats"]["BatchNorm_0"]
  np.testing.assert_allclose(bs["mean"], np.mean([h.mean(0) for h in feats], 0),
                             rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(bs["var"], np.mean([h.var(0) for h in feats], 0),
                             rtol=1e-4, atol=1e-4)


def test_refresh_without_batch_stats_is_identity_and_empty_is_error():
  model = _PlainNet()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 5)))
  assert refresh_batch_stats(model.apply, variables, [np.ones((2, 5), np.float32)]) is variables
  bn_model, bn_vars, _, _ = _bn_setup(0.9, 1)
  with pytest.raises(ValueError, match="no batches"):
    refresh_batch_stats(bn_model.apply, bn_vars, [])
