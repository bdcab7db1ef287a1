"""Losses against float64 numpy written here and the closed-form KD gradient."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.kd import losses
from kd_jax.core.errors import ConfigError


def np_log_softmax(z: np.ndarray) -> np.ndarray:
  z = np.asarray(z, np.float64)
  m = z.max(axis=-1, keepdims=True)
  return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def np_kd(zs, zt, tau):
  p = np.exp(np_log_softmax(np.asarray(zt, np.float64) / tau))
  logq = np_log_softmax(np.asarray(zs, np.float64) / tau)
  return -tau**2 * np.where(p > 0, p * logq, 0.0).sum(-1)


def np_kl(zs, zt, tau):
  logp = np_log_softmax(np.asarray(zt, np.float64) / tau)
  logq = np_log_softmax(np.asarray(zs, np.float64) / tau)
  p = np.exp(logp)
  return tau**2 * np.where(p > 0, p * (logp - logq), 0.0).sum(-1)


def np_ce(z, y):
  logp = np_log_softmax(z)
  out = np.zeros(len(y))
  for i, yi in enumerate(y):
    if yi >= 0:
      out[i] = -logp[i, yi]
  return out


def _data(seed=0, b=12, c=7, extreme=True):
  rng = np.random.default_rng(seed)
  zs = rng.normal(size=(b, c)).astype(np.float32) * 3
  zt_logits = rng.normal(size=(b, c)).astype(np.float32) * 3
  if extreme:
    zs[0] = 0.0
    zs[0, 2] = 1e4  # very peaked student
    zs[1, :] = -1e4
    zs[1, 5] = 1e4
    zt_logits[2, :] = 1e4 * np.sign(rng.normal(size=c))  # teacher probabilities that underflow
    zt_logits[3] = zt_logits[3, 0]  # uniform teacher (all tied)
  zt = np_log_softmax(zt_logits).astype(np.float32)
  y = rng.integers(0, c, size=b).astype(np.int32)
  return zs, zt, y


def _close(a, b, rtol=2e-5, atol=2e-4):
  np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("tau", [1.0, 4.0, 0.5])
def test_kd_loss_matches_numpy(tau):
  zs, zt, _ = _data()
  got = losses.kd_loss(zs, zt, tau)
  assert got.shape == (zs.shape[0],) and got.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(got)))
  _close(got, np_kd(zs, zt, tau))


def test_kd_loss_bf16_inputs_are_computed_in_float32():
  zs, zt, _ = _data(extreme=False)
  got = losses.kd_loss(jnp.asarray(zs, jnp.bfloat16), zt, 4.0)
  assert got.dtype == jnp.float32
  zs_rounded = np.asarray(jnp.asarray(zs, jnp.bfloat16).astype(jnp.float32))
  _close(got, np_kd(zs_rounded, zt, 4.0))


@pytest.mark.parametrize("tau", [1.0, 2.0, 4.0, 8.0])
def test_kd_gradient_closed_form(tau):
  zs, zt, _ = _data(seed=1, extreme=False)
  grad = jax.grad(lambda z: jnp.sum(losses.kd_loss(z, zt, tau)))(jnp.asarray(zs))
  q = np.exp(np_log_softmax(zs.astype(np.float64) / tau))
  p = np.exp(np_log_softmax(zt.astype(np.float64) / tau))
  _close(grad, tau * (q - p), rtol=1e-4, atol=1e-6)


def test_kl_kind_same_gradient_nonnegative_and_zero_at_match():
  zs, zt, _ = _data(seed=2)
  tau = 4.0
  kl = np.asarray(losses.kl_loss(zs, zt, tau))
  _close(kl, np_kl(zs, zt, tau), rtol=1e-4, atol=1e-3)
  assert np.all(kl >= -1e-5)
  assert np.all(kl[2:] > 1e-3)  # rows without extreme values clearly differ
  zs2, zt2, _ = _data(seed=3, extreme=False)
  g_kd = jax.grad(lambda z: jnp.sum(losses.kd_loss(z, zt2, tau)))(jnp.asarray(zs2))
  g_kl = jax.grad(lambda z: jnp.sum(losses.kl_loss(z, zt2, tau)))(jnp.asarray(zs2))
  np.testing.assert_allclose(g_kd, g_kl, atol=1e-5)
  # Perfect match: teacher log-probs are the student's own distribution.
  match = np_log_softmax(zs2).astype(np.float32)
  np.testing.assert_allclose(losses.kl_loss(zs2, match, tau), 0.0, atol=1e-4)
  np.testing.assert_allclose(losses.kl_loss(zs2, match, 1.0), 0.0, atol=1e-5)
  # ... whereas the KD loss there is τ²·H(p^τ) > 0.
  assert np.all(np.asarray(losses.kd_loss(zs2, match, tau)) > 0.1)


def test_cross_entropy_and_missing_labels():
  zs, _, y = _data(seed=4)
  y[[3, 7]] = -1
  got = losses.cross_entropy(zs, y)
  _close(got, np_ce(zs, y))
  assert np.asarray(got)[3] == 0.0 and np.asarray(got)[7] == 0.0


@pytest.mark.parametrize("kind,ref", [("kd", np_kd), ("kl", np_kl)])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_distill_loss_mixing_and_masking(kind, ref, alpha):
  zs, zt, y = _data(seed=5)
  tau = 4.0
  y[[4, 9]] = -1
  is_real = np.ones(len(y), bool)
  is_real[[5, 9, 10]] = False
  got = losses.distill_loss(zs, zt, y, is_real, tau, alpha, kind=kind)
  hard = np_ce(zs, y) * is_real  # CE at τ = 1, only real examples with a label
  expected = alpha * hard + (1 - alpha) * ref(zs, zt, tau)
  _close(got, expected, rtol=1e-4, atol=1e-3)
  if alpha == 1.0:
    np.testing.assert_array_equal(np.asarray(got)[[4, 5, 9, 10]], 0.0)


def test_distill_loss_optional_labels_and_jit_with_traced_hyperparameters():
  zs, zt, y = _data(seed=6, extreme=False)
  no_labels = losses.distill_loss(zs, zt, None, None, 2.0, 0.5)
  _close(no_labels, 0.5 * np_kd(zs, zt, 2.0))
  f = jax.jit(lambda t, a: losses.distill_loss(zs, zt, y, None, t, a))
  _close(f(2.0, 0.25), 0.25 * np_ce(zs, y) + 0.75 * np_kd(zs, zt, 2.0), rtol=1e-4)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature(bad):
  zs, zt, y = _data(extreme=False)
  with pytest.raises(ConfigError, match="distill.temperature"):
    losses.check_temperature(bad)
  with pytest.raises(ConfigError, match="distill.temperature"):
    losses.distill_loss(zs, zt, y, None, bad, 0.0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_alpha(bad):
  zs, zt, y = _data(extreme=False)
  with pytest.raises(ConfigError, match="distill.alpha"):
    losses.check_alpha(bad)
  with pytest.raises(ConfigError, match="distill.alpha"):
    losses.distill_loss(zs, zt, y, None, 4.0, bad)


def test_good_values_pass_and_registry():
  losses.check_temperature(4)
  losses.check_alpha(0)
  losses.check_alpha(1.0)
  assert set(losses.DISTILL_LOSSES.names()) >= {"kd", "kl"}
  zs, zt, y = _data(extreme=False)
  with pytest.raises(ConfigError, match="distill.loss.*kd"):
    losses.distill_loss(zs, zt, y, None, 4.0, 0.0, kind="mse_typo")


# ---------------------------------------------------------------- the optimization study's objectives

def np_reverse_kl(zs, zt, tau):
  logp = np_log_softmax(np.asarray(zt, np.float64) / tau)
  logq = np_log_softmax(np.asarray(zs, np.float64) / tau)
  return tau**2 * (np.exp(logq) * (logq - logp)).sum(-1)


def np_logit_mse(zs, zt):
  zs, zt = np.asarray(zs, np.float64), np.asarray(zt, np.float64)
  d = (zs - zs.mean(-1, keepdims=True)) - (zt - zt.mean(-1, keepdims=True))
  return (d ** 2).mean(-1)


def np_brier(zs, zt, tau):
  p = np.exp(np_log_softmax(np.asarray(zt, np.float64) / tau))
  q = np.exp(np_log_softmax(np.asarray(zs, np.float64) / tau))
  return ((q - p) ** 2).mean(-1)


NEW_LOSSES = {
    "reverse_kl": np_reverse_kl,
    "symmetric_kl": lambda zs, zt, tau: np_kl(zs, zt, tau) + np_reverse_kl(zs, zt, tau),
    "logit_mse": lambda zs, zt, tau: np_logit_mse(zs, zt),
    "brier": np_brier,
}


def _logits(seed: int, b: int = 6, c: int = 7, scale: float = 3.0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(b, c)) * scale).astype(np.float32), \
         (rng.normal(size=(b, c)) * scale).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(NEW_LOSSES))
@pytest.mark.parametrize("tau", [1.0, 4.0])
def test_new_losses_match_numpy(kind, tau):
  zs, zt = _logits(1)
  teacher_logprobs = np_log_softmax(zt).astype(np.float32)   # what the step passes
  got = np.asarray(losses.DISTILL_LOSSES.get(kind)(jnp.asarray(zs), jnp.asarray(teacher_logprobs),
                                                   tau))
  want = NEW_LOSSES[kind](zs, teacher_logprobs, tau)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(NEW_LOSSES))
def test_new_losses_zero_at_a_match_and_positive_elsewhere(kind):
  zs, zt = _logits(2)
  lp = np_log_softmax(zt).astype(np.float32)
  fn = losses.DISTILL_LOSSES.get(kind)
  # The student's logits equal the teacher's up to a per-row shift: the same softmax.
  same = fn(jnp.asarray(zt + 5.0), jnp.asarray(lp), 4.0)
  np.testing.assert_allclose(np.asarray(same), 0.0, atol=1e-5)
  assert np.all(np.asarray(fn(jnp.asarray(zs), jnp.asarray(lp), 4.0)) > 1e-4)


def _np_softmax(z):
  return np.exp(np_log_softmax(z))


def grad_closed_form(kind, zs, lp, tau):
  """d loss / d student logits, derived by hand (per example, rows independent)."""
  zs, lp = np.asarray(zs, np.float64), np.asarray(lp, np.float64)
  q, p = _np_softmax(zs / tau), _np_softmax(lp / tau)
  log_q, log_p = np.log(q), np.log(p)
  forward = tau * (q - p)                                       # τ²·KL(p‖q): τ(q − p)
  rkl = (q * (log_q - log_p)).sum(-1, keepdims=True)
  reverse = tau * q * ((log_q - log_p) - rkl)                   # τ²·KL(q‖p)
  c = zs.shape[-1]
  if kind == "reverse_kl":
    return reverse
  if kind == "symmetric_kl":
    return forward + reverse
  if kind == "logit_mse":
    d = (zs - zs.mean(-1, keepdims=True)) - (lp - lp.mean(-1, keepdims=True))
    return 2.0 / c * d                                          # centered d sums to 0
  if kind == "brier":
    d = q - p
    # d/dz_k mean_j (q_j − p_j)² = (2/C)/τ · q_k (d_k − Σ_j q_j d_j)
    return 2.0 / (c * tau) * q * (d - (q * d).sum(-1, keepdims=True))
  raise KeyError(kind)


@pytest.mark.parametrize("kind", sorted(NEW_LOSSES))
@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_new_losses_gradient_closed_form(kind, tau):
  zs, zt = _logits(3, scale=2.0)
  lp = np_log_softmax(zt).astype(np.float32)
  fn = losses.DISTILL_LOSSES.get(kind)
  got = jax.grad(lambda z: fn(z, jnp.asarray(lp), tau).sum())(jnp.asarray(zs))
  np.testing.assert_allclose(np.asarray(got), grad_closed_form(kind, zs, lp, tau),
                             rtol=1e-3, atol=1e-5)
