"""Figure plots of a sweep: one subplot per metric, mean ± std over seeds, paper values hollow.

With an x axis (``sweep.x_key``) each series is a line over x; without one each arm is a bar.
Paper values are drawn as hollow markers at the arm's x (or on its bar), so a reader sees the
measured number and the target side by side. Labels and number formats come from the metric
table (``kd_jax.metrics.METRICS``), so the plot and the markdown table name every metric the same
way. A column is ``"split/metric"``.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional, Sequence

from kd_jax import metrics

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


def _has(point: ArmPoint, metric: str) -> bool:
  return metric in point.stats and not math.isnan(point.stats[metric][0])


def _std(s: float) -> float:
  return 0.0 if not math.isfinite(s) else s


def plot_sweep(points: Sequence[ArmPoint], metrics: Sequence[str], path: Path, *,
               title: str = "", x_label: str = "") -> Optional[Path]:
  """Writes the figure to ``path``; returns None (and writes nothing) if no arm has results."""
  from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

  points = [p for p in points if any(_has(p, m) for m in metrics)]
  if not points or not metrics:
    return None
  line = all(p.x is not None for p in points)
  width = 4.6 if line else max(4.6, 0.55 * len(points) + 1.5)
  fig = Figure(figsize=(width * len(metrics), 4.0))
  axes = fig.subplots(1, len(metrics), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    if line:
      _lines(ax, points, metric)
      ax.set_xlabel(x_label)
    else:
      _bars(ax, points, metric)
    ax.set_title(metric_label(metric), fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
  legend = {}  # label -> handle, over every subplot (paper values may be on one only)
  for ax in axes[0]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  if len(legend) > 1:
    axes[0][-1].legend(list(legend.values()), list(legend), fontsize=9, loc="best")
  if title:
    fig.suptitle(title, fontsize=12)
  fig.tight_layout()
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)  # Agg canvas
  return path


def _lines(ax, points: Sequence[ArmPoint], metric: str) -> None:
  series: dict[str, list[ArmPoint]] = {}
  for p in points:
    series.setdefault(p.series, []).append(p)
  for i, (name, group) in enumerate(series.items()):
    color = f"C{i}"
    group = sorted(group, key=lambda p: p.x)
    have = [p for p in group if _has(p, metric)]
    xs = [p.x for p in have]
    means = [p.stats[metric][0] for p in have]
    stds = [_std(p.stats[metric][1]) for p in have]
    ax.errorbar(xs, means, yerr=stds, color=color, marker="o", ms=5, capsize=3, lw=1.5,
                label=name or "measured")
    paper = [(p.x, p.paper[metric]) for p in group if metric in p.paper]
    if paper:
      ax.plot([x for x, _ in paper], [v for _, v in paper], ls="none", marker="s", ms=8,
              mfc="none", mec=color, mew=1.5, label=f"{name} paper".strip() if name else "paper")


def _bars(ax, points: Sequence[ArmPoint], metric: str) -> None:
  pos = list(range(len(points)))
  means = [p.stats.get(metric, (math.nan, math.nan, 0))[0] for p in points]
  stds = [_std(p.stats.get(metric, (math.nan, math.nan, 0))[1]) for p in points]
  ax.bar(pos, [0.0 if math.isnan(m) else m for m in means], yerr=stds, color="C0", alpha=0.8,
         capsize=3, label="measured")
  fmt = metric_format(metric)
  for x, m, sd in zip(pos, means, stds):
    if not math.isnan(m):  # above the error bar
      ax.annotate(fmt.format(m), (x, m + sd), textcoords="offset points", xytext=(0, 3),
                  ha="center", va="bottom", fontsize=8)
  # beside the bar's error bar and value, so neither hides the other
  paper = [(x + 0.3, p.paper[metric]) for x, p in zip(pos, points) if metric in p.paper]
  if paper:
    ax.plot([x for x, _ in paper], [v for _, v in paper], ls="none", marker="D", ms=8,
            mfc="none", mec="k", mew=1.5, label="paper")
  shown = [m for m in means if not math.isnan(m)] + [v for _, v in paper]
  if shown:  # zoom in: the differences between arms are a few points on a 0-100 scale
    lo, hi = min(shown), max(shown)
    pad = max(0.15 * (hi - lo), 0.02 * abs(hi), 1e-3)
    ax.set_ylim(max(0.0, lo - pad - max(stds, default=0.0)), hi + 2 * pad + max(stds, default=0.0))
  tilt = len(points) > 3  # long lists of arm names overlap unless tilted
  ax.set_xticks(pos)
  ax.set_xticklabels([p.arm for p in points], rotation=30 if tilt else 0,
                     ha="right" if tilt else "center", fontsize=9)
