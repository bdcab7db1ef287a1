"""Interpolated initialization: start the student on the segment between a random init and the teacher.

The paper's optimization experiment (Fig 6) distills from θ_s = λ·θ_t + (1−λ)·θ_r. Only λ close to
the teacher reaches ~100% train agreement, which is the evidence that distillation is hard to
optimize rather than hard to identify. Everything here works on plain pytrees, so the same code
serves ``{'params': ...}`` and ``{'params': ..., 'batch_stats': ...}`` collections.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from kd_jax.core.errors import ConfigError
from kd_jax.core.types import PyTree


_LAM_KEY = "distill.init.lam"


def _check_lam(lam: Any) -> None:
  """Rejects λ outside [0, 1]; a traced λ (inside jit) cannot be checked and is let through."""
  if isinstance(lam, jax.core.Tracer):
    return
  value = float(lam)
  if not (math.isfinite(value) and 0.0 <= value <= 1.0):
    raise ConfigError(f"{_LAM_KEY}={lam!r} is outside [0, 1]; use 0 for a random init, "
                      f"1 for the teacher's weights, or a value in between")


def _shape(x: Any) -> tuple[int, ...]:
  """Shape of an array, a scalar or a ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``)."""
  return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def first_mismatch(a: PyTree, b: PyTree, names: tuple[str, str] = ("first", "second")
                   ) -> Optional[str]:
  """Describes the first path where two pytrees differ in structure or leaf shape, else None.

  Paths are compared rather than tree definitions, so a ``dict`` and a ``FrozenDict`` holding
  the same arrays count as equal. ``names`` label the two trees in the description.
  """
  la, _ = jax.tree_util.tree_flatten_with_path(a)
  lb, _ = jax.tree_util.tree_flatten_with_path(b)
  for (pa, xa), (pb, xb) in zip(la, lb):
    ka, kb = jax.tree_util.keystr(pa), jax.tree_util.keystr(pb)
    if ka != kb:
      return f"{ka} ({names[0]}) vs {kb} ({names[1]})"
    sa, sb = _shape(xa), _shape(xb)
    if sa != sb:
      return f"{ka}: shape {sa} ({names[0]}) vs {sb} ({names[1]})"
  if len(la) != len(lb):
    longer, which = (la, names[0]) if len(la) > len(lb) else (lb, names[1])
    extra = jax.tree_util.keystr(longer[min(len(la), len(lb))][0])
    return f"{extra}: only in the {which}"
  return None


def check_same_architecture(teacher: PyTree, student: PyTree,
                            key: str = "distill.init.mode") -> None:
  """Starting a student from teacher weights needs the student model to equal the teacher's."""
  problem = first_mismatch(teacher, student, ("teacher", "student"))
  if problem is not None:
    raise ConfigError(f"{key}: teacher and student variables differ at {problem}; a student "
                      "started from teacher weights needs the teacher's architecture")


def _mix_leaf(t: jax.Array, r: jax.Array, lam: jax.Array) -> jax.Array:
  """λ·t + (1−λ)·r in the random leaf's dtype, selecting the end points so they stay bitwise."""
  t = jnp.asarray(t)
  r = jnp.asarray(r)
  t_cast = t.astype(r.dtype)
  if not jnp.issubdtype(r.dtype, jnp.inexact):
    # Integer leaves (counters) cannot be mixed; keep the random init's value unless λ = 1.
    return jnp.where(lam == 1, t_cast, r)
  compute = jnp.promote_types(r.dtype, jnp.float32)
  lam_c = lam.astype(compute)
  mixed = (lam_c * t.astype(compute) + (1 - lam_c) * r.astype(compute)).astype(r.dtype)
  return jnp.where(lam == 0, r, jnp.where(lam == 1, t_cast, mixed))


def interpolate(teacher: PyTree, random: PyTree, lam: float | jax.Array) -> PyTree:
  """θ = λ·θ_teacher + (1−λ)·θ_random, leaf by leaf, with the random tree's structure and dtypes.

  Apply it to whole variable collections: BatchNorm running statistics are interpolated too,
  as the official code does (refresh them afterwards with ``refresh_batch_stats``).
  λ = 0 returns the random leaves and λ = 1 the teacher's leaves bitwise.
  """
  _check_lam(lam)
  check_same_architecture(teacher, random, _LAM_KEY)
  lam_arr = jnp.asarray(lam, dtype=jnp.float32)
  t_leaves = jax.tree_util.tree_leaves(teacher)
  r_leaves, r_def = jax.tree_util.tree_flatten(random)
  mixed = [_mix_leaf(t, r, lam_arr) for t, r in zip(t_leaves, r_leaves)]
  return jax.tree_util.tree_unflatten(r_def, mixed)


