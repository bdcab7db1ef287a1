"""The parts of results.md that compare: each arm's difference from the figure's reference arm
(Welch 95% CI, marked "(n.s.)" when it contains 0) and the arms whose seeds fall in two groups.

Pure functions of the seeds' values (``arm → column → values``), so the table body in
``kd_jax.sweeps.report`` only places their lines.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from kd_jax.kd import metrics
from kd_jax.sweeps import stats

Values = Mapping[str, Mapping[str, Sequence[float]]]  # arm -> column -> the seeds' values

#: The two-group floor of a percentage column, in percentage points: a smaller split of 3–5
#: seeds is ordinary seed noise of these runs (e.g. 29.45 / 33.1 / 33.2).
MIN_GAP_POINTS = 10.0


def reference_arm(reference: str, arms: Sequence[str]) -> str:
  """The arm the others are compared with: ``sweep.reference_arm`` or else the first arm."""
  return reference or arms[0]


def label(column: str) -> str:
  split, name = column.split("/", 1)
  return metrics.column_label(split, name)


def signed(column: str, value: float) -> str:
  """A difference in the column's format with its sign: ``+1.25``, ``-0.0300``."""
  text = metrics.metric(column.split("/", 1)[1]).fmt.format(abs(value))
  return ("-" if value < 0 else "+") + text


def diff_cell(arm: Sequence[float], ref: Sequence[float], column: str) -> str:
  """``+3.27 [-10.53, +17.07] (n.s.)``: mean(arm) − mean(ref) and its Welch 95% CI."""
  diff, lo, hi, _ = stats.welch_diff(arm, ref)
  if math.isnan(diff):
    return "—"
  if math.isnan(lo):
    return f"{signed(column, diff)} (no CI: 1 seed)"
  cell = f"{signed(column, diff)} [{signed(column, lo)}, {signed(column, hi)}]"
  return cell + (" (n.s.)" if lo <= 0.0 <= hi else "")


def _seeds(values: Values, arm: str, columns: Sequence[str]) -> int:
  return max((len(values.get(arm, {}).get(c, ())) for c in columns), default=0)


