"""Evaluators: one per thing measured, each returning ``{split: {metric: value}}``.

A phase lists its evaluators by name in the config (``teacher.evals``, ``distill.evals``),
big_vision style. Adding a split = registering one evaluator here; its metrics are the names
of :data:`kd_jax.kd.metrics.METRICS` (``metrics.finalize`` produces them exactly over a split).

Splits of a distillation run:

* ``test`` — teacher vs student on the test split (eval mode, clean inputs);
* ``train`` — on the distillation data, eval mode, clean inputs;
* ``train_aug`` — on the distillation data as augmented for distillation (eval mode; teacher and
  student see the same augmented images); only when ``distill.augment`` is set;
* ``synth`` — on fixed samples of the GAN whose rows were added to the batches
  (``distill.synth_ratio`` > 0; agreement and KL: the samples have no labels);
* ``running`` — the running loss and agreement of the last epoch, in train mode on the augmented
  batch before each update: what the official code reports as train agreement (docs/paper.md Fig 6
  and Table 1 numbers).

Teacher phase: ``test`` (the ensemble's accuracy, NLL, ECE), ``members`` (mean member test
accuracy), ``running``.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from kd_jax.kd import ensemble, metrics
from kd_jax.core import parallel
from kd_jax.train import steps
from kd_jax.core.batch import sharded_specs
from kd_jax.data import pipelines
from kd_jax.core.registry import Registry
from kd_jax.core.types import Evaluator, Results



# ------------------------------------------------------------------------------ prediction


def predict(applies: tuple, var_list: tuple, pipeline: pipelines.Pipeline, mesh: Mesh,
            spec: steps.StepSpec, batch_size: int, seed: int = 0,
            limit: int = 0) -> tuple[jax.Array, ...]:
  """Logits ``[members, N, C]`` of each stacked model over a split (or its first ``limit``)."""
  size = min(limit, pipeline.size) if limit else pipeline.size
  n_dev = parallel.num_shards(mesh)
  batch = max(n_dev, min(batch_size, size) // n_dev * n_dev)
  resident = pipeline.resident()
  outs = []
  for s, feed in enumerate(pipeline.eval_feeds(batch, limit=size)):
    fn = _predict_fn(applies, mesh, spec, len(var_list), jax.tree.structure(feed))
    # On the host at once: on many hosts a batch's logits span every process.
    outs.append(parallel.host(fn(var_list, resident, feed, jnp.int32(seed), jnp.int32(s))))
  return tuple(jnp.asarray(np.concatenate([o[j] for o in outs], axis=1)[:, :size])
               for j in range(len(var_list)))


@functools.lru_cache(maxsize=64)
def _predict_fn(applies: tuple, mesh: Mesh, spec: steps.StepSpec, n: int, feed_structure: Any):
  fn = functools.partial(steps.predict_chunk, applies=applies, spec=spec)
  feed_specs = sharded_specs(jax.tree.unflatten(feed_structure, [0] * feed_structure.num_leaves),
                             0, parallel.AXIS)
  return parallel.device_map(fn, mesh, in_specs=(P(), P(), feed_specs, P(), P()),
                             out_specs=tuple(P(None, parallel.AXIS) for _ in range(n)))


@jax.jit
def _split_sums(teacher_logprobs, student_logits, labels):
  return metrics.split_sums(teacher_logprobs, student_logits, labels)


def split_metrics(teacher_logprobs, student_logits, labels) -> dict[str, float]:
  """Every split metric of ``kd_jax.kd.metrics`` over whole arrays [N, C], [N, C], [N]."""
  return metrics.finalize(_split_sums(teacher_logprobs, student_logits, labels))


# ------------------------------------------------------------------------------ contexts


@dataclasses.dataclass
class TeacherContext:
  """What the teacher's evaluators read: its model, the test split, the clean input spec."""
  apply: Callable[..., Any]
  test: pipelines.Pipeline
  mesh: Mesh
  clean: steps.StepSpec
  batch_size: int

  def test_logits(self, state: steps.TrainState) -> jax.Array:
    (logits,) = predict((self.apply,), (_flax(state),), self.test, self.mesh, self.clean,
                        self.batch_size)
    return logits


