"""The gap plot of a sweep with ``sweep.gap``: each arm's fraction of the gap from the reference
arm (0) to a fixed top (1, e.g. 100% agreement) closed, with its Fieller 95% CI.

The main plot's bars start at 0, so arms at 90–100% agreement look alike there; this plot puts
every arm on the scale of the question a remedies study asks (how much of the gap does it
close?), with the half-way line the study's target.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence

from kd_jax.sweeps import compare

#: The x range drawn; a CI reaching past it (or unbounded) is cut there and marked with an arrow.
LIMITS = (-1.5, 1.25)


def plot_gaps(fractions: Mapping[tuple[str, float], Sequence[compare.GapRow]], reference: str,
              path: Path, *, title: str = "") -> Optional[Path]:
  """Writes one panel per gap column to ``path``; None (nothing written) when there is no row."""
  fig = draw_gaps(fractions, reference, title=title)
  if fig is None:
    return None
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  return path


def draw_gaps(fractions: Mapping[tuple[str, float], Sequence[compare.GapRow]], reference: str,
              *, title: str = ""):
  """The matplotlib Figure of :func:`plot_gaps` (None when there is no row to draw)."""
  fractions = {k: v for k, v in fractions.items() if any(not math.isnan(r[1]) for r in v)}
  if not fractions:
    return None
  from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

  arms = [r[0] for r in next(iter(fractions.values()))]
  fig = Figure(figsize=(4.4 * len(fractions), 0.32 * len(arms) + 2.0))
  axes = fig.subplots(1, len(fractions), sharey=True, squeeze=False)[0]
  lo_lim, hi_lim = LIMITS
  for ax, ((column, top), rows) in zip(axes, fractions.items()):
    for y, (_, f, lo, hi, _) in enumerate(rows):
      if math.isnan(f):
        continue
      shown = min(max(f, lo_lim), hi_lim)
      if not math.isnan(lo):
        ax.plot([max(lo, lo_lim), min(hi, hi_lim)], [y, y], color="C0", lw=1.5)
        for end, cut, mark in ((lo, lo_lim, "<"), (hi, hi_lim, ">")):
          if (end < cut) if mark == "<" else (end > cut):
            ax.plot([cut], [y], marker=mark, color="C0", ms=5)
      ax.plot([shown], [y], "o", color="C0", ms=5)
    ax.axvline(0.0, color="0.3", lw=1)
    ax.axvline(1.0, color="C2", lw=1)
    ax.axvline(0.5, color="0.5", lw=1, ls="--")
    ax.set_xlim(lo_lim - 0.05, hi_lim + 0.05)
    ax.set_xlabel(f"fraction of the gap to {top:g} closed")
    ax.set_title(compare.label(column), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
  axes[0].set_yticks(range(len(arms)), arms)
  axes[0].invert_yaxis()
  n = sorted({r[4] for rows in fractions.values() for r in rows})
  seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
  fig.text(0.5, 0.01, f"dot: (arm − {reference}) / (top − {reference}) over {seeds} seeds per arm; "
           f"line: Fieller 95% CI (arrow: cut at the axis or unbounded); 0 = {reference}, "
           "1 = the top (green), dashed = half the gap", ha="center", va="bottom", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=11)
  fig.tight_layout(rect=(0, 0.4 / fig.get_figheight(), 1, 1))
  return fig
