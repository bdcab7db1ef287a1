"""Teacher ensembles: trained once per (data, recipe), stored, and reused by every run.

A stored ensemble of m members holds the ensemble of any k ≤ m (members are independent: own
seed, own data order), so arms that differ only in distillation settings share one training.
Training holds a lock on the teacher's key in the store (``kd_jax.core.store_lock``): another
process that needs the same teacher meanwhile waits and then reuses it instead of training it
too.
"""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Optional

import jax
from jax.sharding import Mesh
from ml_collections import ConfigDict

from kd_jax.core import atomic, checkpoints, distributed, parallel, store_lock
from kd_jax.kd import ensemble
from kd_jax.train import evaluators, modeling, optim, writer as report, steps
from kd_jax.config import to_json
from kd_jax.runner import artifacts
from kd_jax.data import pipelines
from kd_jax.data.inputs import ExperimentData
from kd_jax.train.trainer import Hook, Phase, fit


@dataclasses.dataclass
class Teacher:
  model: Any
  final: dict      # stacked variables {"params", "batch_stats"} of the members in use
  initial: dict    # their initial variables (for "init from the teacher's initial weights")
  entry: Path
  trained_now: bool


def store_dir(teacher: ConfigDict, workdir: Path) -> Path:
  """``<workdir>/teachers``, or ``teacher.store`` made absolute: a store shared across runs is
  relative to the current folder, so the printed path says which folder that was."""
  if teacher.store:
    return Path(teacher.store).expanduser().resolve()
  return Path(workdir) / "teachers"


def _keys(key: "str | tuple[str, ...]") -> tuple[str, ...]:
  """The teacher's store key, then keys it may have been stored under before (an entry of a
  path-based key, from before keys were content-based: ``identity.store_keys``)."""
  return (key,) if isinstance(key, str) else tuple(key)


def _find(teacher: ConfigDict, key, workdir: Path, members: int) -> Optional[Path]:
  for k in _keys(key):
    found = checkpoints.find_teacher(store_dir(teacher, workdir), k, members)
    if found is not None:
      return found
  return None


def load(teacher: ConfigDict, key, workdir: Path, model, input_shape) -> Optional[Teacher]:
  """The first ``teacher.ensemble_size`` members of a stored ensemble, or None if none fits.

  ``teacher``: ``config.teacher``; ``key``: its ``identity.store_keys(config.data,
  config.teacher)`` (or just ``teacher_key``).
  """
  members = int(teacher.ensemble_size)
  found = _find(teacher, key, workdir, members)
  if found is None:
    return None
  stored_m = int(checkpoints.read_meta(found, checkpoints.TEACHER_META)["members"])
  like = modeling.init_variables(model, teacher.seed, steps.TEACHER_STREAM, stored_m, input_shape)
  final, initial, _ = checkpoints.load_teacher(found, {"final": like, "initial": like})
  print(f"[teacher] reusing {stored_m}-member ensemble from {found} (first {members} used)",
        flush=True)
  take = lambda tree: ensemble.take_members(tree, members)
  return Teacher(model, take(final), take(initial), found, trained_now=False)


def lock_path(teacher: ConfigDict, key, workdir: Path) -> Path:
  """One lock per teacher key (not per size): a 1-member ask waits for a 2-member training."""
  return store_dir(teacher, workdir) / f"{_keys(key)[0]}.lock"


def get_teacher(teacher: ConfigDict, key, run: ConfigDict, workdir: Path,
                data: ExperimentData, mesh: Mesh, writer: report.MetricWriter,
                hook: Optional[Hook] = None, evals: Any = None) -> Teacher:
  """Loads the teacher ensemble from the store, or trains it (resumably) and stores it.

  ``teacher``, ``run``: those sections of the config; ``key``: the teacher's identity in the
  store, ``kd_jax.runner.identity.store_keys(config.data, config.teacher)`` (or its
  ``teacher_key``); ``evals``:
  ``config.evals``, evaluations besides those ``teacher.evals`` names.
  """
  model = modeling.build_model(teacher.model, data.num_classes, run.dtype, data.model_options)
  if distributed.agree(_stored(teacher, key, workdir)):  # process 0 looks; every process follows
    return load(teacher, key, workdir, model, data.input_shape)
  lock = (store_lock.hold(lock_path(teacher, key, workdir), f"teacher {_keys(key)[0]}")
          if distributed.is_primary() else contextlib.nullcontext())
  with lock:  # one lock per job: process 0 holds it for all of them
    if distributed.agree(_stored(teacher, key, workdir)):  # trained while we waited
      return load(teacher, key, workdir, model, data.input_shape)
    found = artifacts.find(artifacts.folder(), _keys(key)[0], int(teacher.ensemble_size))
    if distributed.agree(found is not None):
      return _from_artifact(teacher, key, workdir, model, data.input_shape, found)
    return _train(teacher, _keys(key)[0], run, workdir, data, mesh, writer, model, hook, evals)


