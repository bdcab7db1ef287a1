"""Device-resident datasets and the epoch plan: which example each step sees.

A split is copied to every device once (uint8); every step gathers its batch by index, so no
data crosses the host boundary while training. The order is a pure function of
``(seed, member, epoch)``: resuming from a checkpoint replays exactly the same batches.

Epoch coverage is exact by *pad-and-mask*: an epoch is ``ceil(N / B)`` steps; the last batch is
filled with examples from the start of the permutation and their mask is 0, so every example
counts exactly once in losses and metrics. (BatchNorm batch statistics of that last batch do see
the padding examples.)
"""
from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from kd_jax import parallel


@dataclasses.dataclass(frozen=True)
class DeviceSplit:
  """One split resident on the mesh: images uint8 NHWC and int32 labels (-1 = unlabeled)."""
  images: jax.Array
  labels: jax.Array
  size: int

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.images.shape[1:])


def put_split(images: np.ndarray, labels: np.ndarray, mesh: Mesh) -> DeviceSplit:
  images = np.ascontiguousarray(images, dtype=np.uint8)
  labels = np.asarray(labels, dtype=np.int32)
  return DeviceSplit(parallel.replicate(images, mesh), parallel.replicate(labels, mesh), len(labels))


def steps_per_epoch(size: int, batch_size: int) -> int:
  return max(1, math.ceil(size / batch_size))


@functools.partial(jax.jit, static_argnames=("members", "size", "batch_size", "out_sharding"))
def _plan(seed: jax.Array, stream: jax.Array, epoch: jax.Array, members: int, size: int,
          batch_size: int, out_sharding=None):
  steps = steps_per_epoch(size, batch_size)
  pos = jnp.arange(steps * batch_size)

  def one(member):
    key = jax.random.fold_in(jax.random.key(seed + member), stream)
    key = jax.random.fold_in(key, epoch)
    perm = jax.random.permutation(key, size)
    return perm[pos % size].reshape(steps, batch_size).astype(jnp.int32)

  idx = jax.vmap(one)(jnp.arange(members))
  mask = jnp.broadcast_to((pos < size).reshape(steps, batch_size), idx.shape)
  if out_sharding is not None:
    idx = jax.lax.with_sharding_constraint(idx, out_sharding)
    mask = jax.lax.with_sharding_constraint(mask, out_sharding)
  return idx, mask


def epoch_plan(seed: int, members: int, epoch: int, size: int, batch_size: int,
               mesh: Mesh, stream: int = 0) -> tuple[jax.Array, jax.Array]:
  """Indices and mask ``[members, steps, batch]`` for one epoch, split along the batch axis.

  Member i's order depends on ``seed + i`` only, so it is the order of a model trained alone
  with that seed. ``stream`` separates independent orders of one seed (teacher vs student).
  """
  shard = parallel.sharding(mesh, P(None, None, parallel.AXIS))
  return _plan(jnp.int32(seed), jnp.int32(stream), jnp.int32(epoch), members, size, batch_size,
               out_sharding=shard)


def eval_plan(size: int, batch_size: int, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
  """Sequential indices ``[steps, batch]`` covering a split once, padded tail masked."""
  steps = steps_per_epoch(size, batch_size)
  pos = np.arange(steps * batch_size)
  idx = (pos % size).reshape(steps, batch_size).astype(np.int32)
  mask = (pos < size).reshape(steps, batch_size)
  shard = parallel.sharding(mesh, P(None, parallel.AXIS))
  return jax.device_put(idx, shard), jax.device_put(mask, shard)
