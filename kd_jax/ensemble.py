"""Ensembles as one pytree: member variables stacked on a leading axis.

Stacking lets m teachers train and infer together under ``jax.vmap``, and taking the first k
members gives the m=k teacher, so the arms of a figure share one trained ensemble.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from kd_jax.errors import ConfigError

PyTree = Any


def ensemble_logprobs(member_logits: jnp.ndarray) -> jnp.ndarray:
  """log((1/m) Σ_i softmax(z_i)) for logits [m, B, C] -> [B, C].

  Averages in probability space (docs/paper.md) via log-sum-exp of log-softmax, so members with
  extreme logits neither overflow nor lose their small probabilities.
  """
  z = jnp.asarray(member_logits, jnp.float32)
  if z.ndim < 2:
    raise ValueError(f"member_logits must be [m, ..., C], got shape {z.shape}")
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
                  **kwargs: Any) -> Any:
  """``apply_fn(variables, x, **kwargs)`` for every member at once; x is shared.

  Returns the member outputs stacked on a leading axis, e.g. logits [m, B, C].
  """
  return jax.vmap(lambda v: apply_fn(v, x, **kwargs))(stacked_variables)
