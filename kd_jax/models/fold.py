"""BatchNorm folding for a frozen (eval-mode) teacher.

In eval mode a BatchNorm is a per-channel affine map, ``y·s + (β - μ·s)`` with
``s = γ / sqrt(σ² + ε)``. Where it reads a bias-free conv's output directly, the map folds into
that conv once: kernel ``w·s`` (per output channel) and bias ``β - μ·s``; the distillation step
then runs one conv + bias + ReLU instead of conv + four elementwise ops + ReLU, every step.

A PreResNet is *pre-activation* (norm → ReLU → conv), so most norms cannot fold forward: a
ReLU stands between them and the next conv. What folds is a norm whose input is exactly the
previous conv's output inside a block: ``norm2`` (after ``conv1``) in a basic block, ``norm2``
and ``norm3`` (after ``conv1``, ``conv2``) in a bottleneck block. ``norm1`` reads the residual
sum (the previous block's output, also the shortcut's input) and ``final_norm`` the last sum:
neither folds. The folded variables run in the same module built with ``folded=True``.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from kd_jax.models.preresnet import BN_EPSILON, PreResNet

#: (conv, the norm that reads its output) pairs inside a block, by block kind.
FOLDABLE = (("conv1", "norm2"), ("conv2", "norm3"))


def can_fold(model: nn.Module) -> bool:
  """True for a BatchNorm PreResNet (the only model here with norms to fold)."""
  return isinstance(model, PreResNet) and model.norm == "batch" and not model.folded


def _fold_pair(conv: dict, norm: dict, stats: dict) -> dict:
  """The conv's params with the norm's eval-mode affine map folded in (any leading axes)."""
  kernel = jnp.asarray(conv["kernel"], jnp.float32)
  s = jnp.asarray(norm["scale"], jnp.float32) * (
      1.0 / jnp.sqrt(jnp.asarray(stats["var"], jnp.float32) + BN_EPSILON))
  bias = jnp.asarray(norm["bias"], jnp.float32) - jnp.asarray(stats["mean"], jnp.float32) * s
  # kernel [..., kh, kw, cin, cout]; s [..., cout]: broadcast over the three spatial/input axes.
  per_out = s.reshape(s.shape[:-1] + (1, 1, 1) + s.shape[-1:])
  return {"kernel": (kernel * per_out).astype(conv["kernel"].dtype),
          "bias": bias.astype(conv["kernel"].dtype)}


def fold_batchnorm(variables: dict) -> dict:
  """Flax variables ``{"params", "batch_stats"}`` of a BatchNorm PreResNet (members may be
  stacked on a leading axis) → the variables of the same model built with ``folded=True``."""
  params, stats = dict(variables["params"]), dict(variables["batch_stats"])
  for name, block in variables["params"].items():
    if not name.startswith("stage"):
      continue
    block, block_stats = dict(block), dict(stats[name])
    for conv, norm in FOLDABLE:
      if norm in block:
        block[conv] = _fold_pair(block[conv], block.pop(norm), block_stats.pop(norm))
    params[name], stats[name] = block, block_stats
  return {"params": params, "batch_stats": stats}


def teacher_for_inference(model: nn.Module, variables: dict, enabled: bool) -> tuple[Any, dict]:
  """(model, flax variables) the frozen teacher runs as: folded when ``enabled`` and foldable,
  else unchanged (models without BatchNorm after a conv have nothing to fold)."""
  if not enabled or not can_fold(model):
    return model, variables
  return model.clone(folded=True), fold_batchnorm(variables)
