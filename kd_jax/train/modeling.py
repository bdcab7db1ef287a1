"""Models as the trainer holds them: built from config, initialized per member, in a state.

Members of an ensemble are stacked on a leading axis; member i is initialized from seed + i,
so it is the model a run with that seed would build alone.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from kd_jax.kd import ensemble
from kd_jax.core import parallel
from kd_jax.core.cache import CHEAP_COMPILE
from kd_jax.models import get_model
from kd_jax.train.steps import TrainState, variables as flax_variables


def build_model(model_cfg: ConfigDict, num_classes: int, dtype: str = "float32",
                data_options: dict | None = None):
  """``dtype``: ``run.dtype``, the compute dtype; ``data_options``: what the data fixes for the
  model (text: the vocabulary size)."""
  opts = {k: v for k, v in model_cfg.items() if k != "name"}
  opts.update(data_options or {})
  dtype = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
  model = get_model(model_cfg.name, num_classes, bn_axis_name=parallel.AXIS, **opts)
  if hasattr(model, "dtype") and dtype != jnp.float32:
    model = model.clone(dtype=dtype)
  return model


def local(model):
  """The model outside the device mesh (BatchNorm without a cross-device axis)."""
  return model.clone(bn_axis_name=None) if hasattr(model, "bn_axis_name") else model


@functools.partial(jax.jit, static_argnames=("model", "stream", "members", "input_shape"),
                   compiler_options=CHEAP_COMPILE)
def _init_stacked(model, seed: jax.Array, stream: int, members: int, input_shape: tuple) -> dict:
  x = jnp.zeros((1,) + input_shape, jnp.float32)

  def one(i):
    key = jax.random.fold_in(jax.random.key(seed + i), stream)
    return model.init({"params": key, "dropout": key}, x, train=False)

  return jax.vmap(one)(jnp.arange(members))


def init_variables(model, seed: int, stream: int, members: int, input_shape) -> dict:
  """Stacked initial variables of ``members`` models; member i is initialized from seed + i.

  One module-level program per (model, stream, members, shape): the seed is an argument, so
  the teacher's template, its initial state and every seed of a sweep share one compilation.
  """
  out = _init_stacked(model, jnp.asarray(seed, jnp.int32), stream, members, tuple(input_shape))
  return {"params": out["params"], "batch_stats": out.get("batch_stats", {})}


def _strong(tree: Any) -> Any:
  """Drops weak types so the state keeps one signature across steps (no second compile)."""
  return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


@functools.partial(jax.jit, static_argnames=("tx",), compiler_options=CHEAP_COMPILE)
def _init_opt_state(params: Any, tx) -> Any:
  # One program for the optimizer's state: op by op, every leaf shape compiled its own.
  return jax.vmap(tx.init)(params)


def make_state(variables: dict, tx) -> TrainState:
  params = variables["params"]
  opt_state = _strong(_init_opt_state(params, tx))
  members = ensemble.num_members(params)
  return TrainState(step=jnp.zeros((members,), jnp.int32), params=params,
                    batch_stats=variables["batch_stats"], opt_state=opt_state)


def state_variables(state: TrainState) -> dict:
  return {"params": state.params, "batch_stats": state.batch_stats}


def as_flax(variables: dict) -> dict:
  return flax_variables(variables["params"], variables["batch_stats"])


def member(tree: Any, i: int) -> Any:
  """Member i of stacked variables, without the member axis."""
  return jax.tree.map(lambda x: jnp.asarray(x)[i], tree)
