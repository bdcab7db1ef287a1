"""Figure plots of a sweep: one subplot per metric, seeds and their spread, paper values hollow.

With an x axis (``sweep.x_key``) each series is a line over x; without one each arm is a bar.
Rules that keep a plot from misleading:

- spread: with 3 or more seeds a mean carries a ± sample-std error bar; with fewer, every
  seed is drawn as a point (a std of one or two values is not an error bar);
- y axis: a bar starts at 0 (its length is its value); a line axis starts at 0 unless every
  value is above 5/6 of the largest (the data are far from 0 relative to their spread; the
  rule of common spreadsheet charts), then it zooms to the data;
- paper values are hollow markers at the arm's x (or beside its bar), labelled with the
  paper's dataset when the sweep measures another one (``sweep.paper_dataset``).

Labels and number formats come from the metric table (``kd_jax.kd.metrics.METRICS``), so the plot
and the markdown table name every metric the same way. A column is ``"split/metric"``.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional, Sequence

from kd_jax.kd import metrics

def metric_label(column: str) -> str:
  """``test/agreement`` → ``test agreement %`` (labels from the metric table)."""
  split, name = column.split("/", 1)
  return metrics.column_label(split, name)


def metric_format(column: str) -> str:
  return metrics.metric(column.split("/", 1)[1]).fmt


def paper_number(value) -> Optional[float]:
  """A paper value as a number: 86, 84.5 or "≈74.5" (read off a plot); None if not numeric."""
  if isinstance(value, bool):
    return None
  if isinstance(value, (int, float)):
    return float(value)
  try:
    return float(str(value).strip().lstrip("≈~").strip())
  except ValueError:
    return None


@dataclasses.dataclass
class ArmPoint:
  """What the plot needs of one arm: where it sits and its statistics over seeds."""
  arm: str
  x: Optional[float]
  series: str
  stats: dict[str, tuple[float, float, int]]  # metric -> (mean, sample std or nan, n seeds)
  paper: dict[str, float] = dataclasses.field(default_factory=dict)
  seeds: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # metric -> values

  def spread(self, metric: str) -> bool:
    """Whether the mean of ``metric`` gets an error bar (else its seeds are drawn as points)."""
    return self.stats[metric][2] >= MIN_SEEDS_FOR_ERRORBAR


#: Fewer seeds than this are drawn as points, not as a mean ± std.
MIN_SEEDS_FOR_ERRORBAR = 3
#: A line axis leaves out 0 only when every value is above this fraction of the largest.
ZOOM_ABOVE = 5 / 6


def _has(point: ArmPoint, metric: str) -> bool:
  return metric in point.stats and not math.isnan(point.stats[metric][0])


def _std(s: float) -> float:
  return 0.0 if not math.isfinite(s) else s


def y_limits(values: Sequence[float], *, bars: bool) -> tuple[float, float]:
  """The y range of one subplot under the module's rule (0 included unless far from the data)."""
  lo, hi = min(values), max(values)
  pad = max(0.08 * (hi - lo), 0.01 * abs(hi), 1e-3)
  if lo >= 0 and (bars or lo <= ZOOM_ABOVE * hi):
    return 0.0, hi + max(2 * pad, 0.1 * hi)  # room for the values printed above the bars
  return lo - pad, hi + 2 * pad


def plot_sweep(points: Sequence[ArmPoint], metrics: Sequence[str], path: Path, *,
               title: str = "", x_label: str = "", paper_dataset: str = "") -> Optional[Path]:
  """Writes the figure to ``path``; returns None (and writes nothing) if no arm has results."""
  fig = draw_sweep(points, metrics, title=title, x_label=x_label, paper_dataset=paper_dataset)
  if fig is None:
    return None
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)  # Agg canvas
  return path


