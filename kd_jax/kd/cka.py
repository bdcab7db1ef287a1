"""Centered kernel alignment (Kornblith et al. 2019) between teacher and student features.

Standard CKA with the biased HSIC estimator HSIC(K, L) = tr(K H L H)/(n−1)²; the normalization
cancels in CKA, so CKA = <HKH, HLH>_F / (‖HKH‖_F ‖HLH‖_F). Gram matrices cost O(n²) memory: use a
few thousand examples,.
"""
from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np

from kd_jax.core.errors import ConfigError

_HIGHEST = jax.lax.Precision.HIGHEST

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
