"""Every number the experiments report, defined once: accuracy, agreement, KL, NLL, ECE, CKA.

Split metrics are exact over a whole split, however it is batched or sharded: ``split_sums``
returns per-batch SUMS (counts, summed losses, per-bin ECE sums), the caller adds them across
batches (``add_sums``) and devices (``lax.psum``), and ``finalize`` divides once at the end.
A mean of per-batch means would weight a short last batch like a full one; this does not.
Padding examples (mask 0) contribute nothing; label −1 means "no label" (e.g. synthetic data):
such examples count for agreement and KL but not for accuracy, NLL or ECE.

ECE bins: ``num_bins`` equal-width bins on the max probability, bin b = (b/nb, (b+1)/nb]; a
confidence exactly on an edge goes to the LOWER bin and a confidence of exactly 0 to bin 0.
Edges are compared as float32 values k/nb, so e.g. softmax([0, 0]) = 0.5 lands in bin 4 of 10.
"""
from __future__ import annotations

import functools
from types import ModuleType
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from kd_jax.errors import ConfigError

_HIGHEST = jax.lax.Precision.HIGHEST



# ----------------------------------------------------------------------------- split metrics


@functools.partial(jax.jit, static_argnames="num_bins")
def bin_index(conf: jnp.ndarray, num_bins: int = 10) -> jnp.ndarray:
  """ECE bin of each confidence: the number of inner edges k/nb that ``conf`` strictly exceeds."""
  conf = jnp.asarray(conf, jnp.float32)
  edges = jnp.arange(1, num_bins, dtype=jnp.float32) / num_bins
  return jnp.sum(conf[..., None] > edges, axis=-1).astype(jnp.int32)


def _calibration_sums(conf: jnp.ndarray, correct: jnp.ndarray, weight: jnp.ndarray,
                      num_bins: int) -> dict[str, jnp.ndarray]:
  """Per-bin count, Σ confidence and Σ correctness over the examples with weight 1."""
  onehot = jax.nn.one_hot(bin_index(conf, num_bins), num_bins, dtype=jnp.float32)
  onehot = onehot * weight[:, None]
  return {
      "bin_count": jnp.sum(onehot, axis=0).astype(jnp.int32),
      "bin_conf": jnp.sum(onehot * conf[:, None], axis=0),
      "bin_correct": jnp.sum(onehot * correct[:, None], axis=0),
  }


def _model_sums(logits: jnp.ndarray, logp: jnp.ndarray, labels: jnp.ndarray,
                labeled: jnp.ndarray, num_bins: int) -> dict[str, jnp.ndarray]:
  """Label-dependent sums of one model from its logits and normalized log-probs [N, C].

  Predictions and confidences come from the raw logits (argmax ties -> first index, as
  np.argmax), so they match ``agree`` exactly and tied logits give exactly 1/k confidence.
  """
  w = labeled.astype(jnp.float32)
  safe = jnp.where(labeled, labels, 0)
  correct = (jnp.argmax(logits, axis=-1) == safe).astype(jnp.float32)
  nll = -jnp.take_along_axis(logp, safe[:, None], axis=-1)[:, 0]
  conf = jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)
  sums = {
      "correct": jnp.sum(correct * w).astype(jnp.int32),
      "nll": jnp.sum(jnp.where(labeled, nll, 0.0)),
  }
  sums.update(_calibration_sums(conf, correct, w, num_bins))
  return sums


def _flat_inputs(logits, labels, mask):
  """[..., C] logits and matching labels/mask flattened to [N, C], [N], [N] (defaults filled)."""
  logits = jnp.asarray(logits, jnp.float32)
  logits = logits.reshape(-1, logits.shape[-1])
  n = logits.shape[0]
  labels = (jnp.full((n,), -1, jnp.int32) if labels is None
            else jnp.asarray(labels, jnp.int32).reshape(-1))
  mask = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask).reshape(-1).astype(bool)
  return logits, labels, mask


