"""Per-example training losses: hard-label cross-entropy, the τ²-scaled KD loss and their mix.

Every loss returns one value per example ([B]) so the caller decides how padding and device
shards are averaged. Math is float32 whatever the input dtype, and written on log-softmax
values so that very peaked or extreme logits (±1e4) stay finite.

Definition (docs/paper.md): L = α·CE(y, z_s) + (1−α)·L_KD with
L_KD = −τ² Σ_j softmax(z_t/τ)_j · log softmax(z_s/τ)_j, where the teacher ensemble's
log-probabilities play z_t.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import Registry

# (student_logits [B,C], teacher_logprobs [B,C], temperature) -> per-example loss [B]
DistillFn = Callable[[jnp.ndarray, jnp.ndarray, "float | jnp.ndarray"], jnp.ndarray]

DISTILL_LOSSES: Registry[DistillFn] = Registry("distillation loss", "distill.loss")


def _concrete(x) -> Optional[float]:
  """The Python value of ``x`` when it is known at trace time, else None (a traced value)."""
  try:
    return float(x)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return None


def check_temperature(t: float) -> None:
  """Rejects temperatures the soft targets are undefined for (τ must be a positive number)."""
  v = _concrete(t)
  if v is None:
    raise ConfigError(f"distill.temperature={t!r} is not a number; use a float > 0 (e.g. 4.0)")
  if not (math.isfinite(v) and v > 0):
    raise ConfigError(f"distill.temperature={t!r} is not allowed; use a finite float > 0 "
                      "(the paper uses 1 or 4)")


def check_alpha(a: float) -> None:
  """Rejects mixing weights outside [0, 1] (α weighs the hard-label term)."""
  v = _concrete(a)
  if v is None or not 0.0 <= v <= 1.0:
    raise ConfigError(f"distill.alpha={a!r} is not allowed; use a float in [0, 1] "
                      "(0 = pure distillation, as in the paper's main experiments)")


def _maybe_check(value, check: Callable[[float], None]) -> None:
  """Checks values known at trace time; traced values are the caller's responsibility."""
  if _concrete(value) is not None:
    check(value)


def _xlogy_rows(p: jnp.ndarray, log_q: jnp.ndarray) -> jnp.ndarray:
  """Σ_j p_j·log_q_j with 0·(anything) = 0, so classes the teacher rules out add nothing."""
  safe = jnp.where(p > 0, log_q, 0.0)
  return jnp.sum(jnp.where(p > 0, p * safe, 0.0), axis=-1)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """−log softmax(logits)[label] per example; label −1 (no label) gives 0."""
  logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
  labels = jnp.asarray(labels, jnp.int32)
  has_label = labels >= 0
  picked = jnp.take_along_axis(logp, jnp.where(has_label, labels, 0)[:, None], axis=-1)[:, 0]
  return jnp.where(has_label, -picked, 0.0)


def _tempered(student_logits, teacher_logprobs, temperature):
  """Teacher probabilities and both log-probabilities at temperature τ, in float32.

  τ is a scalar or one value per example ([B]: e.g. synthetic rows at their own τ); the
  returned τ has the shape of the per-example loss (scalar or [B])."""
  t = jnp.asarray(temperature, jnp.float32)
  t_col = t[:, None] if t.ndim == 1 else t
  log_q = jax.nn.log_softmax(jnp.asarray(student_logits, jnp.float32) / t_col, axis=-1)
  log_p = jax.nn.log_softmax(jnp.asarray(teacher_logprobs, jnp.float32) / t_col, axis=-1)
  return t, jnp.exp(log_p), log_p, log_q


@DISTILL_LOSSES.register("kd")
def kd_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
            temperature: float | jnp.ndarray) -> jnp.ndarray:
  """Soft cross-entropy −τ² Σ_j p_t^τ log p_s^τ; the τ² keeps gradients O(1) in τ."""
  _maybe_check(temperature, check_temperature)
  t, p_t, _, log_q = _tempered(student_logits, teacher_logprobs, temperature)
  return -(t * t) * _xlogy_rows(p_t, log_q)


