"""Ensembles as one pytree: member variables stacked on a leading axis.

Stacking lets m teachers train and infer together, and taking the first k members gives the
m=k teacher, so the arms of a figure share one trained ensemble. How the members of a stack run
is one choice, :func:`map_members`, used by teacher training and inference alike: ``vmap`` over
stacked *weights* turns every convolution into a batch-grouped convolution, which XLA:CPU runs
several times slower than the m plain ones (benchmarks/README.md).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from kd_jax.core.errors import ConfigError
from kd_jax.core.types import PyTree


#: How stacked members run: one vmapped program, an unrolled Python loop (m plain programs in
#: one graph), or ``lax.map`` (one member's program in a loop); ``auto`` picks per backend.
MEMBER_MODES = ("auto", "vmap", "unroll", "map")
#: ``auto`` by backend, measured with benchmarks/ (on CPU unrolled members trained 8× and
#: inferred 1.8× faster than vmapped ones, benchmarks/README.md); backends not listed use vmap.
AUTO_MODE = {"cpu": "unroll"}


def check_member_mode(mode: str) -> None:
  if mode not in MEMBER_MODES:
    raise ConfigError(f"run.member_mode={mode!r} is not known; choose one of: "
                      f"{', '.join(MEMBER_MODES)}")


def resolve_mode(mode: str) -> str:
  """The concrete mode ``auto`` stands for on the default backend (others pass through)."""
  check_member_mode(mode)
  return AUTO_MODE.get(jax.default_backend(), "vmap") if mode == "auto" else mode


def _unroll(fn: Callable[..., Any], args: tuple, m: int) -> Any:
  outs = [fn(*jax.tree.map(lambda a, i=i: a[i], args)) for i in range(m)]
  return stack_members(outs)


_MAPPERS: dict[str, Callable[[Callable[..., Any], tuple, int], Any]] = {
    "vmap": lambda fn, args, m: jax.vmap(fn)(*args),
    "unroll": _unroll,
    "map": lambda fn, args, m: lax.map(lambda a: fn(*a), args),
}


def map_members(fn: Callable[..., Any], *stacked_args: PyTree, mode: str = "auto") -> Any:
  """``fn`` applied to each member's slice of ``stacked_args``, outputs stacked on axis 0.

  Every leaf of every argument carries the member axis first (close over shared values). The
  result is the same for every mode up to float reordering; only the speed differs. One member
  always runs unmapped (no batch-grouped ops for a student or a single teacher).
  """
  m = num_members(stacked_args)
  concrete = resolve_mode(mode)
  if m == 1:
    concrete = "unroll"
  return _MAPPERS[concrete](fn, stacked_args, m)


def ensemble_logprobs(member_logits: jnp.ndarray) -> jnp.ndarray:
  """log((1/m) Σ_i softmax(z_i)) for logits [m, B, C] -> [B, C].

  Averages in probability space (docs/paper.md) via log-sum-exp of log-softmax, so members with
  extreme logits neither overflow nor lose their small probabilities.
  """
  z = jnp.asarray(member_logits, jnp.float32)
  if z.ndim < 2:
    raise ValueError(f"member_logits must be [m, ..., C], got shape {z.shape}")
  return _ensemble_logprobs(z)


@jax.jit
def _ensemble_logprobs(z: jnp.ndarray) -> jnp.ndarray:
  # Jitted: called eagerly on evaluation outputs, op by op it was a dozen small compilations.
  logp = jax.nn.log_softmax(z, axis=-1)
  return jax.nn.logsumexp(logp, axis=0) - math.log(z.shape[0])


def stack_members(trees: Sequence[PyTree]) -> PyTree:
  """Stacks same-structured member pytrees leaf by leaf on a new leading axis."""
  if len(trees) == 0:
    raise ValueError("stack_members needs at least one member")
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def num_members(tree: PyTree) -> int:
  """The ensemble size m: the common leading dimension of every leaf."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    raise ValueError("an ensemble pytree needs at least one array leaf")
  sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
  if len(sizes) != 1 or None in sizes:
    raise ValueError("ensemble leaves disagree on the member axis: "
                     f"sizes {sorted(map(str, sizes))}")
  return sizes.pop()


def take_members(tree: PyTree, k: int) -> PyTree:
  """The first k members (the m=k teacher of an ensemble trained once with more members)."""
  m = num_members(tree)
  if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= m:
    raise ConfigError(f"distill.teacher_members={k!r} is not allowed; use an int in [1, {m}] "
                      f"(the stored ensemble has {m} members) or train a larger ensemble")
  return jax.tree.map(lambda x: x[:int(k)], tree)


def apply_members(apply_fn: Callable[..., Any], stacked_variables: PyTree, x: jnp.ndarray,
                  mode: str = "auto", **kwargs: Any) -> Any:
  """``apply_fn(variables, x, **kwargs)`` for every member (see :func:`map_members`); x is
  shared. Returns the member outputs stacked on a leading axis, e.g. logits [m, B, C].
  """
  return map_members(lambda v: apply_fn(v, x, **kwargs), stacked_variables, mode=mode)
