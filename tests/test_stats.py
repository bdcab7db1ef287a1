"""Confidence intervals and the two-group rule, against references computed here: closed-form
Student-t quantiles, hand-worked means and Welch degrees of freedom, and scipy.stats's own
t.interval and ttest_ind(equal_var=False)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from kd_jax.sweeps import stats


@pytest.mark.parametrize("df,want", [
    (1, math.tan(math.pi * 0.475)),              # Cauchy: t(1) quantile = tan(π(p − ½))
    (2, 0.95 / math.sqrt(2 * 0.975 * 0.025)),    # t(2) quantile = (2p − 1) / √(2p(1 − p))
    (1e9, 1.959963984540054),                    # the normal limit
])
def test_t_quantile_matches_closed_forms(df, want):
  assert stats.t_quantile(0.95, df) == pytest.approx(want, rel=1e-7)


def test_mean_ci_of_three_values_by_hand():
  # mean 2, sample std 1, t(2) quantile 4.302652729911275: half-width 4.3027 / √3
  mean, half, n = stats.mean_ci([1.0, 2.0, 3.0])
  assert (mean, n) == (2.0, 3)
  assert half == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)


@pytest.mark.parametrize("values", [[55.0, 57.5, 61.25, 54.0, 70.0], [0.1, 0.12],
                                    [31.6, 42.2, 35.7]])
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_mean_ci_matches_scipy_interval(values, level):
  v = np.array(values)
  lo, hi = scipy.stats.t.interval(level, len(v) - 1, loc=v.mean(), scale=scipy.stats.sem(v))
  mean, half, n = stats.mean_ci(values, level)
  assert n == len(v)
  assert (mean - half, mean + half) == pytest.approx((lo, hi), rel=1e-9)


def test_one_value_has_no_interval_and_none_has_no_mean():
  mean, half, n = stats.mean_ci([61.5])
  assert (mean, n) == (61.5, 1) and math.isnan(half)
  mean, half, n = stats.mean_ci([])
  assert n == 0 and math.isnan(mean) and math.isnan(half)


def test_welch_equal_sizes_and_variances_by_hand():
  # va = vb = 1/3, se² = 2/3, df = (2/3)² / (2 · (1/3)² / 2) = 4; t(4) = 2.7764451051977987
  diff, lo, hi, df = stats.welch_diff([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
  assert diff == -3.0 and df == pytest.approx(4.0)
  half = 2.7764451051977987 * math.sqrt(2 / 3)
  assert (lo, hi) == pytest.approx((-3.0 - half, -3.0 + half), rel=1e-9)


@pytest.mark.parametrize("a,b", [([33.2, 71.35, 21.75], [33.1, 29.45, 33.2]),
                                 ([45.45, 45.45, 45.2], [33.1, 29.45, 33.2, 30.0, 31.0]),
                                 ([1.0, 1.5], [0.2, 0.9, 0.4, 0.3])])
def test_welch_matches_scipy_ttest_ind(a, b):
  ref = scipy.stats.ttest_ind(a, b, equal_var=False)
  ci = ref.confidence_interval(0.95)
  diff, lo, hi, df = stats.welch_diff(a, b)
  assert diff == pytest.approx(np.mean(a) - np.mean(b))
  assert (lo, hi) == pytest.approx((ci.low, ci.high), rel=1e-9)
  assert df == pytest.approx(ref.df, rel=1e-9)


def test_welch_without_spread():
  diff, lo, hi, df = stats.welch_diff([5.0], [1.0, 2.0])  # one seed: a difference, no CI
  assert diff == 3.5 and math.isnan(lo) and math.isnan(hi) and math.isnan(df)
  diff, lo, hi, df = stats.welch_diff([72.75] * 3, [72.75] * 3)  # nothing varies: exact
  assert (diff, lo, hi) == (0.0, 0.0, 0.0) and math.isnan(df)


def test_two_modes_splits_fig6b_lambda_half():
  # Fig 6b mid, λ = 0.5, test agreement of seeds 0, 1, 2: two near the baseline, one far above
  m = stats.two_modes([33.2, 71.35, 21.75], min_gap=10.0)
  assert (m.low_n, m.high_n) == (2, 1)
  assert m.low_mean == pytest.approx((33.2 + 21.75) / 2) and m.high_mean == 71.35
  assert m.gap == pytest.approx(71.35 - 33.2)
  m = stats.two_modes([50.0, 91.0, 51.0, 92.0, 90.0], min_gap=10.0)
  assert (m.low_n, m.low_mean, m.high_n, m.high_mean) == (2, 50.5, 3, 91.0)


@pytest.mark.parametrize("values,min_gap", [
    ([33.1, 29.45, 33.2], 10.0),       # the baseline: a clean split, but below the floor
    ([0.0, 10.0, 20.0, 30.0], 5.0),    # evenly spread: the gap is no larger than the spread
    ([0.0, 1.0, 4.0], 0.0),            # gap exactly 3 × the spread inside a group: not more
    ([20.0, 90.0], 10.0),              # two seeds always split; not reported
    ([70.0, 70.0, 70.0], 0.0),         # no gap at all
])
def test_two_modes_leaves_unimodal_or_too_few_seeds_alone(values, min_gap):
  assert stats.two_modes(values, min_gap=min_gap) is None


def test_two_modes_just_past_the_ratio():
  m = stats.two_modes([0.0, 1.0, 4.01], min_gap=0.0)
  assert (m.low_n, m.high_n) == (2, 1)


def test_arms_with_fewer_than_two_seeds_are_named_not_given_a_row():
  from kd_jax.sweeps import compare
  values = {"ref": {"test/agreement": [80.0, 82.0, 81.0]},
            "b": {"test/agreement": [85.0, 86.0]},
            "c": {"test/agreement": [90.0]},
            "d": {}}
  lines = compare.difference_lines(["ref", "b", "c", "d"], "ref", ["test/agreement"], values)
  rows = [l for l in lines if l.startswith("| ") and not l.startswith("| arm")]
  assert [r.split(" | ")[0][2:] for r in rows] == ["b"]
  assert lines[-1] == "Not compared (a CI needs 2 or more seeds): `c` (1 seed), `d` (0 seeds)."


def _fieller_by_scan(a, r, top, level=0.95, grid=np.linspace(-3, 3, 600_001)):
  """The Fieller set by its definition, scanned: every θ whose pivot
  (mean a − θ·top − (1 − θ)·mean r) / se(θ) lies within the t quantile (Welch df of a − r)."""
  a, r = np.asarray(a, float), np.asarray(r, float)
  va, vr = a.var(ddof=1) / a.size, r.var(ddof=1) / r.size
  df = (va + vr) ** 2 / (va ** 2 / (a.size - 1) + vr ** 2 / (r.size - 1))
  t = scipy.stats.t.ppf(0.5 + level / 2, df)
  pivot = (a.mean() - grid * top - (1 - grid) * r.mean()) / np.sqrt(va + (1 - grid) ** 2 * vr)
  inside = grid[np.abs(pivot) <= t]
  return inside.min(), inside.max()


@pytest.mark.parametrize("seed", range(4))
def test_gap_fraction_is_the_fieller_set(seed):
  rng = np.random.default_rng(seed)
  r = rng.normal(80.0, 3.0, size=10)
  a = rng.normal(80.0 + 10.0 * seed / 3, 2.0 + seed, size=7)
  f, lo, hi = stats.gap_fraction(a, r, 100.0)
  assert f == pytest.approx((a.mean() - r.mean()) / (100.0 - r.mean()))
  want_lo, want_hi = _fieller_by_scan(a, r, 100.0)
  assert lo == pytest.approx(want_lo, abs=2e-5) and hi == pytest.approx(want_hi, abs=2e-5)
  assert lo < f < hi


def test_gap_fraction_with_an_exact_reference_is_the_arms_t_interval_scaled():
  """No spread in the reference: the denominator is exact, so the CI is the arm's own t
  interval (n − 1 df) shifted by the reference and divided by the gap."""
  a = [91.0, 93.5, 92.0, 95.0]
  f, lo, hi = stats.gap_fraction(a, [80.0, 80.0, 80.0], 100.0)
  half = scipy.stats.t.ppf(0.975, 3) * np.std(a, ddof=1) / 2
  assert (lo, f, hi) == pytest.approx(((np.mean(a) - half - 80) / 20, (np.mean(a) - 80) / 20,
                                       (np.mean(a) + half - 80) / 20))


def test_gap_fraction_covers_the_true_fraction_95_percent_of_the_time():
  rng = np.random.default_rng(0)
  hits, trials = 0, 3000
  for _ in range(trials):
    r = rng.normal(85.0, 2.0, size=10)
    a = rng.normal(90.0, 1.0, size=10)       # true fraction (90 − 85) / (100 − 85) = 1/3
    _, lo, hi = stats.gap_fraction(a, r, 100.0)
    hits += lo <= 1 / 3 <= hi
  assert 0.93 <= hits / trials <= 0.97


def test_gap_fraction_unbounded_or_without_seeds():
  _, lo, hi = stats.gap_fraction([99.0, 100.0, 98.0], [60.0, 99.0, 100.0], 100.0)
  assert (lo, hi) == (-math.inf, math.inf)   # the reference is not clearly below the top
  f, lo, hi = stats.gap_fraction([90.0], [80.0, 82.0], 100.0)
  assert f == pytest.approx(9 / 19) and math.isnan(lo) and math.isnan(hi)


def test_gap_lines_give_each_arm_its_fraction():
  from kd_jax.sweeps import compare
  values = {"baseline": {"distill/agreement": [80.0, 82.0, 81.0]},
            "sam": {"distill/agreement": [90.0, 91.0, 89.0]},
            "one": {"distill/agreement": [95.0]}}
  lines = compare.gap_lines(["baseline", "sam", "one"], "baseline",
                            [("distill/agreement", 100.0)], values)
  f, lo, hi = stats.gap_fraction([90.0, 91.0, 89.0], [80.0, 82.0, 81.0], 100.0)
  assert f"| sam | {f:+.2f} [{lo:+.2f}, {hi:+.2f}] |" in lines
  assert not any(l.startswith("| one") for l in lines)  # one seed: no CI, no row
  assert compare.gap_lines(["baseline", "sam"], "baseline", [], values) == []


def test_a_column_with_one_value_everywhere_gets_no_difference_column():
  """A shared teacher's accuracy is the same number in every trial: no Δ column for it."""
  from kd_jax.sweeps import compare
  values = {"a": {"test/agreement": [80.0, 82.0], "test/teacher_acc": [70.0, 70.0]},
            "b": {"test/agreement": [90.0, 91.0], "test/teacher_acc": [70.0, 70.0]}}
  lines = compare.difference_lines(["a", "b"], "a", ["test/agreement", "test/teacher_acc"],
                                   values)
  header = next(l for l in lines if l.startswith("| arm"))
  assert "agreement" in header and "teacher acc" not in header
  values["b"]["test/teacher_acc"] = [70.0, 71.0]   # a per-arm teacher: compared again
  lines = compare.difference_lines(["a", "b"], "a", ["test/agreement", "test/teacher_acc"],
                                   values)
  assert "teacher acc" in next(l for l in lines if l.startswith("| arm"))


@pytest.mark.parametrize("k,n", [(0, 5), (1, 5), (3, 10), (10, 10), (7, 9)])
def test_proportion_ci_is_clopper_pearson(k, n):
  """Against scipy's exact binomial interval (computed there from the binomial CDF)."""
  ci = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
  low, high = stats.proportion_ci(k, n)
  assert low == pytest.approx(ci.low, abs=1e-9) and high == pytest.approx(ci.high, abs=1e-9)
