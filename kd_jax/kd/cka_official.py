"""Table 1's CKA as the official code computes it, which is not standard CKA.

The paper's per-stage CKA comes from gnosis/utils/metrics.py ``preact_cka`` with
cka/CKA.py ``kernel_CKA``. Per test batch (128 images) and per stage output, in PyTorch's NCHW:

1. average over axes (1, 2), channels and rows: one value per (image, column), shape [B, W];
2. transpose to [W, B]: the W image *columns* are the samples, the B images the features;
3. RBF Gram over the W columns, K = exp(−d²/(2σ²)) with d² the squared distances
   (from XXᵀ: diag − G + (diag − G)ᵀ) and σ² = the median of the nonzero entries of d²
   (both triangles, so each pair twice; the zero diagonal left out), per matrix;
4. biased HSIC, ⟨HKH, HLH⟩_F with H = I − 11ᵀ/W, and CKA = HSIC(K, L)/√(HSIC(K, K) HSIC(L, L));
5. the mean over batches, every batch weighted 1/len(loader), a short last batch included.

So it measures whether teacher and student agree on which horizontal positions of the image
look alike, judged across the images of one batch: a W×W comparison (W = 32, 16, 8 for the
three CIFAR stages), not the n×n comparison of examples of standard CKA (Kornblith et al. 2019,
kd_jax.kd.cka), where the images are the samples and all activations their features. The
channel and row axes are averaged away before any comparison, so anything that keeps each
column's mean over channels and rows (e.g. permuting channels) leaves it unchanged, and the
median bandwidth makes it invariant to scaling either network's features. The code's comment
calls the stage outputs NHWC; PyTorch's are NCHW, which is what the reductions above act on.

kd_jax stage outputs are NHWC, so step 1 is the mean over NHWC axes (1, 3) (rows, channels).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def column_profiles(features_nhwc: Array) -> Array:
  """[B, H, W, C] stage output → [B, W]: the mean over rows and channels, as the official code's
  mean over NCHW axes (1, 2). Reduce batch by batch to keep only this for a whole split."""
  f = jnp.asarray(features_nhwc, jnp.float32)
  if f.ndim != 4:
    raise ValueError(f"expected NHWC stage outputs [B, H, W, C], got shape {f.shape}")
  return jnp.mean(f, axis=(1, 3))


def _rbf_median(x: Array) -> Array:
  """cka/CKA.py ``rbf`` with sigma=None on the rows of x [n, d]."""
  g = x @ x.T
  diag_minus_g = jnp.diag(g)[None, :] - g
  d2 = diag_minus_g + diag_minus_g.T
  sigma2 = jnp.nanmedian(jnp.where(d2 != 0, d2, jnp.nan))
  return jnp.exp(d2 * (-0.5 / sigma2))


def _center(k: Array) -> Array:
  n = k.shape[0]
  h = jnp.eye(n, dtype=k.dtype) - jnp.full((n, n), 1.0 / n, k.dtype)
  return h @ k @ h


def _kernel_cka(x: Array, y: Array) -> Array:
  """cka/CKA.py ``kernel_CKA(x, y)``: rows are the samples, each kernel its own bandwidth."""
  kc, lc = _center(_rbf_median(x)), _center(_rbf_median(y))
  return jnp.sum(kc * lc) / jnp.sqrt(jnp.sum(kc * kc) * jnp.sum(lc * lc))


@jax.jit
def _profiles_cka(profile_t: Array, profile_s: Array) -> Array:
  with jax.default_matmul_precision("highest"):
    return _kernel_cka(profile_t.T, profile_s.T)


def _check_profiles(p_t: Array, p_s: Array) -> None:
  if p_t.ndim != 2 or p_t.shape != p_s.shape:
    raise ValueError(f"teacher and student need the same images and the same width W; got "
                     f"[B, W] profiles {p_t.shape} and {p_s.shape}")


def official_cka_batch(feat_t_nhwc: Array, feat_s_nhwc: Array) -> Array:
  """The official CKA of one batch: teacher and student outputs [B, H, W, C] of one stage.

  H and C may differ between the two (they are averaged away); B and W may not.
  """
  p_t, p_s = column_profiles(feat_t_nhwc), column_profiles(feat_s_nhwc)
  _check_profiles(p_t, p_s)
  return _profiles_cka(p_t, p_s)


def official_cka(features_t: Array | np.ndarray, features_s: Array | np.ndarray,
                 batch_size: int = 128) -> float:
  """Official CKA of one stage over a split: the mean of per-batch values.

  ``features_*``: NHWC stage outputs [N, H, W, C], or their ``column_profiles`` [N, W]
  (the same number; profiles are W/(H·C) the memory). Batches are consecutive runs of
  ``batch_size`` examples in the given order (the official test loader shuffles, so its
  grouping is random). As in the official code every batch has weight 1/⌈N/batch_size⌉, a
  short last batch too, though it has fewer images as features.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be >= 1")
  p_t, p_s = (column_profiles(f) if np.ndim(f) == 4 else jnp.asarray(f, jnp.float32)
              for f in (features_t, features_s))
  _check_profiles(p_t, p_s)
  n = p_t.shape[0]
  if n == 0:
    raise ValueError("official_cka needs at least one example")
  values = [_profiles_cka(p_t[i:i + batch_size], p_s[i:i + batch_size])
            for i in range(0, n, batch_size)]
  return float(np.mean(np.asarray(jax.device_get(values), np.float64)))
