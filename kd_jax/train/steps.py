"""Pure per-device steps: teacher training, distillation and prediction.

Each function here runs on ONE device with its local slice of the global batch and talks to
the other devices only through ``lax.psum`` over :data:`kd_jax.core.parallel.AXIS`; ``parallel.py``
maps it over the mesh. Models are stacked along a leading *member* axis (an ensemble is one
pytree) and every update runs over the members by ``ensemble.map_members`` (vmap, unrolled or
``lax.map``: ``StepSpec.member_mode``), each member with its own data order and keys.

A step sees a :class:`kd_jax.core.batch.Batch`; how it got there (gathered from a device-resident
split, streamed from the host, sampled from a generator) is the input pipeline's business
(``materialize``), and how raw inputs become model inputs (augmentation, normalization) is the
modality's (``StepSpec.prepare``).

Gradients: the local loss is ``Σ_local ℓ·mask / N_global`` so ``psum`` of local gradients is the
exact gradient of the global masked mean (a ``pmean`` of local means would over-weight a
device whose batch holds padding). BatchNorm statistics are averaged by flax's ``axis_name``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import chex
import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from kd_jax.kd import ensemble, interpolate, losses, metrics
from kd_jax.core import parallel
from kd_jax.train import synthetic
from kd_jax.core.batch import Batch

AXIS = parallel.AXIS
Array = jax.Array
# prepare(batch, key) -> (model inputs, is_real): the modality's host-free input transform.
Prepare = Callable[[Batch, Array], tuple[Array, Array]]

#: Key streams: one per purpose, so no two purposes share a random draw.
TEACHER_STREAM, STUDENT_STREAM, EVAL_AUGMENT_STREAM = 1, 2, 7


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; stacked over members by the callers."""
  step: Array
  params: Any
  batch_stats: Any
  opt_state: Any


def variables(params: Any, batch_stats: Any) -> dict:
  """Flax variables; models without BatchNorm carry an empty ``batch_stats``."""
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


@dataclasses.dataclass(frozen=True)
class StepSpec:
  """Static description of a step (hashable so jit caches one compilation per spec)."""
  apply_fn: Callable[..., Any]
  tx: optax.GradientTransformation
  prepare: Prepare
  materialize: Callable[[Any, Any], Batch]    # the input pipeline's feed → Batch
  objective: str = "ce"                       # "ce" (teacher) or a distillation loss name
  temperature: float = 1.0
  alpha: float = 0.0
  teacher_apply: Optional[Callable[..., Any]] = None
  line_search: bool = False                   # L-BFGS: full batch on every device (no psum);
                                              # apply_fn must then be the model without a
                                              # cross-device BatchNorm axis
  l2: float = 0.0                             # weight decay put in the loss (line search only)
  member_mode: str = "auto"                   # how stacked members run (ensemble.MEMBER_MODES)
  anneal: Optional[Callable[[Array], Array]] = None  # step → λ: the student applied is
                                              # λ·θ_anchor + (1−λ)·θ (remedies.anneal_spec);
                                              # teacher_vars is then (ensemble, anchor params)
  synth: Any = None                           # synthetic.SynthSpec: GAN rows appended to each
                                              # batch; teacher_vars is then {"teacher",
                                              # "generator"}
  temperature_at: Optional[Callable[[Array], Array]] = None  # step → τ (a curriculum,
                                              # remedies.temperature_schedule); None = fixed
  sam_rho: float = 0.0                        # > 0: the update uses the gradient at
                                              # θ + ρ·g/‖g‖ (SAM, Foret et al. 2021)


def step_key(seed: Array, stream: int, member: Array, epoch: Array, step: Array) -> Array:
  """Key of one member's step: a pure function of (seed + member, stream, epoch, step).

  Member i of an ensemble trained with seed s is the model trained alone with seed s + i.
  """
  key = jax.random.fold_in(jax.random.key(seed + member), stream)
  for v in (epoch, step):
    key = jax.random.fold_in(key, v)
  return key


def teacher_logprobs(teacher_apply: Callable[..., Any], teacher_vars: Any, x: Array,
                     mode: str = "auto") -> Array:
  """Ensemble teacher: log of the mean member probability (members stacked)."""
  logits = ensemble.apply_members(lambda v, y: teacher_apply(v, y, train=False), teacher_vars, x,
                                  mode=mode)
  return lax.stop_gradient(ensemble.ensemble_logprobs(logits))


