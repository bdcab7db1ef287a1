"""Statistics over a sweep's seeds: what results.md and the plots claim about a mean, a
difference between arms, and arms whose seeds split into two groups.

With 3 seeds an arm's sample std is itself very uncertain, so a "mean ± std" invites reading
more into a difference than the seeds support. Every interval here is a 95% confidence
interval from Student's t (n − 1 degrees of freedom for one arm; Welch–Satterthwaite for a
difference, which does not assume the two arms share a variance). They assume roughly normal
seed-to-seed noise; an arm whose seeds split into two groups (:func:`two_modes`) breaks that,
which is why the table flags it next to its interval.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np
from scipy import stats as scipy_stats


def t_quantile(level: float, df: float) -> float:
  """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
  return float(scipy_stats.t.ppf(0.5 + level / 2, df))


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
  """(mean, half-width of the ``level`` CI of the mean, n): half-width = t(n−1)·s/√n, with s
  the sample std; nan for one value (no spread to estimate), and a nan mean for none."""
  v = np.asarray(values, dtype=float)
  n = int(v.size)
  if n == 0:
    return math.nan, math.nan, 0
  mean = float(v.mean())
  if n == 1:
    return mean, math.nan, 1
  return mean, t_quantile(level, n - 1) * float(v.std(ddof=1)) / math.sqrt(n), n


def welch_diff(a: Sequence[float], b: Sequence[float],
               level: float = 0.95) -> tuple[float, float, float, float]:
  """(mean(a) − mean(b), CI low, CI high, Welch–Satterthwaite df).

  The CI is nan when either side has fewer than 2 values; when neither side varies the
  difference is exact (low = high = the difference) and df is nan.
  """
  a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
  if a.size == 0 or b.size == 0:
    return math.nan, math.nan, math.nan, math.nan
  diff = float(a.mean() - b.mean())
  if a.size < 2 or b.size < 2:
    return diff, math.nan, math.nan, math.nan
  va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
  se2 = va + vb
  if se2 == 0.0:
    return diff, diff, diff, math.nan
  df = se2 ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  half = t_quantile(level, df) * math.sqrt(se2)
  return diff, diff - half, diff + half, df


@dataclasses.dataclass(frozen=True)
class Modes:
  """Two groups of an arm's seeds: how many fall in each and their means."""
  low_n: int
  low_mean: float
  high_n: int
  high_mean: float
  gap: float


#: A gap counts only when it is this many times the spread (range) inside either group.
GAP_OVER_SPREAD = 3.0


def two_modes(values: Sequence[float], min_gap: float,
              ratio: float = GAP_OVER_SPREAD) -> Optional[Modes]:
  """The seeds' two groups when they split cleanly, else None.

  Rule: sort the values and cut at the largest gap between neighbours; the arm is bimodal when
  that gap is at least ``min_gap`` (in the metric's units: a floor below which a split is seed
  noise whatever its shape) and more than ``ratio`` × the larger range inside the two groups.
  Needs 3 or more values (two values always form two "groups"). With 3–5 seeds this describes
  the seeds, it is no test: it says when a mean and its CI summarize two outcomes (e.g. λ = 0.5
  of Fig 6b, where some seeds reach the teacher's basin and others stay near the baseline).
  """
  v = np.sort(np.asarray(values, dtype=float))
  if v.size < 3:
    return None
  gaps = np.diff(v)
  cut = int(np.argmax(gaps)) + 1
  low, high = v[:cut], v[cut:]
  gap = float(gaps[cut - 1])
  spread = max(float(np.ptp(low)), float(np.ptp(high)))
  if gap < min_gap or gap <= ratio * spread:
    return None
  return Modes(int(low.size), float(low.mean()), int(high.size), float(high.mean()), gap)


def gap_fraction(arm: Sequence[float], ref: Sequence[float], top: float,
                 level: float = 0.95) -> tuple[float, float, float]:
  """(f, CI low, CI high): the fraction of the gap from the reference arm to ``top`` that the
  arm closes, f = (mean(arm) − mean(ref)) / (top − mean(ref)), with Fieller's CI.

  ``top`` is a fixed value (e.g. 100% agreement: a student started at the teacher and left
  there). A ratio's CI from a delta-method ± is wrong when the denominator is uncertain, so the
  interval is Fieller's: every θ for which D − θ·E = mean(arm) − θ·top − (1 − θ)·mean(ref) is
  within t·se of 0, se² = var(arm)/n_a + (1 − θ)²·var(ref)/n_r, t at the Welch df of D = arm −
  ref. When that set is unbounded (the reference is not clearly below ``top``) low and high are
  ±inf; with fewer than 2 seeds on a side they are nan.
  """
  a, r = np.asarray(arm, dtype=float), np.asarray(ref, dtype=float)
  if a.size == 0 or r.size == 0:
    return math.nan, math.nan, math.nan
  d, e = float(a.mean() - r.mean()), float(top - r.mean())
  f = d / e if e != 0.0 else math.nan
  if a.size < 2 or r.size < 2:
    return f, math.nan, math.nan
  va, vr = float(a.var(ddof=1)) / a.size, float(r.var(ddof=1)) / r.size
  _, _, _, df = welch_diff(a, r, level)
  t2 = t_quantile(level, df) ** 2 if not math.isnan(df) else 0.0
  # (D − θE)² ≤ t²(va + vr − 2θ·vr + θ²·vr)  ⇔  Aθ² + Bθ + C ≤ 0
  qa, qb, qc = e * e - t2 * vr, -2.0 * d * e + 2.0 * t2 * vr, d * d - t2 * (va + vr)
  if qa <= 0.0:
    return f, -math.inf, math.inf
  disc = qb * qb - 4.0 * qa * qc
  root = math.sqrt(max(disc, 0.0))
  return f, (-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa)


def proportion_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
  """Clopper–Pearson (exact binomial) CI of a proportion k/n: the fraction of seeds that reach
  a level. Exact rather than a normal approximation because n is 5–10 and k often 0 or n."""
  if n <= 0:
    return math.nan, math.nan
  alpha = 1.0 - level
  low = 0.0 if k == 0 else float(scipy_stats.beta.ppf(alpha / 2, k, n - k + 1))
  high = 1.0 if k == n else float(scipy_stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
  return low, high
