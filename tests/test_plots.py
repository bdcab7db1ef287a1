"""Plots and tables that do not mislead: 95% CI error bars, seeds as points below 3 seeds, y
axes labelled with their unit that include 0 unless the data are far from it (and then say
so), paper markers labelled with their setting, honest trial counts, rounded CSV numbers, and
committed results rebuilt under these rules."""
from __future__ import annotations

import collections
import csv
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from matplotlib.container import BarContainer, ErrorbarContainer

from kd_jax.kd import landscape
from kd_jax.sweeps import plots, rebuild, report as sweep_report

ROOT = Path(__file__).resolve().parents[1]


def point(arm: str, values: list[float], x=None, paper=None, metric="test/agreement"):
  """An ArmPoint whose statistics are computed here with numpy and scipy's t quantile (not by
  the code under test): mean, 95% CI half-width, n."""
  v = np.array(values)
  return plots.ArmPoint(arm, x, "", {metric: (float(v.mean()), ci_half(values), len(v))},
                        paper or {}, {metric: list(values)})


def ci_half(values) -> float:
  v = np.array(values, dtype=float)
  if len(v) < 2:
    return float("nan")
  return float(scipy.stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def errorbars(ax) -> list:
  return [c for c in ax.containers if isinstance(c, ErrorbarContainer)] + [
      c for c in ax.containers if isinstance(c, BarContainer) and c.errorbar is not None]


@pytest.mark.parametrize("x", [None, 1.0])  # bars, lines
def test_fewer_than_three_seeds_are_points_not_error_bars(x):
  pts = [point("a", [60.0], x=x), point("b", [70.0, 72.0], x=None if x is None else 2.0)]
  ax = plots.draw_sweep(pts, ["test/agreement"]).axes[0]
  assert errorbars(ax) == []
  drawn = sorted(round(float(y), 6) for line in ax.get_lines() for y in line.get_ydata())
  assert 70.0 in drawn and 72.0 in drawn  # both seeds of arm b, as points


@pytest.mark.parametrize("x", [None, 1.0])  # bars, lines
def test_three_seeds_get_a_95_percent_ci_error_bar(x):
  vals = [60.0, 61.0, 65.0]
  fig = plots.draw_sweep([point("a", vals, x=x)], ["test/agreement"])
  (bar,) = errorbars(fig.axes[0])
  segs = bar.lines[2][0].get_segments()
  (_, lo), (_, hi) = segs[0]
  # t(2) quantile (2p − 1)/√(2p(1 − p)) at p = 0.975, times s/√3
  half = 0.95 / np.sqrt(2 * 0.975 * 0.025) * np.std(vals, ddof=1) / np.sqrt(3)
  assert (lo, hi) == pytest.approx((np.mean(vals) - half, np.mean(vals) + half))
  assert "mean ± 95% CI (Student t) over 3 seeds" in texts(fig)


def texts(fig) -> list[str]:
  return [t.get_text() for t in fig.texts] + [t.get_text() for leg in fig.legends
                                              for t in leg.texts]


@pytest.mark.parametrize("counts,caption", [
    ((1, 1), "1 seed per arm: no error bars"),
    ((2, 1), "1–2 seeds per arm; fewer than 3 seeds: each seed a point, no error bar"),
    ((3, 5), "mean ± 95% CI (Student t) over 3–5 seeds"),
    ((2, 3), "mean ± 95% CI (Student t) over 2–3 seeds; arms with fewer than 3 seeds: each "
             "seed a point, no error bar"),
])
def test_caption_says_what_the_spread_is_and_over_how_many_seeds(counts, caption):
  pts = [point(f"a{i}", [50.0 + j for j in range(n)]) for i, n in enumerate(counts)]
  assert caption in texts(plots.draw_sweep(pts, ["test/agreement"]))


@pytest.mark.parametrize("x", [None, 1.0])
def test_every_panel_has_a_y_label_with_its_unit_and_the_chart_a_legend(x):
  pts = [point("a", [50.0], x=x), point("b", [60.0], x=None if x is None else 2.0)]
  for p, kl in zip(pts, (0.1, 0.9)):
    p.stats["test/kl"] = (kl, float("nan"), 1)
  fig = plots.draw_sweep(pts, ["test/agreement", "test/kl"])
  assert [ax.get_ylabel() for ax in fig.axes] == ["test agreement %", "test KL(t‖s)"]
  assert "measured (mean)" in texts(fig)  # one entry is a legend too (a bar chart's)


@pytest.mark.parametrize("x", [None, 1.0])
def test_percent_axes_start_at_zero_when_the_data_spread_widely(x):
  # Fig 3 mini: agreement 55-70 with paper values 79-86 -> 0 is on the axis (bars and lines).
  pts = [point("a", [55.0], x=x, paper={"test/agreement": 86.0}),
         point("b", [70.0], x=None if x is None else 2.0)]
  ax = plots.draw_sweep(pts, ["test/agreement"]).axes[0]
  lo, hi = ax.get_ylim()
  assert lo == 0.0 and hi > 86.0


def test_lines_zoom_only_when_every_value_is_far_from_zero_and_bars_never_do():
  vals = {1.0: 91.7, 2.0: 95.9}  # all above 5/6 of the largest
  pts = [point(f"n{x:g}", [v], x=x) for x, v in vals.items()]
  ax = plots.draw_sweep(pts, ["test/agreement"]).axes[0]
  lo, hi = ax.get_ylim()
  assert 0.0 < lo < 91.7 and hi > 95.9
  assert ax.get_ylabel() == "test agreement % (axis zoomed)"
  bars = [point(f"n{x:g}", [v]) for x, v in vals.items()]
  ax = plots.draw_sweep(bars, ["test/agreement"]).axes[0]
  assert ax.get_ylim()[0] == 0.0 and ax.get_ylabel() == "test agreement %"


@pytest.mark.parametrize("x", [None, 1.0])
def test_a_ci_past_the_bounds_of_its_metric_is_cut_at_the_axis(x):
  # Fig 6b mid λ = 0.5: mean 42, half-width ≈ 65 → the CI runs from < 0 to > 100
  pts = [point("a", [33.2, 71.35, 21.75], x=x), point("b", [2.0, 2.5, 3.0],
                                                      x=None if x is None else 2.0)]
  assert ci_half([33.2, 71.35, 21.75]) > 58
  lo, hi = plots.draw_sweep(pts, ["test/agreement"]).axes[0].get_ylim()
  assert lo == 0.0 and 100.0 < hi <= 110.0
  kl = [point("a", [0.1, 1.5, 0.2], x=x, metric="test/kl")]  # KL ≥ 0: the axis starts at 0
  assert plots.draw_sweep(kl, ["test/kl"]).axes[0].get_ylim()[0] == 0.0
  # CKA is at most 1: a CI past it is cut near 1, not drawn to 1.8
  cka = [point("a", [0.55, 0.98, 0.99], x=x, metric="cka/stage1")]
  assert ci_half([0.55, 0.98, 0.99]) > 0.5
  lo, hi = plots.draw_sweep(cka, ["cka/stage1"]).axes[0].get_ylim()
  assert 1.0 < hi <= 1.1


def test_panels_wrap_into_rows_on_wide_figures():
  cols = ["test/agreement", "test/student_acc", "test/kl", "test/student_ece"]
  pts = [plots.ArmPoint(f"arm{i}", None, "", {c: (50.0, float("nan"), 1) for c in cols})
         for i in range(14)]
  fig = plots.draw_sweep(pts, cols)
  width, _ = fig.get_size_inches()
  assert width <= plots.MAX_WIDTH
  shown = [ax for ax in fig.axes if ax.get_visible()]
  assert [ax.get_ylabel() for ax in shown] == [plots.metric_label(c) for c in cols]


def test_paper_markers_name_their_setting_and_say_shape_not_level_on_other_data():
  pts = [point("a", [55.0], paper={"test/agreement": 84.5}), point("b", [60.0])]
  legend = lambda **kw: [t.get_text() for leg in plots.draw_sweep(
      pts, ["test/agreement"], **kw).legends for t in leg.texts]
  assert "paper (CIFAR-100): shape, not level" in legend(paper_dataset="CIFAR-100")
  setting = "CIFAR-100, 5×ResNet-56 → ResNet-56"
  assert f"paper ({setting}): shape, not level" in legend(paper_dataset="CIFAR-100",
                                                          paper_setting=setting)
  assert f"paper ({setting})" in legend(paper_setting=setting)  # measured on the paper's data
  assert "paper" in legend()


def test_csv_numbers_are_rounded(tmp_path):
  row = {"arm": "a", "seed": 0, "test/agreement": 57.199999999999996,
         "test/kl": 0.02478856086730957, "run/wall_time_s": 91.0, "test/student_ece": None}
  cols = list(row)
  sweep_report.write_csv(tmp_path / "r.csv", cols, [row])
  (got,) = list(csv.DictReader((tmp_path / "r.csv").open()))
  assert got == {"arm": "a", "seed": "0", "test/agreement": "57.2", "test/kl": "0.0247886",
                 "run/wall_time_s": "91.0", "test/student_ece": ""}


def test_trial_count_under_only_says_asked_of_all():
  T = collections.namedtuple("T", "arm seed")
  trials = [T(a, s) for a in ("x", "y") for s in (0, 1)] + [T("z", 0)]
  rows = [{"arm": "x", "seed": 0}, {"arm": "x", "seed": 1}]
  want = "2/2 asked (of 5; 2 finished in all)"
  assert sweep_report.finished_line(trials, rows, trials[:2]) == want
  assert sweep_report.finished_line(trials, rows, None) == "2/5"


@pytest.mark.parametrize("old,new", [("test_agreement", "test/agreement"),
                                     ("train_aug_agreement", "distill_aug/agreement"),
                                     ("train_kl", "distill/kl"),
                                     ("train/agreement", "distill/agreement"),
                                     ("distill_aug/kl", "distill_aug/kl"),
                                     ("running_kl", "running/kl"), ("cka_stage2", "cka/stage2"),
                                     ("wall_time_s", "run/wall_time_s"), ("seed", "seed"),
                                     ("test/kl", "test/kl")])
def test_old_csv_columns_translate(old, new):
  assert sweep_report.new_column(old) == new


def test_rebuild_a_committed_result_from_its_csv(tmp_path, monkeypatch):
  src = ROOT / "experiments" / "results" / "fig14_alpha_mini"
  out = tmp_path / "fig14_alpha_mini"
  shutil.copytree(src, out)
  # as a folder from before per-trial files: only its results.csv and results.md
  (out / "sweep.json").unlink(missing_ok=True)
  shutil.rmtree(out / "trials", ignore_errors=True)
  with (src / "results.csv").open() as f:
    old = list(csv.DictReader(f))
  monkeypatch.chdir(ROOT)  # the command in results.md names configs/ relative to the clone
  rebuild.rebuild(out)
  with (out / "results.csv").open() as f:
    new = list(csv.DictReader(f))
  assert len(new) == len(old)
  for o, n in zip(old, new):
    for k, v in o.items():
      key = sweep_report.new_column(k)
      if key not in ("arm", "series", "commit", "machine", "finished") and v:
        assert float(n[key]) == pytest.approx(float(v), rel=1e-5)
  md = (out / "results.md").read_text()
  assert "- command: `python -m kd_jax.sweep --config=configs/fig14_alpha.py:mini" in md
  assert "- rebuilt from results.csv" in md
  assert (out / "fig14_alpha_mini.png").read_bytes()[:4] == b"\x89PNG"


def _figure(file: str, arg: str):
  spec = importlib.util.spec_from_file_location("fig", ROOT / "configs" / file)
  m = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(m)
  return m.get_config(arg), (m.get_sweep(arg) if hasattr(m, "get_sweep") else None)


def test_ood_arm_is_named_after_the_data_it_appends():
  for arg, name, source in (("mini", "ood_mnist", "mnist_embedded"), ("", "ood_svhn", "tfds")):
    _, s = _figure("fig3_augmentation.py", arg)
    arms = dict(s.arms)
    assert arms[name]["data.ood.source"] == source and not any(
        a.startswith("ood") and a != name for a in arms)
    assert name in dict(s.paper)


def test_cifar_minis_name_their_data_and_mark_paper_values():
  c, _ = _figure("cifar100.py", "mini")
  assert "cifar100" not in c.name
  for f in sorted((ROOT / "configs").glob("fig*.py")) + [ROOT / "configs" / "table1_cka.py"]:
    c, s = _figure(f.name, "mini")
    if s is not None and s.paper and "mnist" not in f.name:  # CIFAR figures, CIFAR-10 minis
      assert s.paper_dataset == "CIFAR-100", f.name


def test_plane_draws_cells_and_prints_the_anchors_measured_values(tmp_path, monkeypatch):
  import jax.numpy as jnp
  a, b, c = (jnp.array([0.0, 0.0, 0.0]), jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.5]))
  pl = landscape.plane_basis(a, b, c)
  xs, ys = landscape.grid_around(pl, n=5)
  figs = []
  monkeypatch.setattr(landscape, "_save", lambda fig, path: figs.append(fig) or str(path))
  landscape.plot_plane(np.zeros((5, 5)), xs, ys, pl, path=tmp_path / "p.png",
                       anchor_values=[100.0, 9.5, 58.25], value_format="{:.2f}")
  ax = figs[0].axes[0]
  from matplotlib.collections import QuadMesh
  assert any(isinstance(c, QuadMesh) for c in ax.collections)  # cells, no contour smearing
  texts = [t.get_text() for t in ax.get_legend().texts]
  assert texts == ["teacher: 100.00", "student init: 9.50", "student final: 58.25"]


