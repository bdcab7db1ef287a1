"""A wall-time budget for one process (``--time_budget=9m``): stop at a checkpoint boundary
before the budget runs out, so a script can chain short runs (an accelerator lent for ten
minutes at a time) and each rerun resumes where the last one stopped.

The command line sets the deadline once (:func:`start`); the training loops call
:func:`at_checkpoint` right after each checkpoint is written, and the sweep calls
:func:`before_trial` before it starts a trial. A loop stops when the next checkpoint
would come after the deadline, judged by the time the last checkpoint interval took: it raises
:class:`TimeUp`, which the loops turn into :class:`kd_jax.core.errors.OutOfTime` (where it
stopped, how to go on) and the command line into one line and exit status 75.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Optional

from kd_jax.core.errors import ConfigError

#: Exit status of a run stopped for its time budget (sysexits' EX_TEMPFAIL: rerun to go on).
EXIT_STATUS = 75

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class TimeUp(KeyboardInterrupt):
  """Raised at a checkpoint boundary when the budget would run out before the next one; a
  KeyboardInterrupt so the loops stop as they do for Ctrl-C (state saved, nothing half-done)."""


class _Budget:
  def __init__(self, seconds: float, clock: Callable[[], float]):
    self.clock = clock
    self.deadline = clock() + seconds
    self.last = clock()

  def left(self) -> float:
    return self.deadline - self.clock()


_budget: Optional[_Budget] = None


def parse(text: str) -> float:
  """``"9m"``, ``"90s"``, ``"1.5h"`` or plain seconds ``"600"`` → seconds; ``""`` → 0 (none)."""
  text = str(text).strip()
  if not text:
    return 0.0
  m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", text)
  if not m or float(m.group(1)) <= 0:
    raise ConfigError(f"--time_budget={text!r} is not a duration; write e.g. 9m, 90s, 1.5h "
                      "or 600 (seconds)")
  return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def start(seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
  """Sets this process's budget (0: none). ``clock`` is for tests."""
  global _budget
  _budget = _Budget(float(seconds), clock) if seconds > 0 else None


def active() -> bool:
  return _budget is not None


def at_checkpoint() -> None:
  """After a checkpoint: raises TimeUp if another checkpoint interval would pass the deadline."""
  if _budget is None:
    return
  now = _budget.clock()
  interval, _budget.last = now - _budget.last, now
  if now + interval > _budget.deadline:
    raise TimeUp()


def before_trial() -> None:
  """Before a sweep starts (or resumes) a trial: raises TimeUp once the budget is spent."""
  if _budget is None:
    return
  _budget.last = _budget.clock()
  if _budget.left() <= 0:
    raise TimeUp()