@functools.partial(jax.jit, static_argnames="num_bins")
def split_sums(teacher_logprobs: jnp.ndarray, student_logits: jnp.ndarray,
               labels: Optional[jnp.ndarray] = None, mask: Optional[jnp.ndarray] = None,
               num_bins: int = 10) -> dict[str, jnp.ndarray]:
  """Sums over one batch from which ``finalize`` computes every split metric exactly.

  ``teacher_logprobs`` are renormalized with log-softmax (so teacher logits work too). Shapes:
  [..., C] for both, [...] for labels (−1 = none; None = all unlabeled) and mask (None = all).
  Counts are int32, everything else float32; all values add across batches and devices.
  """
  t, labels, mask = _flat_inputs(teacher_logprobs, labels, mask)
  s = jnp.asarray(student_logits, jnp.float32).reshape(t.shape)
  logp_t = jax.nn.log_softmax(t, axis=-1)
  logp_s = jax.nn.log_softmax(s, axis=-1)
  labeled = mask & (labels >= 0)
  p_t = jnp.exp(logp_t)
  kl_rows = jnp.sum(jnp.where(p_t > 0, p_t * (logp_t - logp_s), 0.0), axis=-1)
  agree = jnp.argmax(t, axis=-1) == jnp.argmax(s, axis=-1)
  sums = {
      "n": jnp.sum(mask.astype(jnp.int32)),
      "n_labeled": jnp.sum(labeled.astype(jnp.int32)),
      "agree": jnp.sum((agree & mask).astype(jnp.int32)),
      "kl": jnp.sum(jnp.where(mask, kl_rows, 0.0)),
  }
  for name, z, logp in (("student", s, logp_s), ("teacher", t, logp_t)):
    for k, v in _model_sums(z, logp, labels, labeled, num_bins).items():
      sums[f"{name}_{k}"] = v
  return sums