@pytest.mark.parametrize("xs,integer", [((1.0, 3.0, 5.0), True), ((0.0, 0.25, 1.0), False)])
def test_counts_on_the_x_axis_get_whole_number_ticks(xs, integer):
  pts = [plots.ArmPoint(f"m{x:g}", x, "", {"test/agreement": (80.0 + x, float("nan"), 1)})
         for x in xs]
  fig = plots.draw_sweep(pts, ["test/agreement"], x_label="x")
  ticks = [t for t in fig.axes[0].get_xticks() if xs[0] <= t <= xs[-1]]
  assert ticks
  assert all(float(t).is_integer() for t in ticks) == integer


def test_the_table_drops_a_column_no_trial_measured_but_keeps_the_asked_ones():
  """Augmented trials get distill_aug CSV columns whether or not they ran that evaluation; an
  all-empty column in the table is noise, while a column the sweep asks for stays (a partial
  table shows its "—")."""
  from ml_collections import ConfigDict
  from kd_jax.config import sweep_config
  sweep = sweep_config()
  sweep.metrics = ("test/agreement", "val/agreement")
  T = collections.namedtuple("T", "arm seed x config")
  cfg = ConfigDict({"distill": {"augment": "shift"}})
  trials = [T("a", s, None, cfg) for s in (0, 1)]
  rows = [{"arm": "a", "seed": s, "test/agreement": 90.0 + s, "val/agreement": None,
           "distill/agreement": 95.0} for s in (0, 1)]
  md = sweep_report.markdown("t", sweep, trials, rows, "cmd", None, teachers="Teachers: one")
  head = next(line for line in md.splitlines() if line.startswith("| arm"))
  assert "test agreement" in head and "val agreement" in head
  assert "distill agreement" in head and "distill (augmented)" not in head
  assert "distill_aug/agreement" in sweep_report.columns(sweep, trials, rows)  # the CSV keeps it