@DISTILL_LOSSES.register("kl")
def kl_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
            temperature: float | jnp.ndarray) -> jnp.ndarray:
  """τ²·KL(p_t^τ ‖ p_s^τ): the KD loss minus the teacher entropy, so 0 at a perfect match."""
  _maybe_check(temperature, check_temperature)
  t, p_t, log_p, log_q = _tempered(student_logits, teacher_logprobs, temperature)
  return (t * t) * _xlogy_rows(p_t, log_p - log_q)


@DISTILL_LOSSES.register("reverse_kl")
def reverse_kl_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
                    temperature: float | jnp.ndarray) -> jnp.ndarray:
  """τ²·KL(p_s^τ ‖ p_t^τ): mode-seeking, so the student may drop classes the teacher spreads
  mass over instead of covering them (one of the optimization study's objectives)."""
  _maybe_check(temperature, check_temperature)
  t, _, log_p, log_q = _tempered(student_logits, teacher_logprobs, temperature)
  return (t * t) * _xlogy_rows(jnp.exp(log_q), log_q - log_p)


@DISTILL_LOSSES.register("symmetric_kl")
def symmetric_kl_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
                      temperature: float | jnp.ndarray) -> jnp.ndarray:
  """τ²·(KL(p_t‖p_s) + KL(p_s‖p_t)), the sum as in the official code's SymmetrizedKLLoss."""
  return (kl_loss(student_logits, teacher_logprobs, temperature)
          + reverse_kl_loss(student_logits, teacher_logprobs, temperature))


@DISTILL_LOSSES.register("logit_mse")
def logit_mse_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
                   temperature: float | jnp.ndarray) -> jnp.ndarray:
  """Mean over classes of the squared difference of *centered* logits (τ is not used).

  Logit matching (the τ → ∞ limit of KD, up to scale). The teacher provides log-probabilities,
  which are its logits minus a per-example constant; centering both sides over the classes
  removes that constant, so the loss is 0 exactly when the two softmaxes agree.
  """
  del temperature
  zs = jnp.asarray(student_logits, jnp.float32)
  zt = jnp.asarray(teacher_logprobs, jnp.float32)
  diff = (zs - zs.mean(-1, keepdims=True)) - (zt - zt.mean(-1, keepdims=True))
  return jnp.mean(diff * diff, axis=-1)


@DISTILL_LOSSES.register("brier")
def brier_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
               temperature: float | jnp.ndarray) -> jnp.ndarray:
  """Mean over classes of (p_s^τ − p_t^τ)², the official code's BrierLoss (no τ² factor)."""
  _maybe_check(temperature, check_temperature)
  _, p_t, _, log_q = _tempered(student_logits, teacher_logprobs, temperature)
  d = jnp.exp(log_q) - p_t
  return jnp.mean(d * d, axis=-1)


def distill_loss(student_logits: jnp.ndarray, teacher_logprobs: jnp.ndarray,
                 labels: Optional[jnp.ndarray], is_real: Optional[jnp.ndarray],
                 temperature: float | jnp.ndarray, alpha: float | jnp.ndarray,
                 kind: str = "kd") -> jnp.ndarray:
  """α·CE(y, z_s) + (1−α)·L_KD per example.

  The hard-label term uses τ = 1 and counts only real (``is_real``, e.g. not GAN samples)
  examples with a label ≥ 0; elsewhere it is 0. ``labels``/``is_real`` may be None (no labels /
  all real). ``kind`` picks the soft term from ``DISTILL_LOSSES``.
  """
  soft_fn = DISTILL_LOSSES.get(kind)
  _maybe_check(alpha, check_alpha)
  soft = soft_fn(student_logits, teacher_logprobs, temperature)
  if labels is None:
    hard = jnp.zeros_like(soft)
  else:
    labels = jnp.asarray(labels, jnp.int32)
    keep = labels >= 0
    if is_real is not None:
      keep = keep & jnp.asarray(is_real, bool)
    hard = jnp.where(keep, cross_entropy(student_logits, jnp.where(keep, labels, -1)), 0.0)
  a = jnp.asarray(alpha, jnp.float32)
  return a * hard + (1.0 - a) * soft
