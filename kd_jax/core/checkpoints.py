"""orbax checkpoints: resumable training state and the teacher store.

Training state is saved every ``run.checkpoint_every`` epochs (atomic: orbax writes to a
temporary folder and renames it), so a killed run restarts from the last complete epoch and,
because data order and keys are pure functions of (seed, member, epoch, step), ends with the
same numbers as an uninterrupted run.

The teacher store keeps trained ensembles under ``<store>/<teacher_key>-m<members>/`` with the
final and the initial variables of every member and a ``teacher.json``. Any later run whose
teacher config has the same key and asks for at most that many members reuses it.

A store entry (a teacher, a GAN) is built in ``<entry>.partial/`` (training checkpoints, then
the final variables, then the metadata file) and renamed to ``<entry>`` as the last step, so at
every instant the store holds a complete entry or none. A rerun resumes a ``.partial`` folder
left by a killed process; an entry of the older layout (built in place) that lacks its metadata
file is adopted as the ``.partial`` folder.

No checkpoint holding a NaN or an infinity is written (:class:`NonFinite`), and a step that
cannot be read back is set aside (``<step>.unreadable``) and the one before it restored.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from kd_jax.core import atomic
from kd_jax.core.cache import CHEAP_COMPILE
from kd_jax.core.errors import ConfigError, TrainingDiverged

#: The one atomic JSON write (kd_jax.core.atomic), under its older name.
write_json = atomic.write_json


def _abstract(tree: Any) -> Any:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
  """A thin orbax CheckpointManager keyed by completed epochs."""

  def __init__(self, directory: os.PathLike | str, max_to_keep: int = 2, keep_every: int = 0):
    """``keep_every`` > 0 also keeps every checkpoint whose epoch it divides (a trajectory,
    e.g. a teacher's path for route-constrained distillation), beyond the last ``max_to_keep``."""
    self.directory = Path(directory).absolute()
    self._options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 keep_period=keep_every or None,
                                                 enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=self._options)

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest(self) -> Optional[int]:
    return self._manager.latest_step()

  def save(self, step: int, tree: Any) -> None:
    """Saves ``tree`` as ``step``; a tree with a NaN or an infinity is refused (NonFinite)."""
    bad = nonfinite_leaves(tree)
    if bad:
      raise NonFinite(f"non-finite values in {', '.join(bad[:3])}"
                      f"{' …' if len(bad) > 3 else ''}: step {step} not saved; the last good "
                      f"checkpoint (step {self.latest() or 0}) is kept in {self.directory}")
    self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
    self._manager.wait_until_finished()

  def resume(self, like: Any, say: Callable[[str], None] = print,
             what: str = "step") -> tuple[int, Any]:
    """``(step, tree)`` of the newest readable checkpoint, or ``(0, like)`` without one.

    A step that cannot be restored (a damaged file) is renamed ``<step>.unreadable`` (kept for
    a look, invisible to orbax) with one line, and the step before it is tried.
    """
    for step in reversed(self.all_steps()):
      try:
        return step, self.restore(step, like)
      except Exception as e:  # orbax/tensorstore raise many types for a damaged step
        aside = self.directory / f"{step}.unreadable"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(self.directory / str(step), aside)
        self._reopen()
        before = self.latest()
        say(f"[checkpoint] {self.directory / str(step)} cannot be read "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
            f"moved to {aside.name}, "
            + (f"resuming from {what} {before} instead" if before else "starting over"))
    return 0, like

  def _reopen(self) -> None:
    self._manager.close()  # a fresh view of the folder, same settings
    self._manager = ocp.CheckpointManager(self.directory, options=self._options)

  def restore(self, step: int, like: Any) -> Any:
    """Restores into the structure, dtypes and shardings of ``like``."""
    return self._manager.restore(step, args=ocp.args.StandardRestore(_abstract(like)))

  def read(self, step: int) -> Any:
    """The saved tree as stored (numpy leaves), without a structure to restore into."""
    return self._manager.restore(step)

  def close(self) -> None:
    self._manager.close()


class NonFinite(TrainingDiverged):
  """A tree to checkpoint holds a NaN or an infinity: refused, the last good one is kept."""


# The finiteness checks: boolean reductions once per checkpoint, compiled cheaply.
@functools.partial(jax.jit, compiler_options=CHEAP_COMPILE)
def _all_finite(leaves: list[Any]) -> list[Any]:
  # One program for the whole tree: op by op, every leaf shape was its own compilation.
  return [jnp.all(jnp.isfinite(x)) for x in leaves]


