"""What a run tells its user: progress lines with ETA, JSON-lines and TensorBoard metrics,
and the final table."""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from kd_jax.core import atomic
from kd_jax.kd import metrics


def format_duration(seconds: float) -> str:
  """``3725`` → ``1h02m``, ``125`` → ``2m05s``, ``42`` → ``42s``; ``?`` when unknown."""
  if not math.isfinite(seconds):
    return "?"
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
  """One line per logged epoch: throughput and time left, from the epochs run in *this* process."""

  def __init__(self, phase: str, total_epochs: int, start_epoch: int, images_per_epoch: int,
               stream=None):
    self.phase, self.total, self.start = phase, total_epochs, start_epoch
    self.images_per_epoch = images_per_epoch
    self.stream = stream or sys.stdout
    self.t0 = time.perf_counter()
    self.t_first: Optional[float] = None  # after the first epoch (excludes compilation)
    self.first_epoch: Optional[int] = None

  def line(self, epoch: int, stats: dict[str, float]) -> str:
    now = time.perf_counter()
    done = epoch + 1
    if self.t_first is None:
      self.t_first, self.first_epoch = now, done
      rate, eta = float("nan"), (now - self.t0) * (self.total - done)
    else:
      per_epoch = (now - self.t_first) / max(done - self.first_epoch, 1)
      rate = self.images_per_epoch / per_epoch if per_epoch > 0 else float("nan")
      eta = per_epoch * (self.total - done)
    parts = [f"[{self.phase}] epoch {done}/{self.total}"]
    parts += [f"{k} {v:.4g}" for k, v in stats.items()]
    if math.isfinite(rate):
      parts.append(f"{rate:,.0f} img/s")
    parts.append(f"elapsed {format_duration(now - self.t0)} ETA {format_duration(eta)}")
    return " | ".join(parts)

  def log(self, epoch: int, stats: dict[str, float]) -> None:
    print(self.line(epoch, stats), file=self.stream, flush=True)


def _record(line: str) -> Optional[dict]:
  """A metrics.jsonl line as a dict; None for a blank line or one a kill cut short."""
  try:
    rec = json.loads(line)
  except ValueError:
    return None
  return rec if isinstance(rec, dict) else None


class MetricWriter:
  """Appends ``{"phase", "epoch", ...}`` records to ``metrics.jsonl`` and TensorBoard."""

  def __init__(self, workdir: Path, tensorboard: bool = True,
               on_write: Optional[Callable[[], None]] = None):
    from kd_jax.core.distributed import is_primary
    self.path = Path(workdir) / "metrics.jsonl"
    self._on_write = on_write  # called after each record (the run's wall clock saves)
    self._tb = None
    self.enabled = is_primary()  # on many hosts process 0 alone writes the log
    if self.enabled:
      Path(workdir).mkdir(parents=True, exist_ok=True)
    if tensorboard and self.enabled:
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))
      except ImportError:  # optional: JSON lines are the record of truth
        self._tb = None

  def forget_after(self, phase: str, epoch: int) -> None:
    """On resume, drops records of ``phase`` past the restored epoch (they will be rewritten)."""
    if not self.enabled or not self.path.exists():
      return
    keep = []
    for line in self.path.read_text().splitlines():
      rec = _record(line)
      if rec is None or (rec.get("phase") == phase and rec.get("epoch", 0) > epoch):
        continue  # a line cut short by a kill, or one to be rewritten
      keep.append(line)
    atomic.write_text(self.path, "".join(l + "\n" for l in keep))

  def write(self, phase: str, epoch: int, results: dict[str, dict[str, Any]]) -> None:
    """One record: ``{"phase", "epoch", split: {metric: value}, ...}``."""
    if not self.enabled:
      return
    rec = {"phase": phase, "epoch": epoch,
           **{split: {k: _plain(v) for k, v in m.items()} for split, m in results.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(rec) + "\n")
    if self._on_write is not None:
      self._on_write()
    if self._tb is not None:
      for split, m in results.items():
        for k, v in m.items():
          if isinstance(v, (int, float)):
            self._tb.add_scalar(f"{phase}/{split}/{k}", v, epoch)
      self._tb.flush()

  def last(self, phase: str) -> dict[str, Any]:
    """The newest record of ``phase`` ({} if none): a resumed, finished phase reads its final
    running metrics from here instead of recomputing them."""
    if not self.path.exists():
      return {}
    recs = [_record(l) for l in self.path.read_text().splitlines()]
    recs = [r for r in recs if r is not None and r.get("phase") == phase]
    return recs[-1] if recs else {}

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _plain(v: Any) -> Any:
  try:
    return float(v)
  except (TypeError, ValueError):
    return v


def table(rows: Iterable[tuple[str, dict[str, float]]],
          columns: Sequence[str] = metrics.SPLIT_METRICS) -> str:
  """A fixed-width text table: one row per split, the paper's metrics as columns."""
  rows = list(rows)
  header = ["split"] + [metrics.metric(c).label for c in columns]
  body = [[name] + [metrics.format_value(c, m.get(c)) for c in columns] for name, m in rows]
  widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
  line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths)))
  return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body])
