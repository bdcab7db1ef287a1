"""kd_jax's side of each benchmark row, built through the code path a run uses.

Steps run through ``kd_jax.train.trainer.run_epoch`` (the jitted ``steps.train_chunk`` under
``parallel.device_map``, with the state donated) fed by ``pipelines.DeviceResident``; evaluation
runs through ``kd_jax.train.evaluators.predict``. Nothing here re-implements a step. Every case takes
the options a run sets: ``member_mode``, the compute ``dtype``, ``steps_per_call`` and (teacher
forward) ``fold``, the teacher's BatchNorms folded into its convs (``run.fold_teacher_bn``).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from ml_collections import ConfigDict

from kd_jax import config as config_lib
from kd_jax.train import evaluators, modeling, optim, steps, trainer
from kd_jax.core import parallel
from kd_jax.data import augment as augment_lib
from kd_jax.data import inputs, pipelines
from kd_jax.models import fold as fold_lib

#: SGD with Nesterov momentum and coupled weight decay: the paper's teacher/student recipe.
OPTIM = dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def random_split(batch: int, steps_: int, shape: tuple, classes: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images and labels for exactly ``steps_`` batches (random: speed is what we measure)."""
  rng = np.random.default_rng(seed)
  n = batch * steps_
  return (rng.integers(0, 256, (n,) + tuple(shape), dtype=np.uint8),
          rng.integers(0, classes, n).astype(np.int32))


def build_model(name: str, classes: int, dtype: str = "float32"):
  return modeling.build_model(ConfigDict(dict(name=name)), classes, dtype)


def param_count(stacked_vars: dict) -> int:
  """Parameters of ONE member (leaves carry the member axis first)."""
  return sum(int(np.prod(x.shape[1:])) for x in jax.tree.leaves(stacked_vars["params"]))


def prepare(augment: bool):
  policy = "crop|hflip" if augment else ""
  return inputs.image_prepare(augment_lib.make_augment(policy),
                              functools.partial(augment_lib.normalize, mode="unit_cube"))


@dataclasses.dataclass
class Case:
  """One kd_jax measurement: ``run()`` does the timed work and returns when it is done."""
  run: Callable[[], None]
  params: int
  box: dict = dataclasses.field(default_factory=dict)  # the live state and what built it


def _trainer_case(spec: steps.StepSpec, pipe, vars_: dict, tx, batch: int, stream: int,
                  teacher_vars: Any, mesh, steps_per_call: int = 1) -> Case:
  members = ensemble_size(vars_)
  phase = trainer.Phase(name="bench", spec=spec, pipeline=pipe, epochs=1, batch_size=batch,
                        seed=0, stream=stream, checkpoint_dir=Path("."), checkpoint_every=1,
                        log_every=1, steps_per_call=steps_per_call, eval_every=1, evaluate=None,
                        teacher_vars=teacher_vars)
  box = {"state": parallel.replicate(modeling.make_state(vars_, tx), mesh), "epoch": 0,
         "phase": phase, "mesh": mesh, "members": members}

  def run() -> None:  # one epoch = the split's steps; run_epoch reads its sums back (a sync)
    box["state"], _ = trainer.run_epoch(phase, box["state"], mesh, box["epoch"], members)
    jax.block_until_ready(box["state"])
    box["epoch"] += 1

  return Case(run, param_count(vars_), box)


def ensemble_size(vars_: dict) -> int:
  return jax.tree.leaves(vars_["params"])[0].shape[0]


def _teacher(model: str, classes: int, shape: tuple, members: int, dtype: str, fold: bool,
             mesh) -> tuple[Any, dict, Any]:
  """(module as it runs, stacked variables, replicated flax variables) of a frozen teacher."""
  net = build_model(model, classes, dtype)
  t_vars = modeling.init_variables(net, 0, steps.TEACHER_STREAM, members, shape)
  run_net, flax_vars = fold_lib.teacher_for_inference(net, modeling.as_flax(t_vars), fold)
  return run_net, t_vars, parallel.replicate(flax_vars, mesh)


def distill_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
                 augment: bool, mode: str, *, fold: bool = False, dtype: str = "float32",
                 steps_per_call: int = 1) -> Case:
  """Teacher (m members, eval) forward + student forward/backward + SGD-Nesterov update."""
  mesh = parallel.make_mesh(1)
  pipe = pipelines.DeviceResident(*random_split(batch, steps_, shape, classes), mesh)
  student = build_model(model, classes, dtype)
  teacher, _, t_flax = _teacher(model, classes, shape, members, dtype, fold, mesh)
  s_vars = modeling.init_variables(student, 0, steps.STUDENT_STREAM, 1, shape)
  tx = optim.make_optimizer(config_lib.optim_config(**OPTIM), 100 * steps_, steps_)
  spec = steps.StepSpec(apply_fn=student.apply, tx=tx, prepare=prepare(augment),
                        materialize=pipe.materialize, objective="kd", temperature=4.0,
                        teacher_apply=teacher.apply, member_mode=mode)
  return _trainer_case(spec, pipe, s_vars, tx, batch, steps.STUDENT_STREAM, t_flax, mesh,
                       steps_per_call)


def teacher_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
                 augment: bool, mode: str, *, fold: bool = False, dtype: str = "float32",
                 steps_per_call: int = 1) -> Case:
  """One cross-entropy step of each of m stacked members, each on its own batch."""
  del fold  # a teacher in training has batch statistics, nothing to fold
  mesh = parallel.make_mesh(1)
  pipe = pipelines.DeviceResident(*random_split(batch, steps_, shape, classes), mesh)
  net = build_model(model, classes, dtype)
  t_vars = modeling.init_variables(net, 0, steps.TEACHER_STREAM, members, shape)
  tx = optim.make_optimizer(config_lib.optim_config(**OPTIM), 100 * steps_, steps_)
  spec = steps.StepSpec(apply_fn=net.apply, tx=tx, prepare=prepare(augment),
                        materialize=pipe.materialize, objective="ce", member_mode=mode)
  return _trainer_case(spec, pipe, t_vars, tx, batch, steps.TEACHER_STREAM, None, mesh,
                       steps_per_call)


def eval_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
              augment: bool, mode: str, *, fold: bool = False, dtype: str = "float32",
              steps_per_call: int = 1) -> Case:
  """Logits of m stacked members over a split (the evaluators' path), clean inputs."""
  del augment, steps_per_call  # prediction runs one batch per call
  mesh = parallel.make_mesh(1)
  pipe = pipelines.DeviceResident(*random_split(batch, steps_, shape, classes), mesh)
  net, t_vars, flax_vars = _teacher(model, classes, shape, members, dtype, fold, mesh)
  tx = optim.make_optimizer(config_lib.optim_config(**OPTIM), 1, 1)
  spec = steps.StepSpec(apply_fn=net.apply, tx=tx, prepare=prepare(False),
                        materialize=pipe.materialize, member_mode=mode)

  def run() -> None:
    out = evaluators.predict((net.apply,), (flax_vars,), pipe, mesh, spec, batch)
    jax.block_until_ready(out)

  return Case(run, param_count(t_vars))


#: "epoch" is a distillation epoch over a larger split: the same case, more steps.
CASES = {"distill": distill_case, "teacher": teacher_case, "eval": eval_case,
         "epoch": distill_case}
