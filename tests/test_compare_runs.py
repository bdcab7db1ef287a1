"""experiments/compare_runs.py: paired per-trial differences, the pooled seed sd and the arms
whose mean moved, checked against numpy/scipy computed here."""
import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "compare_runs.py"


def load():
  spec = importlib.util.spec_from_file_location("compare_runs", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def write(folder: Path, values: dict) -> None:
  folder.mkdir(parents=True)
  with (folder / "results.csv").open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["arm", "seed", "test/agreement", "run/wall_time_s", "commit"])
    for (arm, seed), v in values.items():
      w.writerow([arm, seed, "" if v is None else v, 12.0, "abc1234"])


def test_paired_differences_seed_sd_and_moved_arms(tmp_path, capsys):
  rng = np.random.default_rng(0)
  old = {("a", s): float(v) for s, v in enumerate(60 + rng.normal(0, 2, 5))}
  old |= {("b", s): float(v) for s, v in enumerate(70 + rng.normal(0, 3, 5))}
  shift = {"a": 0.0, "b": 20.0}                 # arm b moves far beyond its seeds' spread
  new = {k: v + shift[k[0]] + (0.0 if k[1] < 2 else 0.5 * (k[1] - 1)) for k, v in old.items()}
  new[("b", 9)] = 1.0                           # a trial only one run has: not compared
  write(tmp_path / "old", old)
  write(tmp_path / "new", new)
  m = load()
  row = m.compare(m.read(tmp_path / "old"), m.read(tmp_path / "new"), "test/agreement")
  keys = sorted(old)
  d = np.array([new[k] - old[k] for k in keys])
  assert row["trials"] == 10 and row["same"] == 2   # arm a seeds 0 and 1 are unchanged
  assert row["mean"] == pytest.approx(d.mean()) and row["sd"] == pytest.approx(d.std(ddof=1))
  assert row["max_abs"] == pytest.approx(np.abs(d).max())
  a = np.array([old[("a", s)] for s in range(5)])
  b = np.array([old[("b", s)] for s in range(5)])
  pooled = np.sqrt((a.var(ddof=1) * 4 + b.var(ddof=1) * 4) / 8)
  assert row["seed_sd"] == pytest.approx(pooled)
  moved = 0
  for arm in "ab":
    x = [new[(arm, s)] for s in range(5)]
    y = [old[(arm, s)] for s in range(5)]
    ci = scipy_stats.ttest_ind(x, y, equal_var=False).confidence_interval(0.95)
    moved += bool(ci.low > 0 or ci.high < 0)
  assert moved == 1 and row["arms_moved"] == moved and row["arms"] == 2
  m.main([str(tmp_path / "old"), str(tmp_path / "new")])
  out = capsys.readouterr().out
  assert "| test/agreement | 10 | 2 |" in out and "1 of 2" in out
  assert "wall_time" not in out and "commit" not in out   # bookkeeping is not compared


def test_a_folder_without_results_csv_is_one_line(tmp_path):
  with pytest.raises(SystemExit, match="results.csv not found"):
    load().main([str(tmp_path), str(tmp_path)])
