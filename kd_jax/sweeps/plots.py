"""Figure plots of a sweep: one subplot per metric, seeds and their spread, paper values hollow.

With an x axis (``sweep.x_key``) each series is a line over x; without one each arm is a bar.
Rules that keep a plot from misleading:

- spread: with 3 or more seeds a mean carries the 95% confidence interval of the mean
  (Student t, n − 1 df; ``kd_jax.sweeps.stats.mean_ci``) as its error bar; with fewer, every
  seed is drawn as a point (an interval from one or two values is no error bar). A line under
  the panels says which: "mean ± 95% CI over n seeds" with n (or its range);
- y axis: every panel is labelled with its metric and unit ("test agreement %"). A bar starts
  at 0 (its length is its value); a line axis starts at 0 unless every value is above 5/6 of
  the largest (the data are far from 0 relative to their spread; the rule of common
  spreadsheet charts), then it zooms to the data and its y label ends in "(axis zoomed)", so a
  zoomed panel is never read at the scale of the 0-based one beside it. A percentage axis is
  sized to what lies in [0, 100]: an interval running past a bound is cut at the axis;
- paper values are hollow markers at the arm's x (or beside its bar), drawn only with their
  setting in the legend: ``sweep.paper_setting`` (else ``sweep.paper_dataset``), and when the
  sweep measures another dataset (``sweep.paper_dataset`` set) "shape, not level";
- the legend is always drawn (a bar chart too), below the panels.

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
  stats: dict[str, tuple[float, float, int]]  # metric -> (mean, 95% CI half-width or nan, n)
  paper: dict[str, float] = dataclasses.field(default_factory=dict)
  seeds: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # metric -> values

  def spread(self, metric: str) -> bool:
    """Whether the mean of ``metric`` gets an error bar (else its seeds are drawn as points)."""
    return self.stats[metric][2] >= MIN_SEEDS_FOR_ERRORBAR


#: Fewer seeds than this are drawn as points, not as a mean ± CI.
MIN_SEEDS_FOR_ERRORBAR = 3
#: Panels wrap into rows past this figure width (inches).
MAX_WIDTH = 20.0
#: A line axis leaves out 0 only when every value is above this fraction of the largest.
ZOOM_ABOVE = 5 / 6


def _has(point: ArmPoint, metric: str) -> bool:
  return metric in point.stats and not math.isnan(point.stats[metric][0])


def _half(s: float) -> float:
  return 0.0 if not math.isfinite(s) else s


def is_percent(column: str) -> bool:
  return "%" in metric_label(column)


#: Upper bounds of metrics by split (besides percentages): CKA similarity is at most 1.
BOUNDS = {"cka": 1.0}


def y_limits(values: Sequence[float], *, bars: bool, percent: bool = False,
             nonnegative: bool = False, bound: float = 0.0) -> tuple[float, float, bool]:
  """(low, high, zoomed) of one subplot under the module's rule: 0 included unless far from
  the data. The axis is sized to the values a metric can take ([0, 100] for a percentage,
  [0, ``bound``] for a bounded one such as CKA's [0, 1], ≥ 0 for a ``nonnegative`` one), so a
  CI running past a bound is cut there, not drawn to scale."""
  top = 100.0 if percent else (float(bound) if bound else math.inf)
  if percent or nonnegative or bound:
    values = [min(max(v, 0.0), top) for v in values]
  lo, hi = min(values), max(values)
  pad = max(0.08 * (hi - lo), 0.01 * abs(hi), 1e-3)
  ceiling = top + (0.10 if bars else 0.05) * top  # room for a value printed above the bound
  if lo >= 0 and (bars or lo <= ZOOM_ABOVE * hi):
    upper = hi + max(2 * pad, 0.1 * hi)  # room for the values printed above the bars
    return 0.0, min(upper, ceiling), False
  return lo - pad, min(hi + 2 * pad, ceiling), lo > 0


def paper_label(paper_dataset: str = "", paper_setting: str = "") -> str:
  """The legend entry of paper markers: their setting, and "shape, not level" when the sweep
  measures another dataset than the paper's."""
  setting = paper_setting or paper_dataset
  label = f"paper ({setting})" if setting else "paper"
  return label + (": shape, not level" if paper_dataset else "")


def spread_caption(points: Sequence[ArmPoint], metrics: Sequence[str]) -> str:
  """What the error bars are, over how many seeds (the range when arms differ)."""
  ns = sorted({p.stats[m][2] for p in points for m in metrics if _has(p, m)})
  if not ns:
    return ""
  span = f"{ns[0]}" if ns[0] == ns[-1] else f"{ns[0]}–{ns[-1]}"
  few = f"fewer than {MIN_SEEDS_FOR_ERRORBAR} seeds: each seed a point, no error bar"
  if ns[-1] == 1:
    return "1 seed per arm: no error bars"
  if ns[-1] < MIN_SEEDS_FOR_ERRORBAR:
    return f"{span} seed{'s' if ns[-1] > 1 else ''} per arm; {few}"
  caption = f"mean ± 95% CI (Student t) over {span} seeds"
  return caption + (f"; arms with {few}" if ns[0] < MIN_SEEDS_FOR_ERRORBAR else "")


def plot_sweep(points: Sequence[ArmPoint], metrics: Sequence[str], path: Path, *,
               title: str = "", x_label: str = "", paper_dataset: str = "",
               paper_setting: str = "") -> Optional[Path]:
  """Writes the figure to ``path``; returns None (and writes nothing) if no arm has results."""
  fig = draw_sweep(points, metrics, title=title, x_label=x_label, paper_dataset=paper_dataset,
                   paper_setting=paper_setting)
  if fig is None:
    return None
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)  # Agg canvas
  return path