@dataclasses.dataclass
class DistillContext:
  """What the student's evaluators read; the frozen teacher's predictions are computed once."""
  student_apply: Callable[..., Any]
  teacher_apply: Callable[..., Any]
  teacher_vars: Any
  test: pipelines.Pipeline
  distill: pipelines.Pipeline
  mesh: Mesh
  clean: steps.StepSpec
  augmented: Optional[steps.StepSpec]   # None: distillation without augmentation
  batch_size: int
  train_limit: int
  seed: int
  synthetic: Optional[pipelines.Pipeline] = None  # fixed GAN samples (kd_jax.train.synthetic)

  def __post_init__(self):
    t = functools.partial(predict, (self.teacher_apply,), (self.teacher_vars,), mesh=self.mesh,
                          spec=self.clean, batch_size=self.batch_size)
    self.teacher_test = ensemble.ensemble_logprobs(t(self.test)[0])
    self.teacher_train = ensemble.ensemble_logprobs(t(self.distill, limit=self.train_limit)[0])
    self.teacher_synth = (None if self.synthetic is None
                          else ensemble.ensemble_logprobs(t(self.synthetic)[0]))

  def student(self, state: steps.TrainState, pipeline: pipelines.Pipeline,
              limit: int = 0) -> jax.Array:
    (logits,) = predict((self.student_apply,), (_flax(state),), pipeline, self.mesh,
                        self.clean, self.batch_size, limit=limit)
    return logits[0]


def _flax(state: steps.TrainState) -> dict:
  return steps.variables(state.params, state.batch_stats)


# ------------------------------------------------------------------------------ registries

TEACHER_EVALS: Registry[Callable[[TeacherContext], Optional[Evaluator]]] = Registry(
    "teacher evaluator", "teacher.evals")
DISTILL_EVALS: Registry[Callable[[DistillContext], Optional[Evaluator]]] = Registry(
    "distillation evaluator", "distill.evals")


@TEACHER_EVALS.register("test")
def _teacher_test(ctx: TeacherContext) -> Evaluator:
  def evaluate(state, running):
    lp = ensemble.ensemble_logprobs(ctx.test_logits(state))
    m = split_metrics(lp, lp, ctx.test.labels[: ctx.test.size])
    return {"test": {k: m[k] for k in ("teacher_acc", "teacher_nll", "teacher_ece")}}
  return evaluate


@TEACHER_EVALS.register("members")
def _teacher_members(ctx: TeacherContext) -> Evaluator:
  def evaluate(state, running):
    logits = ctx.test_logits(state)
    labels = jnp.asarray(ctx.test.labels[: ctx.test.size])
    acc = [split_metrics(z, z, labels)["student_acc"] for z in logits]
    return {"members": {"member_acc_mean": float(sum(acc) / len(acc)),
                        "member_acc_min": float(min(acc)), "member_acc_max": float(max(acc))}}
  return evaluate


@TEACHER_EVALS.register("running")
@DISTILL_EVALS.register("running")
def _running(ctx: Any) -> Evaluator:
  return lambda state, running: {"running": dict(running["running"])}


@DISTILL_EVALS.register("test")
def _distill_test(ctx: DistillContext) -> Evaluator:
  def evaluate(state, running):
    labels = ctx.test.labels[: ctx.test.size]
    return {"test": split_metrics(ctx.teacher_test, ctx.student(state, ctx.test), labels)}
  return evaluate


@DISTILL_EVALS.register("train")
def _distill_train(ctx: DistillContext) -> Evaluator:
  def evaluate(state, running):
    s = ctx.student(state, ctx.distill, ctx.train_limit)
    labels = ctx.distill.labels[: s.shape[0]]
    return {"train": split_metrics(ctx.teacher_train, s, labels)}
  return evaluate


@DISTILL_EVALS.register("train_aug")
def _distill_train_aug(ctx: DistillContext) -> Optional[Evaluator]:
  if ctx.augmented is None:
    return None  # without augmentation this split is the clean one

  def evaluate(state, running):
    t_aug, s_aug = predict((ctx.teacher_apply, ctx.student_apply), (ctx.teacher_vars, _flax(state)),
                           ctx.distill, ctx.mesh, ctx.augmented, ctx.batch_size, seed=ctx.seed,
                           limit=ctx.train_limit)
    labels = ctx.distill.labels[: s_aug.shape[1]]
    return {"train_aug": split_metrics(ensemble.ensemble_logprobs(t_aug), s_aug[0], labels)}
  return evaluate


@DISTILL_EVALS.register("synth")
def _distill_synth(ctx: DistillContext) -> Optional[Evaluator]:
  """Teacher vs student on fixed GAN samples (clean, eval mode); only with synthetic rows.
  The samples have no labels, so only the label-free metrics are kept."""
  if ctx.synthetic is None:
    return None

  def evaluate(state, running):
    s = ctx.student(state, ctx.synthetic)
    m = split_metrics(ctx.teacher_synth, s, ctx.synthetic.labels[: s.shape[0]])
    return {"synth": {k: m[k] for k in ("agreement", "kl")}}
  return evaluate


def combine(registry: Registry, names, ctx: Any) -> Evaluator:
  """One evaluator running the named ones in order and merging their splits."""
  chosen = [fn for fn in (registry.get(n)(ctx) for n in names) if fn is not None]

  def evaluate(state: steps.TrainState, running: Results) -> Results:
    out: Results = {}
    for fn in chosen:
      out.update(fn(state, running))
    return out

  return evaluate
