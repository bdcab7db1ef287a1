"""Evaluators: one per thing measured, each returning ``{name: {metric: value}}``.

Each evaluation of a phase is an :class:`Entry`, big_vision style: its results key (the name),
its ``type`` (what is measured: a registered evaluator), the ``split`` it reads, the ``pred``
function that predicts it (``clean``: eval mode, no augmentation; ``augmented``: the
distillation's augmentation, teacher and student on the same images) and its cadence
``every`` (epochs; 0 = the phase's ``eval_every``). A config gives them two ways:

* by name, ``teacher.evals`` / ``distill.evals``: each name stands for the default entry of
  :data:`TEACHER_DEFAULTS` / :data:`DISTILL_DEFAULTS` (the splits below);
* as entries, ``config.evals.<name> = dict(phase=..., type=..., split=..., pred=..., every=...)``,
  added to (or replacing, by name) those of the phase's name list.

Evaluator metrics are the names of :data:`kd_jax.kd.metrics.METRICS` (``metrics.finalize``
produces them exactly over a split). Building an evaluator computes nothing: predictions it
needs once (the frozen teacher's) are computed by its first run and kept.

The default entries of a distillation run (``distill.evals`` names; entry splits ``test``,
``distill``, ``val``, ``synth``):

* ``test`` — teacher vs student on the test split (eval mode, clean inputs);
* ``distill`` — on the distillation data, eval mode, clean inputs;
* ``val`` — on the examples held out of the distillation data (``data.distill_val``), eval mode,
  clean inputs: what a tuning sweep reads instead of the test split; only when there are some;
* ``distill_aug`` — on the distillation data as augmented for distillation (eval mode; teacher and
  student see the same augmented images); only when ``distill.augment`` is set;
* ``synth`` — on fixed samples of the GAN whose rows were added to the batches
  (``distill.synth_ratio`` > 0; agreement and KL: the samples have no labels);
* ``running`` — the running loss and agreement of the last epoch, in train mode on the augmented
  batch before each update: what the official code reports as train agreement (docs/paper.md Fig 6
  and Table 1 numbers).

Teacher phase (``teacher.evals`` names; entry splits ``test``, ``train`` = the teacher's
training data): ``test`` (the ensemble's accuracy, NLL, ECE), ``members`` (mean member test
accuracy), ``running``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys
from typing import Any, Callable, Iterable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from kd_jax.kd import ensemble, metrics
from kd_jax.core import parallel
from kd_jax.train import steps
from kd_jax.core.batch import sharded_specs
from kd_jax.data import pipelines
from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import Registry
from kd_jax.core.types import Evaluator, Results

PREDS = ("clean", "augmented")


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
  """What the teacher's evaluators read: its model, the splits, the clean input spec."""
  apply: Callable[..., Any]
  test: pipelines.Pipeline
  mesh: Mesh
  clean: steps.StepSpec
  batch_size: int
  train: Optional[pipelines.Pipeline] = None   # the teacher's training data (split "train")

  def pipeline(self, split: str) -> Optional[pipelines.Pipeline]:
    return {"test": self.test, "train": self.train}[split]

  def logits(self, state: steps.TrainState, split: str = "test") -> jax.Array:
    (logits,) = predict((self.apply,), (_flax(state),), self.pipeline(split), self.mesh,
                        self.clean, self.batch_size)
    return logits


@dataclasses.dataclass
class DistillContext:
  """What the student's evaluators read. Building it computes nothing: the frozen teacher's
  predictions on a split are computed on the first evaluation that reads them, then kept."""
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
  val: Optional[pipelines.Pipeline] = None        # held out of distillation (data.distill_val)

  def _teacher(self, pipeline: pipelines.Pipeline, limit: int = 0) -> jax.Array:
    (logits,) = predict((self.teacher_apply,), (self.teacher_vars,), pipeline, self.mesh,
                        self.clean, self.batch_size, limit=limit)
    return ensemble.ensemble_logprobs(logits)

  @functools.cached_property
  def teacher_test(self) -> jax.Array:
    return self._teacher(self.test)

  @functools.cached_property
  def teacher_train(self) -> jax.Array:
    return self._teacher(self.distill, self.train_limit)

  @functools.cached_property
  def teacher_synth(self) -> Optional[jax.Array]:
    return None if self.synthetic is None else self._teacher(self.synthetic)

  @functools.cached_property
  def teacher_val(self) -> Optional[jax.Array]:
    return None if self.val is None else self._teacher(self.val)

  def pipeline(self, split: str) -> Optional[pipelines.Pipeline]:
    """The split's pipeline (None: the run has none, e.g. ``synth`` without GAN rows)."""
    return {"test": self.test, "distill": self.distill, "synth": self.synthetic,
            "val": self.val}[split]

  def limit(self, split: str) -> int:
    return self.train_limit if split == "distill" else 0

  def teacher_clean(self, split: str) -> jax.Array:
    """The frozen teacher's log-probabilities on a split (clean), computed once."""
    return {"test": lambda: self.teacher_test, "distill": lambda: self.teacher_train,
            "synth": lambda: self.teacher_synth, "val": lambda: self.teacher_val}[split]()

  def student(self, state: steps.TrainState, pipeline: pipelines.Pipeline,
              limit: int = 0) -> jax.Array:
    (logits,) = predict((self.student_apply,), (_flax(state),), pipeline, self.mesh,
                        self.clean, self.batch_size, limit=limit)
    return logits[0]


