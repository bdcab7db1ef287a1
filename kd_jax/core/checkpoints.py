"""orbax checkpoints: resumable training state and the teacher store.

Training state is saved every ``run.checkpoint_every`` epochs (atomic: orbax writes to a
temporary folder and renames it), so a killed run restarts from the last complete epoch and,
because data order and keys are pure functions of (seed, member, epoch, step), ends with the
same numbers as an uninterrupted run.

The teacher store keeps trained ensembles under ``<store>/<teacher_key>-m<members>/`` with the
final and the initial variables of every member and a ``teacher.json`` that is written last
(its presence marks the ensemble complete). Any later run whose teacher config has the same
key and asks for at most that many members reuses it.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from kd_jax.core.errors import ConfigError


def _abstract(tree: Any) -> Any:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
  """A thin orbax CheckpointManager keyed by completed epochs."""

  def __init__(self, directory: os.PathLike | str, max_to_keep: int = 2, keep_every: int = 0):
    """``keep_every`` > 0 also keeps every checkpoint whose epoch it divides (a trajectory,
    e.g. a teacher's path for route-constrained distillation), beyond the last ``max_to_keep``."""
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             keep_period=keep_every or None,
                                             enable_async_checkpointing=False))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, like: Any) -> Any:
    """Restores into the structure, dtypes and shardings of ``like``."""
    return self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))

  def read(self, step: int) -> Any:
    """The saved tree as stored (numpy leaves), without a structure to restore into."""
    return self._manager.restore(step)

  def close(self) -> None:
    self._manager.close()


def save_tree(directory: os.PathLike | str, tree: Any) -> None:
  ckpt = Checkpointer(directory, max_to_keep=1)
  ckpt.save(0, tree)
  ckpt.close()


def load_tree(directory: os.PathLike | str, like: Any) -> Any:
  ckpt = Checkpointer(directory, max_to_keep=1)
  step = ckpt.latest()
  if step is None:
    raise ConfigError(f"no checkpoint in {directory}; delete the folder and rerun to retrain")
  tree = ckpt.restore(step, like)
  ckpt.close()
  return tree


def read_host(directory: os.PathLike | str, step: Optional[int] = None) -> tuple[int, Any]:
  """``(step, tree)`` of a saved checkpoint as numpy arrays, whatever devices saved it.

  For reading a finished run (``kd_jax.api``) on another machine or device count: the tree is
  restored as stored (no structure to restore into), onto the host. ``step`` None = latest.
  """
  import numpy as np
  directory = Path(directory).absolute()
  if not directory.is_dir():
    raise ConfigError(f"no checkpoints in {directory}; is the workdir that of a finished run?")
  manager = ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler(),
                                  options=ocp.CheckpointManagerOptions(create=False))
  try:
    steps = manager.all_steps()
    step = manager.latest_step() if step is None else int(step)
    if step is None or step not in steps:
      raise ConfigError(f"no checkpoint {'saved' if step is None else f'at step {step}'} in "
                        f"{directory}; saved: {sorted(steps) or 'none'}")
    meta = manager.item_metadata(step)
    meta = getattr(meta, "tree", meta)  # orbax ≥ 0.11 wraps the tree in a metadata object
    like = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), meta)
    return step, manager.restore(step, args=ocp.args.StandardRestore(like))
  finally:
    manager.close()


# ---------------------------------------------------------------- teacher store

_ENTRY = re.compile(r"^(?P<key>[0-9a-f]+)-m(?P<m>\d+)$")


def write_json(path: os.PathLike | str, obj: Any) -> None:
  """Writes ``obj`` as JSON through a temporary file and a rename, so a kill while writing leaves
  the old file or none, never half of one (readers take these files' presence as "done")."""
  path = Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, default=str))
  tmp.replace(path)


def teacher_entry(store: os.PathLike | str, key: str, members: int) -> Path:
  return Path(store) / f"{key}-m{members}"


def find_teacher(store: os.PathLike | str, key: str, members: int) -> Optional[Path]:
  """The smallest complete stored ensemble with this key and at least ``members`` members."""
  store = Path(store)
  if not store.is_dir():
    return None
  best = None
  for entry in store.iterdir():
    match = _ENTRY.match(entry.name)
    if not match or match["key"] != key or int(match["m"]) < members:
      continue
    if not (entry / "teacher.json").exists():
      continue
    if best is None or int(match["m"]) < int(_ENTRY.match(best.name)["m"]):
      best = entry
  return best


def save_teacher(entry: Path, final_vars: Any, initial_vars: Any, meta: dict) -> None:
  from kd_jax.core import distributed
  save_tree(entry / "final", {"final": final_vars, "initial": initial_vars})  # every process
  if distributed.is_primary():
    write_json(entry / "teacher.json", meta)
  distributed.barrier("kd_jax.save_teacher")  # the others may look for teacher.json next


def load_teacher(entry: Path, like: dict) -> tuple[Any, Any, dict]:
  """Returns (final, initial, meta); ``like`` = {"final": vars, "initial": vars} of full size."""
  tree = load_tree(entry / "final", like)
  meta = json.loads((entry / "teacher.json").read_text())
  return tree["final"], tree["initial"], meta
