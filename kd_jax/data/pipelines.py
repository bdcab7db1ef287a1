"""Input pipelines: which examples each step sees, and how they reach the devices.

Every pipeline answers the same three questions, so the trainer never knows which one it runs:

* ``resident()`` — a pytree kept on the mesh for the whole run and handed to every step
  (a device-resident split's arrays; a generator's weights; ``{}`` when data streams);
* ``epoch_feeds(...)`` — per call of the jitted step chunk, a *feed*: a pytree whose leaves are
  ``[steps, members, batch, ...]`` and are split over the devices along the batch axis;
* ``materialize(resident, feed)`` — traced inside the step, turns one step's feed into the
  :class:`kd_jax.core.batch.Batch` the step trains on.

Which example a member sees at (epoch, step) is a pure function of ``(seed + member, stream,
epoch)`` (:func:`epoch_plan`), identical for every pipeline; resuming from the checkpoint after
epoch e replays exactly the same batches. Coverage is exact by *pad-and-mask*: an epoch is
``ceil(N / B)`` steps, the last batch is filled from the start of the permutation with mask 0.

Kinds (``data.pipeline``):

* ``device`` — the split lives on every device (uint8); a step gathers its batch by index, so
  nothing crosses the host boundary while training. The default for data that fits.
* ``streamed`` — the split stays on the host (any random-access source: numpy arrays, a
  ``tfds.data_source``); a grain dataset reads each step's examples on background threads and
  each process hands only its own share of the global batch to
  ``jax.make_array_from_process_local_data``. For data that does not fit on the devices.
* a third kind (samples from a generator network) plugs in by the same three methods:
  ``resident`` = the generator's variables, a feed = per-step noise keys, ``materialize`` =
  sample on device. Register it in :data:`PIPELINES`; the trainer needs no change.
  (GAN rows *added* to real batches, Fig 1, are not a pipeline: the step appends them,
  ``kd_jax/train/synthetic.py``, so the real rows of an epoch stay this pipeline's.)
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Iterator, Optional, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from kd_jax.core import parallel
from kd_jax.core.batch import Batch
from kd_jax.core.cache import CHEAP_COMPILE
from kd_jax.data import image_files
from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import Registry

Feed = Any


def steps_per_epoch(size: int, batch_size: int) -> int:
  return max(1, math.ceil(size / batch_size))


# Integer work once per epoch: compiled at XLA's lowest optimization (the same indices, a
# fraction of the compile time, which dominated short runs).
@functools.partial(jax.jit, static_argnames=("members", "size", "batch_size"),
                   compiler_options=CHEAP_COMPILE)
def _plan(seed: jax.Array, stream: jax.Array, epoch: jax.Array, members: int, size: int,
          batch_size: int) -> tuple[jax.Array, jax.Array]:
  steps = steps_per_epoch(size, batch_size)
  pos = jnp.arange(steps * batch_size)

  def one(member):
    key = jax.random.fold_in(jax.random.key(seed + member), stream)
    key = jax.random.fold_in(key, epoch)
    perm = jax.random.permutation(key, size)
    return perm[pos % size].reshape(steps, batch_size).astype(jnp.int32)

  idx = jnp.swapaxes(jax.vmap(one)(jnp.arange(members)), 0, 1)   # [steps, members, batch]
  mask = jnp.broadcast_to((pos < size).reshape(steps, 1, batch_size), idx.shape)
  return idx, mask


def epoch_plan(seed: int, members: int, epoch: int, size: int, batch_size: int,
               stream: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices and mask ``[steps, members, batch]`` of one epoch (host arrays).

  Member i's order depends on ``seed + i`` only, so it is the order of a model trained alone
  with that seed. ``stream`` separates independent orders of one seed (teacher vs student).
  """
  idx, mask = _plan(jnp.int32(seed), jnp.int32(stream), jnp.int32(epoch), members, size,
                    batch_size)
  return np.asarray(idx), np.asarray(mask)