def blend(teacher: PyTree, random: PyTree, lam: jax.Array) -> PyTree:
  """:func:`interpolate` for a λ traced inside a step (annealed interpolation): no host-side
  checks, the same leaf rule (λ = 0 / 1 give either end bitwise)."""
  lam_arr = jnp.asarray(lam, dtype=jnp.float32)
  return jax.tree.map(lambda t, r: _mix_leaf(t, r, lam_arr), teacher, random)


def scaled_lr(lr: float, lam: float, lr_min: float) -> float:
  """Learning rate for a student started at λ along the way to the final teacher.

  The official code scales it by (1−λ): near the teacher a full step would throw the student
  out of the teacher's basin. It never goes below the schedule's minimum.
  """
  _check_lam(lam)
  return float(max(lr * (1.0 - float(lam)), lr_min))


def _with_batch_stats(variables: PyTree, stats: PyTree) -> PyTree:
  """Copy of ``variables`` with its ``batch_stats`` collection replaced (dict or FrozenDict)."""
  if hasattr(variables, "copy") and not isinstance(variables, dict):
    return variables.copy({"batch_stats": stats})  # FrozenDict
  out = dict(variables)
  out["batch_stats"] = stats
  return out


def refresh_batch_stats(
    apply_fn: Callable[..., Any],
    variables: PyTree,
    batches: Iterable[Any],
    *,
    reset: bool = False,
    apply_kwargs: Optional[Mapping[str, Any]] = None,
    rng: Optional[jax.Array] = None,
) -> PyTree:
  """Recomputes BatchNorm running statistics with train-mode passes over ``batches``.

  Interpolated weights do not match interpolated running statistics, so evaluating the
  interpolated student without a refresh measures a broken network.

  ``apply_fn(variables, x, mutable=['batch_stats'], **apply_kwargs)`` is called once per batch
  (``apply_kwargs`` defaults to ``{'train': True}``, the kd_jax model convention); each element
  of ``batches`` is the input ``x``. Modules must be built without a BatchNorm ``axis_name``
  (or this must run where that axis exists). ``rng`` feeds a ``dropout`` stream if the model
  needs one.

  reset=False (default, as the official code): start from the current (interpolated) statistics
    and let the modules' exponential moving average run. With momentum 0.9 the start value
    weighs 0.9**n after n batches (< 1% after 44), so one pass over many batches approximates
    the data statistics.
  reset=True: discard the current statistics and return the plain average of the per-batch
    statistics (exact regardless of momentum or number of batches, like
    ``torch.optim.swa_utils.update_bn``). The momentum is read off the layers by one probe pass.

  Variables without a ``batch_stats`` collection are returned unchanged.
  """
  if "batch_stats" not in variables:
    return variables
  kwargs = dict(apply_kwargs) if apply_kwargs is not None else {"train": True}

  def stats_after(vars_: PyTree, x: Any, key: Optional[jax.Array]) -> PyTree:
    rngs = {"dropout": key} if key is not None else None
    extra = {"rngs": rngs} if rngs is not None else {}
    _, updates = apply_fn(vars_, x, mutable=["batch_stats"], **kwargs, **extra)
    return updates["batch_stats"]

  step = jax.jit(stats_after)
  current = variables
  base_zero = base_one = keep = None
  total = None
  count = 0
  for i, x in enumerate(batches):
    key = None if rng is None else jax.random.fold_in(rng, i)
    if not reset:
      current = _with_batch_stats(current, step(current, x, key))
      count += 1
      continue
    if base_zero is None:
      zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
      ones = jax.tree.map(jnp.ones_like, variables["batch_stats"])
      base_zero = _with_batch_stats(variables, zeros)
      base_one = _with_batch_stats(variables, ones)
    # From a zero start an EMA with momentum m yields (1−m)·s for batch statistic s.
    from_zero = step(base_zero, x, key)
    if keep is None:
      # From a one start it yields m + (1−m)·s, so the difference is m: keep = 1 − m.
      from_one = step(base_one, x, key)
      keep = jax.tree.map(lambda o, z: 1.0 - (o - z), from_one, from_zero)
      if any(bool(jnp.any(k <= 1e-6)) for k in jax.tree_util.tree_leaves(keep)):
        raise ValueError("refresh_batch_stats(reset=True) needs BatchNorm momentum < 1; "
                         "a layer never updates its running statistics")
    stats = jax.tree.map(lambda z, k: z / k, from_zero, keep)
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    count += 1
  if count == 0:
    raise ValueError("refresh_batch_stats got no batches; pass at least one input batch")
  if not reset:
    return current
  mean = jax.tree.map(lambda s, ref: (s / count).astype(ref.dtype), total,
                      variables["batch_stats"])
  return _with_batch_stats(variables, mean)
