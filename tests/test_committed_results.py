"""Every committed results folder rebuilds exactly from its per-trial files.

A copy of each ``experiments/results/<folder>`` holding ``sweep.json`` and ``trials/`` is
rebuilt with ``sweep_report --rebuild``; its results.csv and results.md must come out byte for
byte as committed (the plot is redrawn too, but PNG bytes depend on the matplotlib and font
versions, so only its presence is checked). A folder without per-trial files fails here;
:data:`LEGACY` once listed those measured before they were kept (all rerun or retired since).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kd_jax.sweeps import rebuild

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
#: Folders measured before per-trial files were kept, rebuilt from their results.csv instead
#: (none remain; a name here must also be explained in experiments/README.md).
LEGACY: set[str] = set()
FOLDERS = sorted(p.parent for p in RESULTS.glob("*/results.csv"))


def test_every_folder_has_its_trials_or_is_a_listed_legacy_one():
  with_trials = {p.name for p in FOLDERS if (p / rebuild.SWEEP_FILE).is_file()}
  missing = sorted({p.name for p in FOLDERS} - with_trials - LEGACY)
  assert not missing, f"results folders without per-trial files: {missing}"
  stale = sorted(LEGACY & with_trials)
  assert not stale, f"{stale} now hold their trials: drop them from LEGACY"


@pytest.mark.parametrize("folder", [p for p in FOLDERS if (p / rebuild.SWEEP_FILE).is_file()],
                         ids=lambda p: p.name)
def test_folder_rebuilds_byte_for_byte(folder, tmp_path):
  copy = tmp_path / folder.name
  shutil.copytree(folder, copy)
  for name in ("results.csv", "results.md"):
    (copy / name).unlink()
  for png in copy.glob("*.png"):
    png.unlink()
  rebuild.rebuild(copy)
  for name in ("results.csv", "results.md"):
    assert (copy / name).read_bytes() == (folder / name).read_bytes(), (
        f"{folder.name}/{name} differs from its rebuild: run python -m kd_jax.sweep_report "
        f"--rebuild experiments/results/{folder.name} and commit the result")
  assert list(copy.glob("*.png")), "the plot was not redrawn"
  trials = list((copy / "trials").glob("*/*/results.json"))
  assert trials and all((t.parent / "metrics.jsonl.gz").is_file() for t in trials)
