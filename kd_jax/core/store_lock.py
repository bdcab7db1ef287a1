"""One lock per teacher in the store, so two processes never train the same teacher at once.

Two sweeps, a sweep's parallel jobs, or a sweep and a ``kd_jax.main`` run may all need the
same untrained teacher. The first to take the lock trains it; the others wait (saying who they
wait for) and then reuse what it stored. The lock is a file lease (``filelock.SoftFileLease``):
a marker file, which works on the shared filesystems of clusters (NFS, Lustre) where ``flock``
may not, refreshed by a heartbeat thread of its holder. A holder that died on this host is
taken over at once; one on another host (a node that went down, a job killed by SIGKILL) once
its marker has not been refreshed for ``stale_after`` seconds (``KD_JAX_LOCK_STALE_S``,
default 600; every process sharing a store must use the same value).
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import filelock

from kd_jax.core.errors import ConfigError

STALE_AFTER_S = float(os.environ.get("KD_JAX_LOCK_STALE_S", "600"))
POLL_S = 1.0


def _marker(path: Path) -> Optional[tuple[dict[str, str], tuple[int, int]]]:
  """The holder's fields (pid, host, ...) and the marker's (mtime, inode); None when free or
  not yet complete.

  The holder creates the marker and then writes its lines, so a reader can find it empty or
  half-written; such a read counts as "unknown yet" (the caller polls again), never as a
  holder with missing fields. Complete = ends with a newline and names pid and host.
  """
  try:
    with path.open("rb") as f:
      st = os.fstat(f.fileno())
      text = f.read().decode()
  except (OSError, UnicodeDecodeError):
    return None
  fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
  if not text.endswith("\n") or not fields.get("pid") or not fields.get("host"):
    return None
  return fields, (st.st_mtime_ns, st.st_ino)


def _alive(pid: str) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, ValueError, OverflowError):
    return True
  return True


def _who(fields: dict[str, str]) -> str:
  return f"pid {fields.get('pid', '?')} on host {fields.get('host', '?')}"


def _dead_here(path: Path, holder) -> bool:
  """Its holder ran on this host, has exited, and left the marker (not released)."""
  fields, key = holder
  if fields.get("host") != socket.gethostname() or _alive(fields.get("pid", "")):
    return False
  again = _marker(path)
  return again is not None and again[1] == key


@contextlib.contextmanager
def hold(path: str | os.PathLike, what: str, stale_after: Optional[float] = None,
         poll: float = POLL_S, say: Callable[[str], None] = print) -> Iterator[None]:
  """Holds the lock at ``path`` for the block, waiting (with a message) while another has it."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  stale_after = STALE_AFTER_S if stale_after is None else float(stale_after)
  lease = filelock.SoftFileLease(str(path), lease_duration=stale_after,
                                 heartbeat_interval=min(stale_after / 3, 60.0),
                                 poll_interval=min(poll, stale_after / 4))
  first_seen: dict[tuple[int, int], float] = {}  # marker (mtime, inode) → when we first saw it
  holder, dead, announced = None, False, False
  while True:
    holder = _marker(path)
    if holder is not None:
      first_seen.setdefault(holder[1], time.monotonic())
      dead = _dead_here(path, holder)  # judged before the attempt: it cannot release later
    try:
      lease.acquire(timeout=poll)
      break
    except filelock.Timeout:
      if holder is not None and not announced:
        announced = True
        say(f"[lock] {what} is held by {_who(holder[0])} ({path}); waiting, then reusing its "
            f"result (a lock not refreshed for {stale_after:g} s is taken over)")
    except filelock.LeaseSettingsMismatch:
      raise ConfigError(f"{path} is held with another stale-lock timeout than this process's "
                        f"{stale_after:g} s; set the same KD_JAX_LOCK_STALE_S everywhere") from None
  try:
    if holder is not None:
      silent = time.monotonic() - first_seen[holder[1]]
      if dead:
        say(f"[lock] {what}: took over the lock left by {_who(holder[0])}, which has died "
            f"({path})")
      elif silent >= stale_after:  # a live holder refreshes it every stale_after / 3
        say(f"[lock] {what}: took over the stale lock of {_who(holder[0])}, not refreshed for "
            f"{silent:.0f} s ≥ {stale_after:g} s ({path})")
    yield
  finally:
    lease.release()
