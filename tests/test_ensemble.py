"""Ensemble averaging against numpy log(mean(softmax)); stacking utilities by round trips."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.kd import ensemble
from kd_jax.core.errors import ConfigError


def np_softmax(z):
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_ensemble_logprobs_matches_log_mean_softmax():
  rng = np.random.default_rng(0)
  z = (rng.normal(size=(5, 9, 6)) * 4).astype(np.float32)
  got = np.asarray(ensemble.ensemble_logprobs(z))
  assert got.shape == (9, 6) and got.dtype == np.float32
  np.testing.assert_allclose(got, np.log(np_softmax(z).mean(0)), rtol=1e-5, atol=1e-5)


def test_ensemble_logprobs_extreme_logits_stay_finite_and_normalized():
  rng = np.random.default_rng(1)
  z = (rng.normal(size=(3, 8, 5)) * 3).astype(np.float32)
  z[0, 0] = [1e4, -1e4, 0, 0, 0]
  z[1, 0] = [-1e4, 1e4, 0, 0, 0]
  z[2, 0] = [-1e4, -1e4, 1e4, 0, 0]
  z[:, 1] = -1e4
  z[:, 1, 3] = 1e4  # all members certain of class 3
  got = np.asarray(ensemble.ensemble_logprobs(z))
  assert np.all(np.isfinite(got))
  np.testing.assert_allclose(np.exp(got.astype(np.float64)).sum(-1), 1.0, atol=1e-5)
  with np.errstate(divide="ignore"):  # -inf where float64 probabilities underflow too
    ref = np.log(np_softmax(z).mean(0))
  ok = ref > -50
  np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-5, atol=1e-5)
  assert np.all(got[~ok] < -50)
  # Row 0: each of three members puts mass 1 on a different class -> log(1/3) each.
  np.testing.assert_allclose(got[0, :3], np.log(1 / 3), atol=1e-6)


def test_single_member_is_log_softmax():
  z = np.random.default_rng(2).normal(size=(1, 4, 7)).astype(np.float32) * 5
  ref = np.log(np_softmax(z[0]))
  np.testing.assert_allclose(ensemble.ensemble_logprobs(z), ref, rtol=1e-5, atol=1e-5)


def _trees(m=4):
  rng = np.random.default_rng(3)
  return [{"dense": {"kernel": rng.normal(size=(3, 2)).astype(np.float32),
                     "bias": np.full((2,), float(i), np.float32)},
           "scale": np.float32(i + 1)} for i in range(m)]


def test_stack_take_and_count():
  trees = _trees(4)
  stacked = ensemble.stack_members(trees)
  assert ensemble.num_members(stacked) == 4
  assert stacked["dense"]["kernel"].shape == (4, 3, 2)
  for i, tree in enumerate(trees):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(u[i], v), stacked, tree)
  first2 = ensemble.take_members(stacked, 2)
  assert ensemble.num_members(first2) == 2
  np.testing.assert_array_equal(first2["dense"]["bias"][:, 0], [0.0, 1.0])
  np.testing.assert_array_equal(first2["scale"], [1.0, 2.0])
  assert ensemble.num_members(ensemble.take_members(stacked, np.int64(4))) == 4


@pytest.mark.parametrize("k", [0, 5, -1, 2.0, True])
def test_take_members_rejects_bad_counts(k):
  stacked = ensemble.stack_members(_trees(4))
  with pytest.raises(ConfigError, match="distill.teacher_members"):
    ensemble.take_members(stacked, k)


def test_num_members_rejects_inconsistent_leading_axes():
  with pytest.raises(ValueError, match="disagree on the member axis"):
    ensemble.num_members({"a": np.zeros((3, 2)), "b": np.zeros((4,))})


@pytest.mark.parametrize("mode", ensemble.MEMBER_MODES)
def test_apply_members_matches_a_loop_over_members(mode):
  model = nn.Dense(5)
  x = jnp.asarray(np.random.default_rng(4).normal(size=(6, 3)), jnp.float32)
  members = [model.init(jax.random.key(i), x) for i in range(3)]
  stacked = ensemble.stack_members(members)
  out = jax.jit(lambda v: ensemble.apply_members(model.apply, v, x, mode=mode))(stacked)
  assert out.shape == (3, 6, 5)
  for i, v in enumerate(members):
    k, b = np.asarray(v["params"]["kernel"]), np.asarray(v["params"]["bias"])
    np.testing.assert_allclose(out[i], np.asarray(x) @ k + b, rtol=1e-5, atol=1e-5)
  # Keyword arguments reach every member.
  scaled = ensemble.apply_members(lambda v, x, scale: model.apply(v, x) * scale,
                                  stacked, x, mode=mode, scale=2.0)
  np.testing.assert_allclose(scaled, 2.0 * np.asarray(out), rtol=1e-6)


@pytest.mark.parametrize("mode", ensemble.MEMBER_MODES)
@pytest.mark.parametrize("m", [1, 3])
def test_map_members_maps_every_argument_member_by_member(mode, m):
  rng = np.random.default_rng(5)
  a = rng.normal(size=(m, 4, 2)).astype(np.float32)
  b = {"w": rng.normal(size=(m, 2)).astype(np.float32), "k": np.arange(m, dtype=np.int32)}
  out = ensemble.map_members(lambda x, t: (x @ t["w"] + t["k"], t["k"] * 2), a, b, mode=mode)
  for i in range(m):
    np.testing.assert_allclose(out[0][i], a[i] @ b["w"][i] + i, rtol=1e-5, atol=1e-6)
    assert int(out[1][i]) == 2 * i


def test_member_mode_rejects_unknown_names():
  with pytest.raises(ConfigError, match="run.member_mode='pmap'.*auto, vmap, unroll, map"):
    ensemble.map_members(lambda x: x, np.zeros((2, 3)), mode="pmap")
  assert ensemble.resolve_mode("vmap") == "vmap"
  assert ensemble.resolve_mode("auto") in ensemble.MEMBER_MODES[1:]


def test_config_validation_names_a_bad_member_mode():
  from kd_jax import config as config_lib
  from kd_jax.runner.validate import validate
  c = config_lib.base_config()
  validate(c)  # the default passes
  c.run.member_mode = "unrolled"
  with pytest.raises(ConfigError, match="run.member_mode='unrolled' is not known"):
    validate(c)