def test_gap_plot_puts_each_arm_at_its_fraction_of_the_gap_closed():
  """Dots at (mean(arm) − mean(ref)) / (100 − mean(ref)), computed here with numpy; a CI past
  the axis (an arm whose seeds barely differ from a noisy reference) ends in an arrow."""
  from kd_jax.sweeps import compare, gap_plot
  ref, good, noisy = [90.0, 91.0, 92.0], [99.0, 99.5, 99.8], [80.0, 95.0, 70.0]
  values = {"base": {"d/agreement": ref}, "good": {"d/agreement": good},
            "noisy": {"d/agreement": noisy}}
  fractions = compare.gap_fractions(["base", "good", "noisy"], "base",
                                    [("d/agreement", 100.0)], values)
  fig = gap_plot.draw_gaps(fractions, "base")
  (ax,) = [a for a in fig.axes if a.get_visible()]
  dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
  want = [(np.mean(v) - np.mean(ref)) / (100 - np.mean(ref)) for v in (good, noisy)]
  got = [ln.get_xdata()[0] for ln in dots]
  lo, hi = gap_plot.LIMITS
  assert got == pytest.approx([min(max(w, lo), hi) for w in want], rel=1e-9)
  assert [ln.get_ydata()[0] for ln in dots] == [0, 1]
  assert any(ln.get_marker() == "<" for ln in ax.get_lines())  # noisy's CI runs off the axis
  assert "fraction of the gap to 100 closed" == ax.get_xlabel()
  assert gap_plot.draw_gaps({}, "base") is None