def add_sums(a: dict[str, jnp.ndarray], b: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
  """Adds two batches' sums key by key (the across-batch reduction; psum is the device one)."""
  if a.keys() != b.keys():
    raise ValueError(f"sums disagree on keys: {sorted(a.keys() ^ b.keys())}")
  return {k: a[k] + b[k] for k in a}


def _ratio(num, den, xp: ModuleType, ftype):
  """num/den, NaN where den is 0 (a metric on a split without the examples it needs)."""
  num = xp.asarray(num, ftype)
  den = xp.asarray(den, ftype)
  return xp.where(den > 0, num / xp.maximum(den, 1), xp.nan)


def _metrics(sums: dict, xp: ModuleType, ftype) -> dict:
  """The one formula from sums to metrics, for jnp (traceable) and numpy (float64 on host)."""
  n, n_lab = sums["n"], sums["n_labeled"]
  out = {
      "agreement": 100.0 * _ratio(sums["agree"], n, xp, ftype),
      "kl": _ratio(sums["kl"], n, xp, ftype),
  }
  for m in ("student", "teacher"):
    out[f"{m}_acc"] = 100.0 * _ratio(sums[f"{m}_correct"], n_lab, xp, ftype)
    out[f"{m}_nll"] = _ratio(sums[f"{m}_nll"], n_lab, xp, ftype)
    out[f"{m}_ece"] = _ece(sums[f"{m}_bin_count"], sums[f"{m}_bin_conf"],
                           sums[f"{m}_bin_correct"], xp, ftype)
  return out


def _ece(count, conf_sum, correct_sum, xp: ModuleType, ftype):
  """Σ_b (n_b/N)|acc_b − conf_b| = Σ_b |Σcorrect_b − Σconf_b| / N: empty bins add 0."""
  gap = xp.abs(xp.asarray(correct_sum, ftype) - xp.asarray(conf_sum, ftype))
  return _ratio(xp.sum(gap), xp.sum(xp.asarray(count)), xp, ftype)


@jax.jit
def compute_metrics(sums: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
  """``finalize`` as traceable float32 jnp scalars (for use inside jit)."""
  return _metrics(sums, jnp, jnp.float32)


def finalize(sums: dict) -> dict[str, float]:
  """Split metrics from summed sums: accuracies and agreement in percent, ECE as a fraction.

  Keys: student_acc, teacher_acc, agreement, kl, student_nll, teacher_nll, student_ece,
  teacher_ece. Label metrics are NaN on a split without labels.
  """
  host = {k: np.asarray(jax.device_get(v)) for k, v in sums.items()}
  return {k: float(v) for k, v in _metrics(host, np, np.float64).items()}


# Whole-array conveniences: the same sums, so there is one definition of each metric.


@jax.jit
def accuracy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Top-1 accuracy in percent over examples with a label ≥ 0."""
  return compute_metrics(split_sums(logits, logits, labels))["student_acc"]


@jax.jit
def agreement(logits_a: jnp.ndarray, logits_b: jnp.ndarray) -> jnp.ndarray:
  """Percent of examples whose top-1 predictions coincide (ties: first index)."""
  return compute_metrics(split_sums(logits_a, logits_b))["agreement"]


@jax.jit
def kl_divergence(teacher_logprobs: jnp.ndarray, student_logits: jnp.ndarray) -> jnp.ndarray:
  """Mean over examples of KL(p_t ‖ p_s) at τ = 1."""
  return compute_metrics(split_sums(teacher_logprobs, student_logits))["kl"]


@jax.jit
def nll(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Mean negative log-likelihood of the true label over labeled examples."""
  return compute_metrics(split_sums(logits, logits, labels))["student_nll"]


@functools.partial(jax.jit, static_argnames="num_bins")
def ece(logits: jnp.ndarray, labels: jnp.ndarray, num_bins: int = 10) -> jnp.ndarray:
  """Expected calibration error (fraction in [0, 1]) of softmax(logits)."""
  return compute_metrics(split_sums(logits, logits, labels, num_bins=num_bins))["student_ece"]


@functools.partial(jax.jit, static_argnames="num_bins")
def ece_from_probs(probs: jnp.ndarray, labels: jnp.ndarray, num_bins: int = 10) -> jnp.ndarray:
  """ECE from probabilities [N, C] directly (exact control of confidences, e.g. on bin edges)."""
  probs = jnp.asarray(probs, jnp.float32)
  labels = jnp.asarray(labels, jnp.int32)
  labeled = labels >= 0
  correct = (jnp.argmax(probs, axis=-1) == labels).astype(jnp.float32)
  sums = _calibration_sums(jnp.max(probs, axis=-1), correct, labeled.astype(jnp.float32),
                           num_bins)
  return _ece(sums["bin_count"], sums["bin_conf"], sums["bin_correct"], jnp, jnp.float32)


# ----------------------------------------------------------------------------- CKA
# Centered kernel alignment (Kornblith et al. 2019) with the biased HSIC estimator
# HSIC(K, L) = tr(K H L H)/(n−1)²; the normalization cancels in CKA, so
# CKA = <HKH, HLH>_F / (‖HKH‖_F ‖HLH‖_F). Gram matrices cost O(n²) memory: use a few thousand
# examples, or ``linear_cka_sums`` to cover a whole split with narrow features.


def flatten_features(f: jnp.ndarray) -> jnp.ndarray:
  """[n, ...] feature maps -> [n, d] float32 (one row per example)."""
  f = jnp.asarray(f, jnp.float32)
  return f.reshape(f.shape[0], -1)


def center_gram(k: jnp.ndarray) -> jnp.ndarray:
  """H K H with H = I − 11ᵀ/n: removes row, column and grand means."""
  k = jnp.asarray(k, jnp.float32)
  row = jnp.mean(k, axis=0, keepdims=True)
  col = jnp.mean(k, axis=1, keepdims=True)
  return k - row - col + jnp.mean(k)


def _alignment(kc: jnp.ndarray, lc: jnp.ndarray) -> jnp.ndarray:
  """<A, B>_F / (‖A‖_F ‖B‖_F) for already-centered matrices."""
  return jnp.sum(kc * lc) / jnp.sqrt(jnp.sum(kc * kc) * jnp.sum(lc * lc))


def cka_from_grams(k: jnp.ndarray, l: jnp.ndarray) -> jnp.ndarray:
  """CKA of two n×n Gram matrices (any kernel)."""
  return _alignment(center_gram(k), center_gram(l))


def _check_pair(x: jnp.ndarray, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  x, y = flatten_features(x), flatten_features(y)
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"CKA needs the same examples in both: {x.shape[0]} vs {y.shape[0]} rows")
  return x, y


def _centered_unit(x: jnp.ndarray) -> jnp.ndarray:
  """Column-centered and scaled to unit Frobenius norm (CKA is invariant to both; avoids
  float32 overflow of squared Gram entries and cancellation from a large common mean)."""
  x = x - jnp.mean(x, axis=0, keepdims=True)
  return x / jnp.maximum(jnp.sqrt(jnp.sum(x * x)), jnp.finfo(jnp.float32).tiny)


@jax.jit
def linear_cka(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
  """Linear CKA of features x [n, ...] and y [n, ...] (biased HSIC)."""
  x, y = _check_pair(x, y)
  x, y = _centered_unit(x), _centered_unit(y)
  n, d1, d2 = x.shape[0], x.shape[1], y.shape[1]
  mm = lambda a, b: jnp.matmul(a, b, precision=_HIGHEST)
  if n * n * (d1 + d2) <= n * (d1 * d1 + d2 * d2 + d1 * d2):
    # Few examples, wide features: n×n Gram matrices (already centered as x, y are).
    return _alignment(mm(x, x.T), mm(y, y.T))
  # Many examples: ‖yᵀx‖² / (‖xᵀx‖ ‖yᵀy‖), the same number in feature space.
  xy, xx, yy = mm(y.T, x), mm(x.T, x), mm(y.T, y)
  return jnp.sum(xy * xy) / jnp.sqrt(jnp.sum(xx * xx) * jnp.sum(yy * yy))


def _rbf_gram(x: jnp.ndarray, sigma_frac: float) -> jnp.ndarray:
  """exp(−‖xi − xj‖²/(2σ²)) with σ = sigma_frac × median distance over pairs i < j."""
  x = _centered_unit(x)  # distances only change scale; the median rescales with them
  sq = jnp.sum(x * x, axis=1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * jnp.matmul(x, x.T, precision=_HIGHEST),
                   0.0)
  iu = np.triu_indices(x.shape[0], k=1)
  sigma = sigma_frac * jnp.median(jnp.sqrt(d2[iu]))
  return jnp.exp(-d2 / (2.0 * sigma * sigma))


def rbf_cka(x: jnp.ndarray, y: jnp.ndarray, sigma_frac: float = 0.5) -> jnp.ndarray:
  """RBF-kernel CKA (biased HSIC); bandwidth σ = sigma_frac × median pairwise distance.

  The median is over distinct pairs i < j of Euclidean distances (Kornblith et al.'s code
  takes the median of all n² squared distances, diagonal zeros included; for large n the two
  bandwidths nearly coincide).
  """
  if not sigma_frac > 0:
    raise ConfigError(f"rbf_cka sigma_frac={sigma_frac!r} is not allowed; use a float > 0 "
                      "(0.5 in Kornblith et al. 2019)")
  return _rbf_cka(x, y, jnp.float32(sigma_frac))


@jax.jit
def _rbf_cka(x: jnp.ndarray, y: jnp.ndarray, sigma_frac: jnp.ndarray) -> jnp.ndarray:
  x, y = _check_pair(x, y)
  return cka_from_grams(_rbf_gram(x, sigma_frac), _rbf_gram(y, sigma_frac))


@jax.jit
def linear_cka_sums(x: jnp.ndarray, y: jnp.ndarray,
                    mask: Optional[jnp.ndarray] = None) -> dict[str, jnp.ndarray]:
  """Per-batch sums for exact linear CKA over many examples (added like ``split_sums``).

  Memory is O(d1² + d2² + d1·d2), so this suits pooled or narrow features; for wide feature
  maps use ``linear_cka`` on a subset of examples.
  """
  x, y = _check_pair(x, y)
  w = (jnp.ones((x.shape[0],), jnp.float32) if mask is None
       else jnp.asarray(mask).reshape(-1).astype(bool).astype(jnp.float32))
  xw, yw = x * w[:, None], y * w[:, None]
  mm = lambda a, b: jnp.matmul(a, b, precision=_HIGHEST)
  return {"n": jnp.sum(w), "sum_x": jnp.sum(xw, axis=0), "sum_y": jnp.sum(yw, axis=0),
          "xx": mm(xw.T, x), "yy": mm(yw.T, y), "yx": mm(yw.T, x)}


def linear_cka_from_sums(sums: dict) -> float:
  """Linear CKA from summed ``linear_cka_sums``: centered second moments, in float64."""
  s = {k: np.asarray(jax.device_get(v), np.float64) for k, v in sums.items()}
  n = s["n"]
  mx, my = s["sum_x"] / n, s["sum_y"] / n
  xx = s["xx"] - n * np.outer(mx, mx)
  yy = s["yy"] - n * np.outer(my, my)
  yx = s["yx"] - n * np.outer(my, mx)
  return float(np.sum(yx * yx) / np.sqrt(np.sum(xx * xx) * np.sum(yy * yy)))