def difference_lines(arms: Sequence[str], reference: str, columns: Sequence[str],
                     values: Values) -> list[str]:
  """The difference table (markdown lines) of every arm but ``reference``, or one line saying
  why there is none (a CI needs 2 seeds on both sides)."""
  others = [a for a in arms if a != reference]
  # A column with one value in every trial (a shared teacher's accuracy) has no difference to show.
  columns = [c for c in columns
             if len({v for a in arms for v in values.get(a, {}).get(c, ())}) > 1]
  if not others or not columns:
    return []
  if _seeds(values, reference, columns) < 2 or all(
      _seeds(values, a, columns) < 2 for a in others):
    return [f"Differences from the reference arm `{reference}`: not shown; a confidence "
            "interval needs 2 or more seeds in an arm and in the reference arm."]
  head = ["arm", "seeds"] + [f"Δ {label(c)}" for c in columns]
  lines = [f"Difference from the reference arm `{reference}` (Δ = arm − reference; [95% CI], "
           "Welch t). (n.s.) = the CI contains 0: no difference detectable with these seeds. "
           "Each CI stands alone (not corrected for the number of comparisons).", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  ref = values.get(reference, {})
  few = [a for a in others if _seeds(values, a, columns) < 2]
  for arm in others:
    if arm in few:  # a row of "—" says nothing; they are named below the table
      continue
    mine = values.get(arm, {})
    cells = [arm, str(_seeds(values, arm, columns))]
    cells += [diff_cell(mine.get(c, ()), ref.get(c, ()), c) for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  if few:
    lines += ["", "Not compared (a CI needs 2 or more seeds): " + ", ".join(
        f"`{a}` ({_seeds(values, a, columns)} seed{'s' if _seeds(values, a, columns) != 1 else ''})"
        for a in few) + "."]
  return lines


def is_percent(column: str) -> bool:
  return "%" in metrics.metric(column.split("/", 1)[1]).label


def two_mode_lines(arms: Sequence[str], columns: Sequence[str], values: Values) -> list[str]:
  """A line per (arm, percentage column) whose seeds split into two groups
  (:func:`kd_jax.sweeps.stats.two_modes`, floor :data:`MIN_GAP_POINTS`); [] if none does."""
  found = []
  for arm in arms:
    for c in columns:
      v = values.get(arm, {}).get(c, ())
      m = stats.two_modes(v, MIN_GAP_POINTS) if is_percent(c) else None
      if m is not None:
        fmt = metrics.metric(c.split("/", 1)[1]).fmt
        found.append(f"- {arm}, {label(c)}: {m.low_n}/{len(v)} seeds near "
                     f"{fmt.format(m.low_mean)}, {m.high_n}/{len(v)} near "
                     f"{fmt.format(m.high_mean)}")
  if not found:
    return []
  return [f"Arms whose seeds fall in two groups (the largest gap between sorted seed values is "
          f"≥ {MIN_GAP_POINTS:g} points and more than {stats.GAP_OVER_SPREAD:g} × the range "
          "inside either group; a description, not a test): their mean ± CI summarizes two "
          "outcomes.", *found]


#: One arm's closed fraction of a gap: (arm, f, CI low, CI high, seeds).
GapRow = tuple[str, float, float, float, int]


def gap_fractions(arms: Sequence[str], reference: str, gaps: Sequence[tuple[str, float]],
                  values: Values) -> dict[tuple[str, float], list[GapRow]]:
  """{(column, top): rows} of every arm but ``reference`` with 2 or more seeds, for each gap
  whose reference has 2 or more seeds ({} when none): what results.md tabulates and the gap
  plot draws."""
  gaps = [(c, float(top)) for c, top in gaps
          if len(values.get(reference, {}).get(c, ())) >= 2]
  others = [a for a in arms if a != reference and _seeds(values, a, [c for c, _ in gaps]) >= 2]
  out: dict[tuple[str, float], list[GapRow]] = {}
  for c, top in gaps if others else ():
    out[(c, top)] = [(arm, *stats.gap_fraction(values.get(arm, {}).get(c, ()),
                                                 values[reference][c], top),
                      len(values.get(arm, {}).get(c, ()))) for arm in others]
  return out


def gap_lines(arms: Sequence[str], reference: str, gaps: Sequence[tuple[str, float]],
              values: Values) -> list[str]:
  """The fraction of the gap from ``reference`` to a fixed top value (``sweep.gap``: e.g. 100%
  agreement, a student started at the teacher) each arm closes, with Fieller's 95% CI; [] when
  the sweep names no gap or the reference has fewer than 2 seeds."""
  fractions = gap_fractions(arms, reference, gaps, values)
  if not fractions:
    return []
  head = ["arm"] + [f"{label(c)}: gap to {top:g} closed" for c, top in fractions]
  lines = [f"Fraction of the gap from `{reference}` to the fixed top closed, "
           "(arm − reference) / (top − reference) [95% CI, Fieller; ±inf: unbounded]. 0 = no "
           "better than the reference, 1 = the top reached.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  columns = list(fractions.values())
  for i, arm in enumerate(r[0] for r in columns[0]):
    cells = [arm]
    for rows in columns:
      _, f, lo, hi, _ = rows[i]
      cells.append("—" if math.isnan(f) else f"{f:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def reached_lines(arms: Sequence[str], reached: Sequence[tuple[str, float]],
                  values: Values) -> list[str]:
  """Per arm, how many seeds reach each fixed level (``sweep.reached``: e.g. distillation
  agreement ≥ 99%, a student that ended in the teacher's basin), with the fraction's exact 95%
  CI: the paper's Fig 6b question asked per seed instead of on the mean. [] when none."""
  reached = [(c, float(level)) for c, level in reached
             if any(values.get(a, {}).get(c) for a in arms)]
  if not reached:
    return []
  head = ["arm"] + [f"{label(c)} ≥ {level:g}" for c, level in reached]
  lines = ["Seeds reaching a fixed level: count / seeds, the fraction's 95% CI (Clopper–Pearson, "
           "exact binomial).", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for arm in arms:
    cells = [arm]
    for c, level in reached:
      v = values.get(arm, {}).get(c, ())
      k, n = sum(x >= level for x in v), len(v)
      lo, hi = stats.proportion_ci(k, n)
      cells.append("—" if n == 0 else f"{k}/{n} [{lo:.2f}, {hi:.2f}]")
    lines.append("| " + " | ".join(cells) + " |")
  return lines