def _stored(teacher: ConfigDict, key, workdir: Path) -> bool:
  return _find(teacher, key, workdir, int(teacher.ensemble_size)) is not None


def _from_artifact(teacher: ConfigDict, key, workdir: Path, model, input_shape,
                   manifest: Path) -> Teacher:
  """Stores the artifact's ensemble (checked against its sha256) as if trained here: the
  initial weights follow from the seed; the caller holds the lock."""
  final, meta = artifacts.load(manifest)
  members = int(meta["members"])
  initial = jax.device_get(modeling.init_variables(model, teacher.seed, steps.TEACHER_STREAM,
                                                   members, input_shape))
  entry = checkpoints.teacher_entry(store_dir(teacher, workdir), meta["key"], members)
  if distributed.is_primary():  # built in the staging folder, renamed into place complete
    checkpoints.open_staging(entry, checkpoints.TEACHER_META)
    atomic.write_text(checkpoints.staging(entry) / "config.json", to_json(teacher))
  distributed.barrier("kd_jax.teacher.staging")
  print(f"[teacher] storing the {members}-member artifact {manifest} → {entry}", flush=True)
  checkpoints.save_teacher(entry, final, initial, {"key": meta["key"], "members": members,
                                                   "artifact": str(manifest)})
  return load(teacher, key, workdir, model, input_shape)


def _train(teacher: ConfigDict, key: str, run: ConfigDict, workdir: Path, data: ExperimentData,
           mesh: Mesh, writer: report.MetricWriter, model, hook: Optional[Hook],
           evals: Any = None) -> Teacher:
  """Trains (or resumes) the ensemble into its store entry; the caller holds the lock."""
  t = teacher
  members = int(t.ensemble_size)
  entry = checkpoints.teacher_entry(store_dir(t, workdir), key, members)
  work = checkpoints.staging(entry)  # renamed to entry once complete (save_teacher)
  if distributed.is_primary():
    checkpoints.open_staging(entry, checkpoints.TEACHER_META)
    atomic.write_text(work / "config.json", to_json(t))
  distributed.barrier("kd_jax.teacher.staging")
  initial = jax.device_get(modeling.init_variables(model, t.seed, steps.TEACHER_STREAM, members,
                                                   data.input_shape))
  spe = pipelines.steps_per_epoch(data.teacher.size, t.batch_size)
  tx = optim.make_optimizer(t.optim, spe * t.epochs, spe)
  spec = steps.StepSpec(apply_fn=model.apply, tx=tx, prepare=data.prepare(t.augment),
                        materialize=data.teacher.materialize, objective="ce",
                        member_mode=run.member_mode)
  clean = steps.StepSpec(apply_fn=model.apply, tx=tx, prepare=data.prepare(""),
                         materialize=data.test.materialize, member_mode=run.member_mode)
  ctx = evaluators.TeacherContext(model.apply, data.test, mesh, clean, run.eval_batch_size,
                                  train=data.teacher)
  chosen = evaluators.entries("teacher", t.evals, evals)
  evaluate = evaluators.build("teacher", chosen, ctx, int(t.eval_every))
  phase = Phase(name="teacher", spec=spec, pipeline=data.teacher, epochs=t.epochs,
                batch_size=t.batch_size, seed=t.seed, stream=steps.TEACHER_STREAM,
                checkpoint_dir=work / "ckpt", checkpoint_every=run.checkpoint_every,
                log_every=run.log_every, steps_per_call=run.steps_per_call,
                eval_every=evaluators.cadence(chosen, int(t.eval_every)), evaluate=evaluate,
                keep_every=t.keep_every)
  state = parallel.replicate(modeling.make_state(initial, tx), mesh)
  print(f"[teacher] training {members} × {t.model.name} on {data.teacher.size} examples "
        f"for {t.epochs} epochs → {entry}", flush=True)
  state, final_eval = fit(phase, state, mesh, writer, hook)
  if final_eval is None:
    final_eval = evaluate(state, {"running": writer.last("teacher").get("running", {})})
  final = parallel.host(modeling.state_variables(state))
  checkpoints.save_teacher(entry, final, initial,
                           {"key": key, "members": members, "final_eval": final_eval})
  return Teacher(model, final, initial, entry, trained_now=True)