def per_example_loss(spec: StepSpec, logits: Array, labels: Array, is_real: Array,
                     targets: Optional[Array], temperature: Any = None) -> Array:
  """``temperature``: None = ``spec.temperature``, or one τ per row (synthetic rows)."""
  chex.assert_rank(logits, 2)
  if spec.objective == "ce":
    return losses.cross_entropy(logits, jnp.where(is_real, labels, -1))
  chex.assert_equal_shape([logits, targets])  # teacher and student must share the classes
  t = spec.temperature if temperature is None else temperature
  return losses.distill_loss(logits, targets, labels, is_real, t, spec.alpha,
                             kind=spec.objective)


def _sq_norm(tree: Any) -> Array:
  return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))


def sam_gradient(loss_fn: Callable[[Any], Array], params: Any, grads: Any, rho: float,
                 reduce: Callable[[Any], Any]) -> Any:
  """SAM's gradient: ∇L at θ + ρ·g/‖g‖, with g the (already reduced) gradient at θ.

  ``g`` is the global batch's, so every device perturbs to the same point; the second gradient
  is reduced the same way. A zero gradient leaves θ unperturbed (no division by zero).
  """
  norm = jnp.sqrt(_sq_norm(grads))
  scale = jnp.where(norm > 0, rho / jnp.where(norm > 0, norm, 1.0), 0.0)
  perturbed = jax.tree.map(lambda p, g: p + scale * g, params, grads)
  return reduce(jax.grad(loss_fn)(perturbed))


def train_step(state: TrainState, batch: Batch, key: Array, spec: StepSpec,
               teacher_vars: Any = None) -> tuple[TrainState, dict]:
  """One optimizer step of one member on this device's slice of the global batch.

  Returns the new state and metric SUMS over the global batch (loss, count and the number of
  predictions matching the label — or, when distilling, the teacher: the running agreement the
  official code reports, in train mode on the augmented batch before the update).
  """
  with jax.named_scope("input"):  # names only (HLO metadata): benchmarks/profile_ops.py
    x, is_real = spec.prepare(batch, key)
  labels, mask = batch.labels, batch.mask
  anchor = None
  if spec.anneal is not None:
    teacher_vars, anchor = teacher_vars
  temperature = None if spec.temperature_at is None else spec.temperature_at(state.step)
  if spec.synth is not None:  # fresh GAN samples after the (augmented) real rows
    x, is_real, labels, mask, temperature = synthetic.append_rows(
        spec.synth, teacher_vars["generator"], key, x, is_real, labels, mask, spec.temperature)
    teacher_vars = teacher_vars["teacher"]
  if spec.line_search:
    # Every device fits the whole (gathered) batch itself: a line search branches on loss
    # values, and with no collective inside it every device takes the same branches (an
    # all-reduce may round differently per device, and then devices wait on each other).
    x, is_real, labels, mask = (lax.all_gather(a, AXIS, tiled=True)
                                for a in (x, is_real, labels, mask))
    reduce = lambda v: v
    dropout_key = jax.random.fold_in(key, 2)
  else:
    reduce = lambda v: lax.psum(v, AXIS)
    dropout_key = jax.random.fold_in(jax.random.fold_in(key, 2), lax.axis_index(AXIS))
  targets = None
  if spec.teacher_apply is not None:
    targets = teacher_logprobs(spec.teacher_apply, teacher_vars, x, spec.member_mode)
  maskf = mask.astype(jnp.float32)
  count = jnp.maximum(reduce(maskf.sum()), 1.0)
  weights = maskf / count
  rngs = {"dropout": dropout_key}
  has_bs = bool(jax.tree.leaves(state.batch_stats))

  def local_loss(params):
    if anchor is not None:  # annealed interpolation: the student seen by the loss
      params = interpolate.blend(anchor, params, spec.anneal(state.step))
    v = variables(params, state.batch_stats)
    if has_bs:
      logits, mut = spec.apply_fn(v, x, train=True, mutable=["batch_stats"], rngs=rngs)
      new_bs = mut["batch_stats"]
    else:
      logits, new_bs = spec.apply_fn(v, x, train=True, rngs=rngs), state.batch_stats
    per_ex = per_example_loss(spec, logits, labels, is_real, targets, temperature)
    return jnp.sum(per_ex * weights), (logits, new_bs, per_ex)

  (loss, (logits, new_bs, per_ex)), grads = jax.value_and_grad(local_loss, has_aux=True)(
      state.params)
  grads = reduce(grads)
  if spec.line_search:
    def value_fn(params):
      return local_loss(params)[0] + 0.5 * spec.l2 * _sq_norm(params)
    loss = loss + 0.5 * spec.l2 * _sq_norm(state.params)
    grads = jax.tree.map(lambda g, p: g + spec.l2 * p, grads, state.params)
    updates, opt_state = spec.tx.update(grads, state.opt_state, state.params, value=loss,
                                        grad=grads, value_fn=value_fn)
  else:
    if spec.sam_rho:  # BatchNorm statistics and the metrics stay those of the first pass
      grads = sam_gradient(lambda p: local_loss(p)[0], state.params, grads, spec.sam_rho,
                           reduce)
    with jax.named_scope("optimizer"):
      updates, opt_state = spec.tx.update(grads, state.opt_state, state.params)
  with jax.named_scope("optimizer"):
    params = optax.apply_updates(state.params, updates)
  pred = jnp.argmax(logits, -1)
  ref = labels if targets is None else jnp.argmax(targets, -1)
  sums = {
      "loss_sum": reduce(jnp.sum(per_ex * maskf)),
      "count": reduce(maskf.sum()),
      "match": reduce(jnp.sum((pred == ref) * maskf)),  # accuracy or agreement
  }
  if targets is not None:  # KL(teacher ‖ student) at τ = 1 on the batch as trained
    kl_rows = metrics.kl_rows(targets, logits)
    sums["kl_sum"] = reduce(jnp.sum(kl_rows * maskf))
  new = TrainState(step=state.step + 1, params=params, batch_stats=new_bs, opt_state=opt_state)
  return new, sums


