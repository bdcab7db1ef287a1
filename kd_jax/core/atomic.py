"""Files written whole or not at all: a kill at any instant leaves the old file or the new one.

Every file that a rerun or another process takes as "done" (``results.json``, ``teacher.json``,
the sweep's tables, decoded-data caches) is written to a temporary sibling and renamed over
its target, the one step the file system does atomically. A temporary name carries the host and
pid of its writer, so the leftovers of a killed writer are recognised (and removed) by the next
write to the same target on that host, and never those of a writer still at work.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import IO, Any, Callable, Iterator

_HOST = socket.gethostname().replace(".", "_")


def temp_name(path: os.PathLike | str) -> Path:
  """A fresh sibling of ``path`` for writing it: ``.<name>.<host>-<pid>-<token>.tmp``."""
  path = Path(path)
  return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OverflowError):
    return True
  return True


def clean_leftovers(path: os.PathLike | str) -> list[Path]:
  """Removes the temporaries of ``path`` (files or folders) left by dead writers on this host;
  returns what it removed."""
  path = Path(path)
  gone = []
  for tmp in path.parent.glob(f".{path.name}.{_HOST}-*.tmp"):
    pid = tmp.name[len(f".{path.name}.{_HOST}-"):].split("-", 1)[0]
    if pid.isdigit() and not _alive(int(pid)):
      if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
      else:
        tmp.unlink(missing_ok=True)
      gone.append(tmp)
  return gone


@contextlib.contextmanager
def replacing(path: os.PathLike | str, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
  """``with replacing(p) as f: f.write(...)``: ``p`` appears, complete, when the block ends
  without an exception; until then (or after a kill) readers see the previous ``p`` or none."""
  path = Path(path)
  clean_leftovers(path)
  tmp = temp_name(path)
  try:
    with open(tmp, mode if "x" in mode else mode.replace("w", "x"), **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def write_text(path: os.PathLike | str, text: str) -> None:
  with replacing(path, "w") as f:
    f.write(text)


def write_json(path: os.PathLike | str, obj: Any,
               default: Callable[[Any], Any] = str) -> None:
  """``obj`` as indented JSON, atomically (readers take these files' presence as "done")."""
  write_text(path, json.dumps(obj, indent=2, default=default))