def eval_plan(size: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Sequential indices ``[steps, batch]`` covering a split once, padded tail masked."""
  steps = steps_per_epoch(size, batch_size)
  pos = np.arange(steps * batch_size)
  return ((pos % size).reshape(steps, batch_size).astype(np.int32),
          (pos < size).reshape(steps, batch_size))


class Pipeline(Protocol):
  """What the trainer and the evaluators need of a split (see the module docstring)."""
  size: int
  input_shape: tuple[int, ...]
  labels: np.ndarray

  def resident(self) -> Any: ...

  def epoch_feeds(self, seed: int, stream: int, members: int, epoch: int, batch_size: int,
                  steps_per_call: int) -> Iterator[Feed]: ...

  def eval_feeds(self, batch_size: int, limit: int = 0) -> Iterator[Feed]: ...

  @staticmethod
  def materialize(resident: Any, feed: Feed) -> Batch: ...


def _chunks(steps: int, k: int) -> list[tuple[int, int]]:
  return [(s, min(k, steps - s)) for s in range(0, steps, k)]


@dataclasses.dataclass
class DeviceResident:
  """A split copied once to every device; steps gather their examples by index."""
  inputs: np.ndarray
  labels: np.ndarray
  mesh: Mesh

  def __post_init__(self):
    self.size = len(self.labels)
    self.input_shape = tuple(self.inputs.shape[1:])
    self._resident = parallel.replicate(
        {"inputs": np.ascontiguousarray(self.inputs),
         "labels": np.asarray(self.labels, np.int32)}, self.mesh)

  def resident(self) -> Any:
    return self._resident

  def _put(self, tree: Any, batch_axis: int) -> Any:
    spec = P(*([None] * batch_axis + [parallel.AXIS]))
    return jax.device_put(tree, NamedSharding(self.mesh, spec))

  def epoch_feeds(self, seed: int, stream: int, members: int, epoch: int, batch_size: int,
                  steps_per_call: int) -> Iterator[Feed]:
    idx, mask = epoch_plan(seed, members, epoch, self.size, batch_size, stream)
    for s, k in _chunks(idx.shape[0], steps_per_call):
      yield self._put({"idx": idx[s:s + k], "mask": mask[s:s + k]}, 2)

  def eval_feeds(self, batch_size: int, limit: int = 0) -> Iterator[Feed]:
    idx, mask = eval_plan(min(limit, self.size) if limit else self.size, batch_size)
    for s in range(idx.shape[0]):
      yield self._put({"idx": idx[s], "mask": mask[s]}, 0)

  @staticmethod
  def materialize(resident: Any, feed: Feed) -> Batch:
    i = feed["idx"]
    return Batch(inputs=resident["inputs"][i], labels=resident["labels"][i], mask=feed["mask"])


class ArraySource:
  """Random access to examples on the host, for the streamed pipeline: numpy arrays, or
  encoded files (:class:`kd_jax.data.image_files.ImageFiles`) decoded on the grain threads.

  Any object with ``__len__`` and ``__getitem__(i) -> (input, label)`` works in its place
  (e.g. a ``tfds.data_source`` behind a small adapter); ``take`` is the vectorized fast path,
  ``take_train`` the one that applies a random host transform (crop) seeded per example.
  """

  def __init__(self, inputs: Any, labels: np.ndarray):
    self.inputs, self.labels = inputs, np.asarray(labels, np.int32)
    self.lazy = image_files.is_lazy(inputs)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
    x = self.inputs.decode(np.asarray([i]))[0] if self.lazy else self.inputs[i]
    return x, int(self.labels[i])

  def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = self.inputs.decode(idx) if self.lazy else self.inputs[idx]
    return x, self.labels[idx]

  def take_train(self, idx: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training examples: files get the train transform drawn from ``seeds`` (one row per
    example); arrays are returned as stored (their augmentation runs on the devices)."""
    if not self.lazy:
      return self.take(idx)
    return self.inputs.decode(idx, seeds), self.labels[idx]


def _take(source: Any, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  if hasattr(source, "take"):
    return source.take(idx)
  pairs = [source[int(i)] for i in idx.reshape(-1)]
  x = np.stack([np.asarray(p[0]) for p in pairs]).reshape(idx.shape + np.shape(pairs[0][0]))
  y = np.asarray([p[1] for p in pairs], np.int32).reshape(idx.shape)
  return x, y


def _example_seeds(train_key: tuple[int, int, int], step: int, shape: tuple[int, int],
                   first_col: int) -> np.ndarray:
  """``[members, cols, 6]`` int rows (seed, stream, epoch, step, member, global position)."""
  members, cols = shape
  m, j = np.meshgrid(np.arange(members), first_col + np.arange(cols), indexing="ij")
  head = np.broadcast_to(np.asarray(train_key + (step,), np.int64), (members, cols, 4))
  return np.concatenate([head, m[..., None], j[..., None]], axis=-1)


@dataclasses.dataclass
class HostStreamed:
  """A split read from the host step by step with grain, each process feeding its own shard.

  ``host_transform`` (a grain map on the host threads) runs before transfer, e.g. decoding or
  a random-resized crop; the step's on-device augmentation still applies afterwards.
  """
  source: Any
  mesh: Mesh
  num_threads: int = 2
  prefetch: int = 4
  host_transform: Optional[Callable[[dict], dict]] = None

  def __post_init__(self):
    self.size = len(self.source)
    first, _ = _take(self.source, np.zeros((1,), np.int32))
    self.input_shape = tuple(first.shape[1:])
    self._labels: Optional[np.ndarray] = None

  @property
  def labels(self) -> np.ndarray:
    """All labels (evaluators compare predictions with them): the source's label array when it
    has one, else read once record by record — never all inputs at once."""
    if self._labels is None:
      if hasattr(self.source, "labels"):
        self._labels = np.asarray(self.source.labels, np.int32)
      else:
        self._labels = np.asarray([self.source[i][1] for i in range(self.size)], np.int32)
    return self._labels

  def resident(self) -> Any:
    return {}

  def _local(self, cols: int) -> slice:
    """This process's columns of a global batch of ``cols`` examples."""
    n, p = jax.process_count(), jax.process_index()
    if cols % n:
      raise ValueError(f"a global batch of {cols} does not split over {n} processes")
    return slice(p * cols // n, (p + 1) * cols // n)

  def _dataset(self, idx: np.ndarray, mask: np.ndarray, k: int,
               train_key: Optional[tuple[int, int, int]] = None):
    """grain: step s → this process's examples of step s, batched k steps per call.

    ``train_key`` = (seed, stream, epoch) when training: a source with a host transform draws
    example j of member m at step s from seeds (seed, stream, epoch, s, m, global position of
    j), the same whichever process reads it."""
    import grain  # the streamed path only
    cols = self._local(idx.shape[-1])
    train = train_key is not None and hasattr(self.source, "take_train")

    def load(s: int) -> dict:
      sel = idx[s][..., cols]
      if train:
        x, y = self.source.take_train(sel, _example_seeds(train_key, s, sel.shape, cols.start))
      else:
        x, y = _take(self.source, sel)
      out = {"inputs": x, "labels": y, "mask": mask[s][..., cols]}
      return self.host_transform(out) if self.host_transform else out

    ds = grain.MapDataset.range(idx.shape[0]).map(load).batch(k)
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=self.num_threads,
                                                prefetch_buffer_size=self.prefetch))

  def _global(self, local: dict, batch_axis: int) -> dict:
    spec = P(*([None] * batch_axis + [parallel.AXIS]))
    sharding = NamedSharding(self.mesh, spec)

    def put(a):
      shape = list(a.shape)
      shape[batch_axis] *= jax.process_count()
      return jax.make_array_from_process_local_data(sharding, a, tuple(shape))

    return jax.tree.map(put, local)

  def epoch_feeds(self, seed: int, stream: int, members: int, epoch: int, batch_size: int,
                  steps_per_call: int) -> Iterator[Feed]:
    idx, mask = epoch_plan(seed, members, epoch, self.size, batch_size, stream)
    for local in self._dataset(idx, mask, steps_per_call, (seed, stream, epoch)):
      yield self._global(local, 2)

  def eval_feeds(self, batch_size: int, limit: int = 0) -> Iterator[Feed]:
    idx, mask = eval_plan(min(limit, self.size) if limit else self.size, batch_size)
    for local in self._dataset(idx, mask, 1):
      yield self._global(jax.tree.map(lambda a: a[0], local), 0)

  @staticmethod
  def materialize(resident: Any, feed: Feed) -> Batch:
    del resident
    return Batch(inputs=feed["inputs"], labels=feed["labels"], mask=feed["mask"])


PIPELINES: Registry[Callable[..., Pipeline]] = Registry("input pipeline", "data.pipeline")
def _device(inputs: Any, labels: np.ndarray, mesh: Mesh) -> DeviceResident:
  if image_files.is_lazy(inputs):
    raise ConfigError("data.pipeline='device' holds every image on the devices, but "
                      "data.image_size > 0 decodes files per step; use "
                      "data.pipeline='streamed'")
  return DeviceResident(inputs, labels, mesh)


PIPELINES.register("device")(_device)
def _streamed(inputs: Any, labels: np.ndarray, mesh: Mesh) -> HostStreamed:
  """Arrays: 2 threads copy slices. Files: one thread per core, each decoding one step's
  local batch (Pillow releases the GIL while it decodes and resizes), as many steps ahead."""
  if image_files.is_lazy(inputs):
    threads = max(2, os.cpu_count() or 2)
    return HostStreamed(ArraySource(inputs, labels), mesh, num_threads=threads,
                        prefetch=threads)
  return HostStreamed(ArraySource(inputs, labels), mesh)


PIPELINES.register("streamed")(_streamed)


def make_pipeline(kind: str, inputs: np.ndarray, labels: np.ndarray, mesh: Mesh) -> Pipeline:
  return PIPELINES.get(kind)(inputs, labels, mesh)