def train_chunk(states: TrainState, resident: Any, feed: Any, seed: Array, epoch: Array,
                start: Array, teacher_vars: Any, *, spec: StepSpec,
                stream: int) -> tuple[TrainState, dict]:
  """Consecutive steps ``start, start + 1, ...`` of every member, one per leading row of
  ``feed`` (a ``lax.scan`` when there are several). Returns per-member metric sums."""

  def one(states, xs):
    s, step_feed = xs
    with jax.named_scope("input"):
      batch = spec.materialize(resident, step_feed)   # leaves [members, local_batch, ...]

    def member(state, b, member_id):
      return train_step(state, b, step_key(seed, stream, member_id, epoch, s), spec,
                        teacher_vars)

    members = jax.tree.leaves(states.step)[0].shape[0]
    return ensemble.map_members(member, states, batch, jnp.arange(members),
                                mode=spec.member_mode)

  num = jax.tree.leaves(feed)[0].shape[0]
  steps = start + jnp.arange(num)
  if num == 1:
    states, sums = one(states, (steps[0], jax.tree.map(lambda a: a[0], feed)))
    return states, sums
  states, sums = lax.scan(one, states, (steps, feed))
  return states, jax.tree.map(lambda a: a.sum(0), sums)


def predict_chunk(var_list: tuple, resident: Any, feed: Any, seed: Array, step: Array, *,
                  applies: tuple, spec: StepSpec) -> tuple:
  """Logits ``[members, local_batch, C]`` of several stacked models on the same inputs.

  The inputs go through ``spec.prepare`` with keys from (seed, step): with an augmenting spec
  teacher and student are compared on the same augmented images ("train agreement, as
  augmented"); with a clean spec (no augmentation) the keys are unused.
  """
  batch = spec.materialize(resident, feed)
  x, _ = spec.prepare(batch, step_key(seed, EVAL_AUGMENT_STREAM, jnp.int32(0), jnp.int32(0), step))
  return tuple(ensemble.apply_members(apply, vs, x, mode=spec.member_mode, train=False)
               for apply, vs in zip(applies, var_list))