def draw_sweep(points: Sequence[ArmPoint], metrics: Sequence[str], *, title: str = "",
               x_label: str = "", paper_dataset: str = "", paper_setting: str = ""):
  """The matplotlib Figure of :func:`plot_sweep` (None if no arm has results)."""
  from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

  points = [p for p in points if any(_has(p, m) for m in metrics)]
  # a metric neither measured (an old CSV without the column) nor in the paper: no subplot
  metrics = [m for m in metrics if any(_has(p, m) or m in p.paper for p in points)]
  if not points or not metrics:
    return None
  paper = paper_label(paper_dataset, paper_setting)
  line = all(p.x is not None for p in points)
  width = 4.6 if line else max(4.6, 0.55 * len(points) + 1.5)
  nrows = -(-len(metrics) // max(1, int(MAX_WIDTH // width)))
  ncols = -(-len(metrics) // nrows)  # rows as even as they can be: 5 panels as 3 + 2
  fig = Figure(figsize=(width * ncols, 3.6 * nrows + 0.8))
  grid = fig.subplots(nrows, ncols, squeeze=False)
  axes = list(grid.flat)
  for ax in axes[len(metrics):]:
    ax.set_visible(False)
  for ax, metric in zip(axes, metrics):
    if line:
      shown = _lines(ax, points, metric, paper)
      ax.set_xlabel(x_label)
      if all(float(p.x).is_integer() for p in points):
        # counts (members, epochs, images): no tick at 2.5 members
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
      shown = _bars(ax, points, metric, paper)
    zoomed = False
    if shown:
      means = [p.stats[metric][0] for p in points if _has(p, metric)]
      lo, hi, zoomed = y_limits(shown, bars=not line, percent=is_percent(metric),
                                nonnegative=min(means, default=0.0) >= 0,
                                bound=BOUNDS.get(metric.split("/", 1)[0], 0.0))
      ax.set_ylim(lo, hi)
    ax.set_ylabel(metric_label(metric) + (" (axis zoomed)" if zoomed else ""))
    ax.grid(True, axis="y", alpha=0.3)
  legend = {}  # label -> handle, over every subplot (paper values may be on one only)
  for ax in axes:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  # below the plots (inside them it hides bars or markers), over the caption of the spread
  height = fig.get_figheight()
  fig.legend(list(legend.values()), list(legend), fontsize=9, loc="lower center",
             bbox_to_anchor=(0.5, 0.2 / height), ncol=min(len(legend), 4), frameon=False)
  fig.text(0.5, 0.05 / height, spread_caption(points, metrics), ha="center", va="bottom",
           fontsize=9)
  if title:
    fig.suptitle(title, fontsize=12)
  rows = 1 + (len(legend) - 1) // 4
  fig.tight_layout(rect=(0, (0.3 + 0.25 * rows) / height, 1, 1))
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
    ax.plot(xs, means, color=color, marker="o", ms=5, lw=1.5, label=name or "measured (mean)")
    bars = [p for p in have if p.spread(metric)]
    if bars:
      ax.errorbar([p.x for p in bars], [p.stats[metric][0] for p in bars],
                  yerr=[_half(p.stats[metric][1]) for p in bars], color=color, ls="none",
                  capsize=3)
    for p in have:
      mean, sd = p.stats[metric][0], _half(p.stats[metric][1])
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
  """A bar per arm (its mean), its seeds as points or its ± CI; returns the y values drawn."""
  pos = list(range(len(points)))
  means = [p.stats.get(metric, (math.nan, math.nan, 0))[0] for p in points]
  ax.bar(pos, [0.0 if math.isnan(m) else m for m in means], color="C0", alpha=0.8,
         label="measured (mean)")
  fmt = metric_format(metric)
  drawn: list[float] = [m for m in means if not math.isnan(m)]
  for x, p, m in zip(pos, points, means):
    if math.isnan(m):
      continue
    top = m
    if p.spread(metric):
      sd = _half(p.stats[metric][1])
      ax.errorbar([x], [m], yerr=[sd], color="k", capsize=3, ls="none")
      top = m + sd
    elif len(p.seeds.get(metric, [])) > 1:
      ax.plot([x] * len(p.seeds[metric]), p.seeds[metric], ls="none", marker="o", ms=4,
              color="k", label="seeds")
      top = max(p.seeds[metric])
    top = min(top, 100.0) if is_percent(metric) else top  # the axis cuts a CI past 100
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
