"""The rates a tuning grid chose (kd_jax.sweeps.tuning), read from a results.csv."""
from __future__ import annotations

import csv

import pytest

from kd_jax.sweeps import rebuild, tuning

ROWS = [  # arm, seed, val/agreement; '' = a diverged trial (no numbers)
    ("sgd_lr0.01", 0, "90"), ("sgd_lr0.01", 1, "92"),       # mean 91
    ("sgd_lr0.03", 0, "95"), ("sgd_lr0.03", 1, "89"),       # mean 92: best of sgd
    ("sgd_lr0.09", 0, "99"), ("sgd_lr0.09", 1, ""),         # one seed diverged: mean of 1 = 99
    ("adam_lr0.001", 0, "80"), ("adam_lr0.001", 1, "80"),   # a tie: the first rate stays
    ("adam_lr0.003", 0, "80"), ("adam_lr0.003", 1, "80"),
    ("dead_lr0.1", 0, ""),                                  # every trial diverged
    ("baseline", 0, "70"),                                  # not a grid arm
]


def _write(folder, rows=ROWS):
  folder.mkdir()
  with (folder / "results.csv").open("w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["arm", "seed", "val/agreement"])
    w.writerows(rows)
  return folder


def test_best_rate_is_the_best_mean_over_finished_seeds(tmp_path):
  best = tuning.best_rates_of(_write(tmp_path / "grid"))
  # sgd: 0.09 has one finished seed at 99, the best mean; a diverged seed does not count
  assert best == {"sgd": 0.09, "adam": 0.001}


def test_printed_lines_are_the_config_dict(tmp_path, capsys):
  rebuild.main(["--best_rates", str(_write(tmp_path / "grid"))])
  scope = {}
  exec(capsys.readouterr().out, scope)
  assert scope["TUNED_LR"] == {"sgd": 0.09, "adam": 0.001}


@pytest.mark.parametrize("make,needle", [
    (lambda d: d, "results.csv does not exist"),
    (lambda d: _write(d, [("baseline", 0, "1")]), "no arms named <remedy>_lr<rate>"),
])
def test_bad_folder_is_one_line(tmp_path, capsys, make, needle):
  folder = make(tmp_path / "grid")
  with pytest.raises(SystemExit):
    rebuild.main(["--best_rates", str(folder)])
  err = capsys.readouterr().err.strip()
  assert needle in err and "\n" not in err


def test_unknown_column_names_the_flag(tmp_path, capsys):
  with pytest.raises(SystemExit):
    rebuild.main(["--best_rates", str(_write(tmp_path / "grid")), "--by", "val/agree"])
  assert "--by" in capsys.readouterr().err


def test_grid_arm_names_parse_back_to_their_remedy_and_rate():
  """recipes.tuning_arms names arms with tuning.arm_name; best_rates must read them back."""
  from kd_jax import recipes
  arms = recipes.tuning_arms((("tau_1", {}, 0.01), ("sgd", {}, 0.03)), extend_below=("tau_1",))
  rows = [{"arm": name, "val/agreement": str(i)} for i, (name, _) in enumerate(arms)]
  # the last arm of each remedy scores highest: its largest rate, the default × 3
  assert tuning.best_rates(rows, "val/agreement") == pytest.approx({"tau_1": 0.03, "sgd": 0.09})
