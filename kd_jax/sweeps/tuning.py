"""The rates a learning-rate grid chose: per remedy, the rate whose seeds have the best mean of
a validation column (``remedies_tune`` sweeps name their arms ``<remedy>_lr<rate>``).

A tuned config holds these rates literally (``TUNED_LR``), so a reader sees them and a test
checks them against the committed grid; this prints them from a results folder instead of
someone reading the table by hand.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Mapping

from kd_jax.config import LR_TAG, arm_name  # the grid's names are made where its arms are

__all__ = ["LR_TAG", "arm_name", "best_rates", "best_rates_of", "as_python"]


def best_rates(rows: Iterable[Mapping[str, str]], column: str) -> dict[str, float]:
  """{remedy: rate} with the highest mean ``column`` over its seeds (the first rate on a tie);
  rows without a value (diverged trials) do not count, and a remedy with none is left out."""
  scores: dict[str, dict[float, list[float]]] = {}
  for r in rows:
    name, tag, rate = r["arm"].rpartition(LR_TAG)
    if not tag or r.get(column) in (None, ""):
      continue
    scores.setdefault(name, {}).setdefault(float(rate), []).append(float(r[column]))
  best = {}
  for name, by_rate in scores.items():
    means = {rate: sum(v) / len(v) for rate, v in by_rate.items()}
    finite = {rate: m for rate, m in means.items() if math.isfinite(m)}
    if finite:
      best[name] = max(finite, key=finite.get)
  return best


def best_rates_of(folder: Path, column: str = "val/agreement") -> dict[str, float]:
  """:func:`best_rates` of a results folder's results.csv; ValueError naming what is missing."""
  table = Path(folder) / "results.csv"
  if not table.is_file():
    raise ValueError(f"{table} does not exist: pass the tuning sweep's results folder")
  with table.open() as f:
    rows = list(csv.DictReader(f))
  if rows and column not in rows[0]:
    raise ValueError(f"{table} has no column {column!r}; choose one of its columns with --by")
  best = best_rates(rows, column)
  if not best:
    raise ValueError(f"{table} has no arms named <remedy>{LR_TAG}<rate> with a {column} value")
  return best


def as_python(best: Mapping[str, float]) -> str:
  """The ``TUNED_LR = {...}`` lines to paste into the tuned config."""
  body = "".join(f"    {name!r}: {rate!r},\n" for name, rate in best.items())
  return "TUNED_LR: dict[str, float] = {\n" + body + "}"
