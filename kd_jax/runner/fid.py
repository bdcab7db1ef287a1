"""FID and Inception Score of GAN samples, from local Inception weights (``gan.inception_path``).

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the 2048-d pool
features of real and generated images, ``|μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½``. The trace
term is computed in the symmetric form ``tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ(Σ₁^½ Σ₂ Σ₁^½)``: Σ₁Σ₂ is similar to
the symmetric positive semi-definite Σ₁^½Σ₂Σ₁^½, so its eigenvalues are real and ≥ 0, and two
``eigh`` calls find them stably. pytorch-fid takes ``scipy.linalg.sqrtm`` of the non-symmetric
product instead, which can return imaginary round-off and, for singular covariances (fewer
images than 2048 dimensions), non-finite values it then patches with ε on the diagonal; in exact
arithmetic both give the same number (on 2 CPU cores, for 2048 dimensions, the eigenvalue form
took 2 s where ``sqrtm`` took 11 s). IS (Salimans et al. 2016) is ``exp E_x KL(p(y|x) ‖ p(y))``
over the 1008-way softmax of the unbiased logits, averaged over 10 consecutive splits (± their
standard deviation), as the original code.

Features stream through the network in jitted batches of ``gan.fid_batch`` (the last one padded,
so one shape compiles); the mean and covariance accumulate batch by batch in float64. The real
images' statistics are cached in the GAN's store entry under a key of the weights' content and the
exact images, so they are computed once per GAN (and weights).
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from kd_jax.runner import inception_weights
from kd_jax.core.errors import ConfigError
from kd_jax.models import inception

IS_SPLITS = 10


class Moments:
  """Running mean and covariance of rows added batch by batch (Chan et al.'s pairwise update, in
  float64), so 50k × 2048 features never sit in memory at once."""

  def __init__(self, dim: int):
    self.n = 0
    self.mean = np.zeros(dim)
    self._m2 = np.zeros((dim, dim))

  def add(self, x: np.ndarray) -> None:
    x = np.asarray(x, np.float64)
    nb = len(x)
    if nb == 0:
      return
    mb = x.mean(axis=0)
    d = x - mb
    delta = mb - self.mean
    total = self.n + nb
    self._m2 += d.T @ d + np.outer(delta, delta) * (self.n * nb / total)
    self.mean = self.mean + delta * (nb / total)
    self.n = total

  @property
  def cov(self) -> np.ndarray:
    """Unbiased (n − 1) covariance, as ``np.cov`` and pytorch-fid."""
    return self._m2 / max(self.n - 1, 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """FID between N(μ₁, Σ₁) and N(μ₂, Σ₂), with the symmetric eigenvalue form of the trace term."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or s1.shape != s2.shape:
    raise ValueError(f"FID of statistics with different shapes: {mu1.shape} vs {mu2.shape}")
  w, v = np.linalg.eigh((s1 + s1.T) / 2)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  inner = root1 @ s2 @ root1
  lam = np.linalg.eigvalsh((inner + inner.T) / 2)
  tr_sqrt = float(np.sum(np.sqrt(np.clip(lam, 0, None))))
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS) -> tuple[float, float]:
  """(mean, std) over ``splits`` consecutive chunks of exp E KL(p(y|x) ‖ p(y))."""
  z = np.asarray(logits, np.float64)
  if len(z) < splits:
    raise ValueError(f"IS over {splits} splits needs at least {splits} images, got {len(z)}")
  logp = z - z.max(axis=1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
  p = np.exp(logp)
  scores = []
  n = len(z)
  for i in range(splits):
    pc, lc = p[i * n // splits:(i + 1) * n // splits], logp[i * n // splits:(i + 1) * n // splits]
    log_py = np.log(pc.mean(axis=0))
    kl = np.where(pc > 0, pc * (lc - log_py), 0.0).sum(axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


@functools.partial(jax.jit, static_argnames=("size",))
def _forward(variables: dict, x_u8: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
  x = x_u8.astype(jnp.float32) / 127.5 - 1.0   # [0, 255] → [−1, 1], as pytorch-fid's 2x − 1
  if x.shape[-1] == 1:                           # grayscale → RGB by repeating, as PIL's convert
    x = jnp.repeat(x, 3, axis=-1)
  return inception.InceptionV3().apply(variables, inception.resize(x, size))


def extract(variables: dict, images_u8: np.ndarray, batch: int,
            size: int = inception.SIZE) -> tuple[Moments, np.ndarray]:
  """Pool-feature moments and unbiased logits (float32, one row per image) of uint8 NHWC images."""
  moments = Moments(inception.FEATURES)
  logits = []
  for i in range(0, len(images_u8), batch):
    chunk = images_u8[i:i + batch]
    pad = batch - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
    feats, z = jax.device_get(_forward(variables, jnp.asarray(chunk), size))
    moments.add(feats[:batch - pad])
    logits.append(np.asarray(z[:batch - pad], np.float32))
  return moments, np.concatenate(logits)


def check(gan: ConfigDict) -> None:
  """The FID/IS keys' one-line errors (``config.gan``), before any work (only when
  ``gan.inception_path`` is set)."""
  g = gan
  if not g.inception_path:
    return
  inception_weights.check_file(g.inception_path)
  if int(g.fid_samples) < IS_SPLITS:
    raise ConfigError(f"gan.fid_samples={g.fid_samples} must be at least {IS_SPLITS} (IS averages "
                      f"over {IS_SPLITS} splits); 10000 or 50000 is usual")
  if int(g.fid_batch) < 1:
    raise ConfigError(f"gan.fid_batch={g.fid_batch} must be a positive integer")


def real_subset(real_u8: np.ndarray, n: int) -> np.ndarray:
  """All real images, or a fixed random ``n`` of them (in their original order)."""
  if n >= len(real_u8):
    return real_u8
  return real_u8[np.sort(np.random.RandomState(0).permutation(len(real_u8))[:n])]


class InceptionScorer:
  """FID against (up to ``samples``) real images and IS of generated ones, for one set of
  Inception weights; the real statistics are cached in ``cache_dir``."""

  def __init__(self, variables: dict, weights_id: str, real_u8: np.ndarray, cache_dir: Path,
               samples: int, batch: int, size: int = inception.SIZE):
    self.variables = jax.device_put(variables)
    self.real = real_subset(real_u8, samples)
    self.cache_dir = Path(cache_dir)
    self.batch, self.size = batch, size
    ident = f"{weights_id}|{size}|{self.real.shape}|{self.real.dtype}".encode()
    self.key = hashlib.sha256(ident + np.ascontiguousarray(self.real).tobytes()).hexdigest()[:12]

  @property
  def stats_path(self) -> Path:
    return self.cache_dir / f"fid-real-{self.key}.npz"

  def real_stats(self) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of the real images' features, computed once and kept in ``stats_path``."""
    if self.stats_path.exists():
      with np.load(self.stats_path) as f:
        return f["mu"], f["sigma"]
    print(f"[fid] Inception statistics of {len(self.real)} real images → {self.stats_path}",
          flush=True)
    m, _ = extract(self.variables, self.real, self.batch, self.size)
    self.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = self.stats_path.with_suffix(".tmp")
    with tmp.open("wb") as f:
      np.savez(f, mu=m.mean, sigma=m.cov, n=m.n)
    tmp.replace(self.stats_path)
    return m.mean, m.cov

  def __call__(self, samples_u8: np.ndarray) -> dict[str, float]:
    mu_r, sigma_r = self.real_stats()
    m, logits = extract(self.variables, samples_u8, self.batch, self.size)
    is_mean, is_std = inception_score(logits)
    return {"fid": frechet_distance(m.mean, m.cov, mu_r, sigma_r), "is": is_mean,
            "is_std": is_std, "samples": int(m.n), "real": len(self.real)}


def scorer_for(gan: ConfigDict, cache_dir: Path,
               real_u8: np.ndarray) -> Optional[InceptionScorer]:
  """The scorer of ``gan.inception_path`` (``gan`` = ``config.gan``; weights read and checked
  now), or None when unset."""
  g = gan
  if not g.inception_path:
    return None
  check(g)
  variables = inception_weights.load(g.inception_path)
  return InceptionScorer(variables, inception_weights.digest(g.inception_path), real_u8,
                         cache_dir, int(g.fid_samples), int(g.fid_batch))


def describe(q: dict) -> str:
  """``FID 23.41, IS 7.12 ± 0.08 (10000 samples vs 10000 real)`` for log lines."""
  return (f"FID {q['fid']:.2f}, IS {q['is']:.2f} ± {q['is_std']:.2f} ({q['samples']} samples vs "
          f"{q['real']} real)")
