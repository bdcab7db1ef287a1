"""The wall time a run has spent, summed over every process that worked on it.

A run killed at epoch 40 and resumed spends the first process's time too; timing only the
last process would report the resumed run as faster than it was. Each record the run writes
saves the running total (``wall_time.json`` in its workdir), so a killed process loses at
most the time since its last record.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kd_jax.core import atomic

FILE = "wall_time.json"


class WallClock:
  """``spent()``: seconds of earlier processes (as they saved them) plus this one's."""

  def __init__(self, workdir: Path, enabled: bool = True):
    self.path = Path(workdir) / FILE
    self.enabled = enabled
    self.t0 = time.time()
    before = _read(self.path)
    self.before = float(before.get("spent_s", 0.0))
    self.processes = int(before.get("processes", 0)) + 1

  def spent(self) -> float:
    return self.before + (time.time() - self.t0)

  def save(self) -> None:
    if self.enabled:
      atomic.write_text(self.path, json.dumps({"spent_s": round(self.spent(), 3),
                                               "processes": self.processes}) + "\n")


def _read(path: Path) -> dict:
  try:
    value = json.loads(path.read_text())
  except (OSError, ValueError):
    return {}
  return value if isinstance(value, dict) else {}