def nonfinite_leaves(tree: Any) -> list[str]:
  """The key paths of the floating leaves of ``tree`` that hold a NaN or an infinity."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  floating = [(p, x) for p, x in flat
              if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact)]
  if not floating:
    return []
  ok = jax.device_get(_all_finite([x for _, x in floating]))
  return [jax.tree_util.keystr(p) for (p, _), good in zip(floating, ok) if not bool(good)]


@functools.partial(jax.jit, compiler_options=CHEAP_COMPILE)
def _members_finite(leaves: list[Any]) -> Any:
  # One program for the whole tree, as _all_finite: [m] True where member i is finite everywhere.
  return jnp.stack([jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
                    for x in leaves]).all(axis=0)


def nonfinite_members(tree: Any) -> list[int]:
  """Members (leading axis of every leaf of a stacked tree) holding a NaN or an infinity."""
  leaves = [x for x in jax.tree.leaves(tree)
            if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact) and x.ndim]
  if not leaves:
    return []
  ok = np.asarray(jax.device_get(_members_finite(leaves)))
  return np.flatnonzero(~ok).tolist()


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


PARTIAL = ".partial"
TEACHER_META = "teacher.json"


def staging(entry: Path) -> Path:
  """Where ``entry`` is built until it is complete (module docstring)."""
  return entry.with_name(entry.name + PARTIAL)


def open_staging(entry: Path, meta_name: str, say: Callable[[str], None] = print) -> Path:
  """The ``.partial`` folder to build ``entry`` in (created, or resumed as a killed run left it);
  an incomplete entry of the older in-place layout becomes it. The caller holds the entry's
  lock, on the primary process."""
  stage = staging(entry)
  if entry.is_dir() and not (entry / meta_name).exists():
    if stage.exists():  # both incomplete: the .partial one is the newer
      shutil.rmtree(entry)
      say(f"[store] removed {entry}: incomplete (no {meta_name}), superseded by {stage.name}")
    else:
      os.replace(entry, stage)
      say(f"[store] {entry} is incomplete (no {meta_name}): resuming it as {stage.name}")
  stage.mkdir(parents=True, exist_ok=True)
  return stage


def publish(entry: Path, tree: Any, meta_name: str, meta: dict) -> None:
  """Saves ``tree`` as ``final/`` and ``meta`` as ``meta_name`` in the staging folder, then
  renames it to ``entry``: the entry appears complete or not at all. Every process calls it
  (orbax saves collectively); process 0 writes the metadata and renames."""
  from kd_jax.core import distributed
  stage = staging(entry)
  if distributed.is_primary():
    shutil.rmtree(stage / "final", ignore_errors=True)  # a kill may have left one behind
  distributed.barrier("kd_jax.publish.clean")
  save_tree(stage / "final", tree)
  if distributed.is_primary():
    write_json(stage / meta_name, meta)
    os.replace(stage, entry)
  distributed.barrier("kd_jax.publish")  # the others may look for the entry next


def read_meta(entry: Path, meta_name: str) -> dict:
  """An entry's metadata, or a ConfigError naming the file and what to do."""
  path = Path(entry) / meta_name
  try:
    meta = json.loads(path.read_text())
    if not isinstance(meta, dict):
      raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    return meta
  except (OSError, ValueError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path} is damaged ({type(e).__name__}: {e}); restore it from a backup, "
                      f"or delete {entry} to train it again") from None


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
    if not (entry / TEACHER_META).exists():
      continue
    if best is None or int(match["m"]) < int(_ENTRY.match(best.name)["m"]):
      best = entry
  return best


def save_teacher(entry: Path, final_vars: Any, initial_vars: Any, meta: dict) -> None:
  """Completes the teacher built in ``staging(entry)`` and renames it to ``entry``."""
  publish(entry, {"final": final_vars, "initial": initial_vars}, TEACHER_META, meta)


def load_teacher(entry: Path, like: dict) -> tuple[Any, Any, dict]:
  """Returns (final, initial, meta); ``like`` = {"final": vars, "initial": vars} of full size."""
  meta = read_meta(entry, TEACHER_META)
  tree = load_tree(entry / "final", like)
  return tree["final"], tree["initial"], meta