def draw_sweep(points: Sequence[ArmPoint], metrics: Sequence[str], *, title: str = "",
               x_label: str = "", paper_dataset: str = ""):
  """The matplotlib Figure of :func:`plot_sweep` (None if no arm has results)."""
  from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

  points = [p for p in points if any(_has(p, m) for m in metrics)]
  # a metric neither measured (an old CSV without the column) nor in the paper: no subplot
  metrics = [m for m in metrics if any(_has(p, m) or m in p.paper for p in points)]
  if not points or not metrics:
    return None
  paper_label = f"paper ({paper_dataset})" if paper_dataset else "paper"
  line = all(p.x is not None for p in points)
  width = 4.6 if line else max(4.6, 0.55 * len(points) + 1.5)
  fig = Figure(figsize=(width * len(metrics), 4.0))
  axes = fig.subplots(1, len(metrics), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    if line:
      shown = _lines(ax, points, metric, paper_label)
      ax.set_xlabel(x_label)
    else:
      shown = _bars(ax, points, metric, paper_label)
    if shown:
      ax.set_ylim(*y_limits(shown, bars=not line))
    ax.set_title(metric_label(metric), fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
  legend = {}  # label -> handle, over every subplot (paper values may be on one only)
  for ax in axes[0]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  if len(legend) > 1:  # below the plots: inside them it hides bars or markers
    fig.legend(list(legend.values()), list(legend), fontsize=9, loc="lower center",
               ncol=len(legend), frameon=False)
  if title:
    fig.suptitle(title, fontsize=12)
  fig.tight_layout(rect=(0, 0.07 if len(legend) > 1 else 0, 1, 1))
  return fig


def _lines(ax, points: Sequence[ArmPoint], metric: str, paper_label: str) -> list[float]:
  """One line of means per series; returns every y value drawn (for the axis range)."""
  series: dict[str, list[ArmPoint]] = {}
  for p in points:
    series.setdefault(p.series, []).append(p)
  drawn: list[float] = []
  for i, (name, group) in enumerate(series.items()):
    color = f"C{i}"
    group = sorted(group, key=lambda p: p.x)
    have = [p for p in group if _has(p, metric)]
    xs = [p.x for p in have]
    means = [p.stats[metric][0] for p in have]
    ax.plot(xs, means, color=color, marker="o", ms=5, lw=1.5, label=name or "measured")
    bars = [p for p in have if p.spread(metric)]
    if bars:
      ax.errorbar([p.x for p in bars], [p.stats[metric][0] for p in bars],
                  yerr=[_std(p.stats[metric][1]) for p in bars], color=color, ls="none",
                  capsize=3)
    for p in have:
      mean, sd = p.stats[metric][0], _std(p.stats[metric][1])
      seeds = p.seeds.get(metric, [])
      if p.spread(metric):
        drawn += [mean - sd, mean + sd]
      elif len(seeds) > 1:
        ax.plot([p.x] * len(seeds), seeds, ls="none", marker=".", color=color, alpha=0.6)
        drawn += seeds
    drawn += means
    paper = [(p.x, p.paper[metric]) for p in group if metric in p.paper]
    if paper:
      ax.plot([x for x, _ in paper], [v for _, v in paper], ls="none", marker="s", ms=8,
              mfc="none", mec=color, mew=1.5,
              label=f"{name} {paper_label}".strip() if name else paper_label)
      drawn += [v for _, v in paper]
  return drawn


def _bars(ax, points: Sequence[ArmPoint], metric: str, paper_label: str) -> list[float]:
  """A bar per arm (its mean), its seeds as points or its ± std; returns the y values drawn."""
  pos = list(range(len(points)))
  means = [p.stats.get(metric, (math.nan, math.nan, 0))[0] for p in points]
  ax.bar(pos, [0.0 if math.isnan(m) else m for m in means], color="C0", alpha=0.8,
         label="measured")
  fmt = metric_format(metric)
  drawn: list[float] = [m for m in means if not math.isnan(m)]
  for x, p, m in zip(pos, points, means):
    if math.isnan(m):
      continue
    top = m
    if p.spread(metric):
      sd = _std(p.stats[metric][1])
      ax.errorbar([x], [m], yerr=[sd], color="k", capsize=3, ls="none")
      top = m + sd
    elif len(p.seeds.get(metric, [])) > 1:
      ax.plot([x] * len(p.seeds[metric]), p.seeds[metric], ls="none", marker="o", ms=4,
              color="k", label="seeds")
      top = max(p.seeds[metric])
    drawn.append(top)
    ax.annotate(fmt.format(m), (x, top), textcoords="offset points", xytext=(0, 3),
                ha="center", va="bottom", fontsize=8)
  # beside the bar's value, so neither hides the other
  paper = [(x + 0.3, p.paper[metric]) for x, p in zip(pos, points) if metric in p.paper]
  if paper:
    ax.plot([x for x, _ in paper], [v for _, v in paper], ls="none", marker="D", ms=8,
            mfc="none", mec="k", mew=1.5, label=paper_label)
    drawn += [v for _, v in paper]
  tilt = len(points) > 3  # long lists of arm names overlap unless tilted
  ax.set_xticks(pos)
  ax.set_xticklabels([p.arm for p in points], rotation=30 if tilt else 0,
                     ha="right" if tilt else "center", fontsize=9)
  return drawn
