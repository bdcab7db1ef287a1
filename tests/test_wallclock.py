"""A resumed run's wall time sums its processes (kd_jax.core.wallclock); fake clocks only."""
from __future__ import annotations

import json

import pytest

from kd_jax.core import wallclock
from kd_jax.runner import identity
from kd_jax.train import writer as report


def test_a_resumed_run_adds_the_time_its_earlier_processes_saved(tmp_path, monkeypatch):
  now = [1000.0]
  monkeypatch.setattr(wallclock.time, "time", lambda: now[0])
  first = wallclock.WallClock(tmp_path)
  w = report.MetricWriter(tmp_path, tensorboard=False, on_write=first.save)
  now[0] += 30.0
  w.write("distill", 1, {"running": {"loss": 1.0}})       # saved: 30 s
  now[0] += 12.5                                          # killed here: these 12.5 s are lost
  now[0] = 5000.0                                         # the resumed process starts later
  second = wallclock.WallClock(tmp_path)
  now[0] += 20.0
  assert second.spent() == pytest.approx(50.0) and second.processes == 2
  second.save()
  assert json.loads((tmp_path / wallclock.FILE).read_text()) == {"spent_s": 50.0,
                                                                  "processes": 2}


def test_a_fresh_or_damaged_record_counts_from_zero(tmp_path, monkeypatch):
  now = [0.0]
  monkeypatch.setattr(wallclock.time, "time", lambda: now[0])
  (tmp_path / wallclock.FILE).write_text('{"spent_s": 4')   # cut short by a kill
  c = wallclock.WallClock(tmp_path)
  now[0] = 7.0
  assert c.spent() == pytest.approx(7.0) and c.processes == 1


def test_restart_clears_the_clock(tmp_path):
  for name in ("config.json", "results.json", wallclock.FILE):
    (tmp_path / name).write_text("{}")
  identity.clear("", tmp_path)
  assert not (tmp_path / wallclock.FILE).exists()   # a restarted run starts its clock at 0
