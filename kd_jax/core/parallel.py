"""Maps per-device functions over a 1-D ``data`` device mesh (pmap semantics, current JAX API).

Steps are written for one device: they see a local batch and call ``lax.psum``/``pmean`` over
:data:`AXIS`. :func:`device_map` wraps them with ``jax.shard_map`` inside ``jax.jit``, so the same
code runs on 1 CPU, 4 fake CPU devices in the tests, or 8 accelerators. Datasets and parameters
are replicated; index arrays are split along their batch axis.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from kd_jax.core.errors import ConfigError

AXIS = "data"
REPLICATED = P()


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh over the first ``num_devices`` devices (0 = all); on many hosts, all devices of
  all hosts (each host feeds its own)."""
  # Each process's devices side by side: its streamed columns are one contiguous block of the
  # global batch, as kd_jax.data.pipelines.HostStreamed hands them over.
  devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  if jax.process_count() > 1 and num_devices not in (0, len(devices)):
    raise ConfigError(f"run.num_devices={num_devices}, but a run on {jax.process_count()} "
                      f"processes uses all {len(devices)} devices; set run.num_devices=0")
  n = num_devices or len(devices)
  if n > len(devices):
    raise ConfigError(f"run.num_devices={num_devices} but only {len(devices)} devices are visible; "
                      f"use at most {len(devices)} (0 = all)")
  return Mesh(np.asarray(devices[:n]), (AXIS,))


def num_shards(mesh: Mesh) -> int:
  return mesh.shape[AXIS]


def check_batch(batch_size: int, mesh: Mesh, key: str) -> None:
  if batch_size % num_shards(mesh):
    raise ConfigError(f"{key}={batch_size} is not divisible by the {num_shards(mesh)} devices; "
                      f"use a multiple of {num_shards(mesh)}")


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Puts a pytree on every device of the mesh (parameters, datasets).

  A leaf that lives on this process's devices only (a teacher restored from the store, the
  result of a local computation) goes through the host: on many hosts, device-to-device copies
  into a mesh that spans other processes are not supported, while every process handing the
  same host value is.
  """
  target = NamedSharding(mesh, REPLICATED)

  def put(x: Any) -> Any:
    if isinstance(x, jax.Array) and x.is_fully_addressable and not target.is_fully_addressable:
      x = np.asarray(x)
    return jax.device_put(x, target)

  return jax.tree.map(put, tree)


def sharding(mesh: Mesh, spec: P) -> NamedSharding:
  return NamedSharding(mesh, spec)


def device_map(fn: Callable[..., Any], mesh: Mesh, in_specs: Sequence[Any], out_specs: Any,
               donate_argnums: Sequence[int] = ()) -> Callable[..., Any]:
  """``jit(shard_map(fn))``: fn runs once per device on its shard; specs follow shard_map."""
  mapped = jax.shard_map(fn, mesh=mesh, in_specs=tuple(in_specs), out_specs=out_specs,
                         check_vma=False)
  return jax.jit(mapped, donate_argnums=tuple(donate_argnums))


def local_positions(local_batch: int) -> jax.Array:
  """Global positions of this device's examples in the global batch (for per-example keys)."""
  return jax.lax.axis_index(AXIS) * local_batch + jax.numpy.arange(local_batch)


def host(tree: Any) -> Any:
  """Numpy copy of a pytree of device arrays, also of global arrays that span other processes
  (replicated: the local copy; sharded: gathered from every process)."""

  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
      from jax.experimental import multihost_utils
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return jax.device_get(x)

  return jax.tree.map(one, tree)