def _flax(state: steps.TrainState) -> dict:
  return steps.variables(state.params, state.batch_stats)


# ------------------------------------------------------------------------------ entries


@dataclasses.dataclass(frozen=True)
class Entry:
  """One evaluation of a phase: results key, evaluator type, split, predict function, cadence."""
  name: str
  type: str
  split: str = "test"
  pred: str = "clean"
  every: int = 0          # epochs between runs; 0 = the phase's eval_every


#: ``teacher.evals`` names → the entries they stand for.
TEACHER_DEFAULTS = {"test": Entry("test", "ensemble"), "members": Entry("members", "members"),
                    "running": Entry("running", "running")}
#: ``distill.evals`` names → the entries they stand for.
DISTILL_DEFAULTS = {"test": Entry("test", "fidelity"),
                    "distill": Entry("distill", "fidelity", "distill"),
                    "val": Entry("val", "fidelity", "val"),
                    "distill_aug": Entry("distill_aug", "fidelity", "distill", "augmented"),
                    "synth": Entry("synth", "fidelity_unlabelled", "synth"),
                    "running": Entry("running", "running")}
#: Splits each phase's evaluators can read.
SPLITS = {"teacher": ("test", "train"), "distill": ("test", "distill", "val", "synth")}

TEACHER_EVALS: Registry[Callable[[TeacherContext, Entry], Optional[Evaluator]]] = Registry(
    "teacher evaluator type", "evals.<name>.type")
DISTILL_EVALS: Registry[Callable[[DistillContext, Entry], Optional[Evaluator]]] = Registry(
    "distillation evaluator type", "evals.<name>.type")
PHASES = {"teacher": (TEACHER_EVALS, TEACHER_DEFAULTS),
          "distill": (DISTILL_EVALS, DISTILL_DEFAULTS)}


def entries(phase: str, names: Iterable[str], evals: Any = None) -> list[Entry]:
  """The evaluations of ``phase``: the default entries of its name list (``teacher.evals`` /
  ``distill.evals``), then the ``config.evals`` entries of this phase (same name: replaced).
  Unknown names, types, splits or predict functions are ConfigErrors naming the key."""
  registry, defaults = PHASES[phase]
  out: dict[str, Entry] = {}
  for n in names:
    if phase == "distill" and n in metrics.LEGACY_SPLITS:
      new = metrics.LEGACY_SPLITS[n]
      print(f"note: distill.evals entry {n!r} is the old name of {new!r}; read as {new!r} "
            "(rename it; the old names will stop being read)", file=sys.stderr, flush=True)
      n = new
    if n not in defaults:
      raise ConfigError(f"{phase}.evals entry {n!r} is not known; choose from: "
                        f"{', '.join(defaults)} (or add it to config.evals)")
    out[n] = defaults[n]
  for name, e in (evals or {}).items():
    if _get(e, "phase", "") not in PHASES:
      raise ConfigError(f"evals.{name}.phase={_get(e, 'phase', '')!r} is not known; choose "
                        f"one of: {', '.join(PHASES)}")
    if _get(e, "phase") != phase:
      continue
    entry = Entry(str(name), str(_get(e, "type", "")), str(_get(e, "split", "test")),
                  str(_get(e, "pred", "clean")), _get(e, "every", 0))
    registry.check(entry.type, f"evals.{name}.type")
    if entry.split not in SPLITS[phase]:
      raise ConfigError(f"evals.{name}.split={entry.split!r} is not a {phase} split; choose "
                        f"one of: {', '.join(SPLITS[phase])}")
    preds = PREDS if phase == "distill" else ("clean",)  # only distillation augments to predict
    if entry.pred not in preds:
      raise ConfigError(f"evals.{name}.pred={entry.pred!r} is not known for the {phase} phase; "
                        f"choose one of: {', '.join(preds)}")
    if isinstance(entry.every, bool) or not isinstance(entry.every, int) or entry.every < 0:
      raise ConfigError(f"evals.{name}.every={entry.every!r} must be an integer >= 0 (epochs; "
                        "0 = the phase's eval_every)")
    out[entry.name] = entry
  return list(out.values())


