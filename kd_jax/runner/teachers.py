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

from kd_jax.core import checkpoints, distributed, parallel, store_lock
from kd_jax.kd import ensemble
from kd_jax.train import evaluators, modeling, optim, writer as report, steps
from kd_jax.config import to_json
from kd_jax.runner import artifacts
from kd_jax.runner.identity import find_teacher, teacher_key
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


def store_dir(config: ConfigDict, workdir: Path) -> Path:
  """``<workdir>/teachers``, or ``teacher.store`` made absolute: a store shared across runs is
  relative to the current folder, so the printed path says which folder that was."""
  if config.teacher.store:
    return Path(config.teacher.store).expanduser().resolve()
  return Path(workdir) / "teachers"


def load(config: ConfigDict, workdir: Path, model, input_shape) -> Optional[Teacher]:
  """The first ``teacher.ensemble_size`` members of a stored ensemble, or None if none fits."""
  t = config.teacher
  members = int(t.ensemble_size)
  found = find_teacher(store_dir(config, workdir), config.data, config.teacher, members)
  if found is None:
    return None
  stored_m = int(checkpoints.read_meta(found, checkpoints.TEACHER_META)["members"])
  like = modeling.init_variables(model, t.seed, steps.TEACHER_STREAM, stored_m, input_shape)
  final, initial, _ = checkpoints.load_teacher(found, {"final": like, "initial": like})
  print(f"[teacher] reusing {stored_m}-member ensemble from {found} (first {members} used)",
        flush=True)
  take = lambda tree: ensemble.take_members(tree, members)
  return Teacher(model, take(final), take(initial), found, trained_now=False)


def lock_path(config: ConfigDict, workdir: Path) -> Path:
  """One lock per teacher key (not per size): a 1-member ask waits for a 2-member training."""
  return store_dir(config, workdir) / f"{teacher_key(config.data, config.teacher)}.lock"


def get_teacher(config: ConfigDict, workdir: Path, data: ExperimentData, mesh: Mesh,
                writer: report.MetricWriter, hook: Optional[Hook] = None) -> Teacher:
  """Loads the teacher ensemble from the store, or trains it (resumably) and stores it."""
  model = modeling.build_model(config.teacher.model, data.num_classes, config,
                               data.model_options)
  if distributed.agree(_stored(config, workdir)):   # process 0 looks; every process follows
    return load(config, workdir, model, data.input_shape)
  lock = (store_lock.hold(lock_path(config, workdir), f"teacher {teacher_key(config.data, config.teacher)}")
          if distributed.is_primary() else contextlib.nullcontext())
  with lock:  # one lock per job: process 0 holds it for all of them
    if distributed.agree(_stored(config, workdir)):  # trained while we waited
      return load(config, workdir, model, data.input_shape)
    found = artifacts.find(artifacts.folder(), teacher_key(config.data, config.teacher),
                           int(config.teacher.ensemble_size))
    if distributed.agree(found is not None):
      return _from_artifact(config, workdir, model, data.input_shape, found)
    return _train(config, workdir, data, mesh, writer, model, hook)


def _stored(config: ConfigDict, workdir: Path) -> bool:
  found = find_teacher(store_dir(config, workdir), config.data, config.teacher,
                       int(config.teacher.ensemble_size))
  return found is not None


def _from_artifact(config: ConfigDict, workdir: Path, model, input_shape,
                   manifest: Path) -> Teacher:
  """Stores the artifact's ensemble (checked against its sha256) as if trained here: the
  initial weights follow from the seed; the caller holds the lock."""
  t = config.teacher
  final, meta = artifacts.load(manifest)
  members = int(meta["members"])
  initial = jax.device_get(modeling.init_variables(model, t.seed, steps.TEACHER_STREAM, members,
                                                   input_shape))
  entry = checkpoints.teacher_entry(store_dir(config, workdir), meta["key"], members)
  if distributed.is_primary():  # built in the staging folder, renamed into place complete
    checkpoints.open_staging(entry, checkpoints.TEACHER_META)
    (checkpoints.staging(entry) / "config.json").write_text(to_json(config.teacher))
  distributed.barrier("kd_jax.teacher.staging")
  print(f"[teacher] storing the {members}-member artifact {manifest} → {entry}", flush=True)
  checkpoints.save_teacher(entry, final, initial, {"key": meta["key"], "members": members,
                                                   "artifact": str(manifest)})
  return load(config, workdir, model, input_shape)


def _train(config: ConfigDict, workdir: Path, data: ExperimentData, mesh: Mesh,
           writer: report.MetricWriter, model, hook: Optional[Hook]) -> Teacher:
  """Trains (or resumes) the ensemble into its store entry; the caller holds the lock."""
  t = config.teacher
  members = int(t.ensemble_size)
  key = teacher_key(config.data, config.teacher)
  entry = checkpoints.teacher_entry(store_dir(config, workdir), key, members)
  work = checkpoints.staging(entry)  # renamed to entry once complete (save_teacher)
  if distributed.is_primary():
    checkpoints.open_staging(entry, checkpoints.TEACHER_META)
    (work / "config.json").write_text(to_json(config.teacher))
  distributed.barrier("kd_jax.teacher.staging")
  initial = jax.device_get(modeling.init_variables(model, t.seed, steps.TEACHER_STREAM, members,
                                                   data.input_shape))
  spe = pipelines.steps_per_epoch(data.teacher.size, t.batch_size)
  tx = optim.make_optimizer(t.optim, spe * t.epochs, spe)
  spec = steps.StepSpec(apply_fn=model.apply, tx=tx, prepare=data.prepare(t.augment),
                        materialize=data.teacher.materialize, objective="ce",
                        member_mode=config.run.member_mode)
  clean = steps.StepSpec(apply_fn=model.apply, tx=tx, prepare=data.prepare(""),
                         materialize=data.test.materialize, member_mode=config.run.member_mode)
  ctx = evaluators.TeacherContext(model.apply, data.test, mesh, clean, config.run.eval_batch_size)
  evaluate = evaluators.combine(evaluators.TEACHER_EVALS, t.evals, ctx)
  phase = Phase(name="teacher", spec=spec, pipeline=data.teacher, epochs=t.epochs,
                batch_size=t.batch_size, seed=t.seed, stream=steps.TEACHER_STREAM,
                checkpoint_dir=work / "ckpt", checkpoint_every=config.run.checkpoint_every,
                log_every=config.run.log_every, steps_per_call=config.run.steps_per_call,
                eval_every=t.eval_every, evaluate=evaluate, keep_every=t.keep_every)
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