def _get(e: Any, key: str, default: Any = None) -> Any:
  return e.get(key, default) if hasattr(e, "get") else getattr(e, key, default)


def cadence(chosen: Iterable[Entry], eval_every: int) -> int:
  """Epochs between the trainer's evaluation calls: every entry's cadence is a multiple."""
  return math.gcd(*[e.every or int(eval_every) for e in chosen] or [int(eval_every)])


def build(phase: str, chosen: Iterable[Entry], ctx: Any, eval_every: int) -> Evaluator:
  """One evaluator of the entries, merging their results; building it computes nothing.

  Called with ``epoch`` it runs the entries due then (``every``, 0 = ``eval_every``); without,
  all of them (the final evaluation). Entries that do not apply to the run (``distill_aug``
  without augmentation, ``synth`` without GAN rows) are left out.
  """
  registry, _ = PHASES[phase]
  made = [(e, registry.get(e.type)(ctx, e)) for e in chosen]
  made = [(e.every or int(eval_every), fn) for e, fn in made if fn is not None]

  def evaluate(state: steps.TrainState, running: Results,
               epoch: Optional[int] = None) -> Results:
    out: Results = {}
    for every, fn in made:
      if epoch is None or epoch % every == 0:
        out.update(fn(state, running))
    return out

  return evaluate


# ------------------------------------------------------------------------------ evaluator types


@TEACHER_EVALS.register("ensemble")
def _teacher_ensemble(ctx: TeacherContext, e: Entry) -> Evaluator:
  """The ensemble's accuracy, NLL and ECE on the split."""
  def evaluate(state, running):
    lp = ensemble.ensemble_logprobs(ctx.logits(state, e.split))
    pipe = ctx.pipeline(e.split)
    m = split_metrics(lp, lp, pipe.labels[: pipe.size])
    return {e.name: {k: m[k] for k in ("teacher_acc", "teacher_nll", "teacher_ece")}}
  return evaluate


@TEACHER_EVALS.register("members")
def _teacher_members(ctx: TeacherContext, e: Entry) -> Evaluator:
  """Mean, min and max accuracy of the members on the split."""
  def evaluate(state, running):
    logits = ctx.logits(state, e.split)
    pipe = ctx.pipeline(e.split)
    labels = jnp.asarray(pipe.labels[: pipe.size])
    acc = [split_metrics(z, z, labels)["student_acc"] for z in logits]
    return {e.name: {"member_acc_mean": float(sum(acc) / len(acc)),
                     "member_acc_min": float(min(acc)), "member_acc_max": float(max(acc))}}
  return evaluate


@TEACHER_EVALS.register("running")
@DISTILL_EVALS.register("running")
def _running(ctx: Any, e: Entry) -> Evaluator:
  """The last epoch's running metrics (train mode, on the batches as trained)."""
  return lambda state, running: {e.name: dict(running["running"])}


def _fidelity(ctx: DistillContext, e: Entry,
              keep: Optional[tuple[str, ...]]) -> Optional[Evaluator]:
  pipe = ctx.pipeline(e.split)
  if pipe is None or (e.pred == "augmented" and ctx.augmented is None):
    return None  # no such split in this run; without augmentation the split is the clean one
  limit = ctx.limit(e.split)

  def evaluate(state, running):
    if e.pred == "augmented":
      t_aug, s_aug = predict((ctx.teacher_apply, ctx.student_apply),
                             (ctx.teacher_vars, _flax(state)), pipe, ctx.mesh, ctx.augmented,
                             ctx.batch_size, seed=ctx.seed, limit=limit)
      t, s = ensemble.ensemble_logprobs(t_aug), s_aug[0]
    else:
      t, s = ctx.teacher_clean(e.split), ctx.student(state, pipe, limit)
    m = split_metrics(t, s, pipe.labels[: s.shape[0]])
    return {e.name: m if keep is None else {k: m[k] for k in keep}}
  return evaluate


@DISTILL_EVALS.register("fidelity")
def _distill_fidelity(ctx: DistillContext, e: Entry) -> Optional[Evaluator]:
  """Teacher vs student on the split: every split metric (kd_jax.kd.metrics)."""
  return _fidelity(ctx, e, None)


@DISTILL_EVALS.register("fidelity_unlabelled")
def _distill_fidelity_unlabelled(ctx: DistillContext, e: Entry) -> Optional[Evaluator]:
  """Teacher vs student on a split without labels (GAN samples): agreement and KL only."""
  return _fidelity(ctx, e, ("agreement", "kl"))
