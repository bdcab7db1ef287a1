"""An experiment's data: its three splits as input pipelines, and how images become inputs.

``load(config.data, mesh)`` reads the source, carves the teacher / distillation / test splits
(``kd_jax.data.splits``) and wraps each in the pipeline ``data.pipeline`` names. The modality's
``prepare(batch, key)`` runs inside the step, after the pipeline has produced the batch: images
uint8 → [0, 1] → augmentation → normalization; text (sources in ``text.TEXT_SOURCES``) token
ids → ``(tokens, lengths)`` (``kd_jax.data.text``).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from ml_collections import ConfigDict

from kd_jax.core import parallel
from kd_jax.core.batch import Batch
from kd_jax.data import augment as augment_lib
from kd_jax.data import image_files, pipelines, sources, splits as splits_lib, text
from kd_jax.core.errors import ConfigError

Array = jax.Array


@dataclasses.dataclass
class ExperimentData:
  """The experiment's splits, on the host and as pipelines."""
  host: splits_lib.Splits
  teacher: pipelines.Pipeline
  distill: pipelines.Pipeline
  test: pipelines.Pipeline
  num_classes: int
  input_shape: tuple[int, ...]
  normalize: Callable[[Array], Array]
  modality: str = "image"        # image | text
  model_options: dict = dataclasses.field(default_factory=dict)  # text: {"vocab_size": n}
  val: pipelines.Pipeline | None = None  # examples held out of distillation (data.distill_val)

  def prepare(self, policy: str = ""):
    """The step's input transform with an augmentation policy ('' = none)."""
    if self.modality == "text":
      return text.token_prepare(policy)
    return image_prepare(augment_lib.make_augment(policy), self.normalize)

  def host_inputs(self, images_u8: np.ndarray, n: int = 0):
    """The first ``n`` (0 = all) host inputs as the model takes them (images scaled and
    normalized like the training inputs; text as ``(tokens, lengths)``)."""
    x = images_u8[:n] if n else images_u8
    if image_files.is_lazy(x):  # files: the eval transform's pixels
      x = x.decode(np.arange(len(x)))
    if self.modality == "text":
      tokens = jnp.asarray(x, jnp.int32)
      return tokens, text.lengths_of(tokens)
    return self.normalize(jnp.asarray(x, jnp.float32) / 255.0)


def image_prepare(augment, normalize) -> Callable[[Batch, Array], tuple[Array, Array]]:
  """uint8 → [0, 1] → augmentation (per-example keys from global positions) → normalization."""

  def prepare(batch: Batch, key: Array) -> tuple[Array, Array]:
    pos = parallel.local_positions(batch.inputs.shape[0])
    keys = augment_lib.example_keys_for(jax.random.fold_in(key, 0), pos)
    x = batch.inputs.astype(jnp.float32) / 255.0
    x, is_real = augment(x, keys, jax.random.fold_in(key, 1))
    return normalize(x), is_real & batch.real()

  return prepare


def load_splits(data: ConfigDict) -> splits_lib.Splits:
  """The host splits of ``data`` (``config.data``)."""
  ds = sources.load_source(data)
  host = splits_lib.make_splits(ds, data, sources.load_ood(data))
  if "vocab" in ds.meta:  # text: the vocabulary the model's embedding is sized by
    host.info.update(vocab_size=len(ds.meta["vocab"]), vocab_sha256=ds.meta["vocab_sha256"])
  return host


def normalizer(host: splits_lib.Splits, mode: str) -> Callable[[Array], Array]:
  """``data.normalization`` with its statistics (zscore: of the teacher's training images)."""
  augment_lib.check_normalization(mode)
  mean = std = None
  if mode == "zscore":
    if image_files.is_lazy(host.teacher_x):
      raise ConfigError("data.normalization='zscore' computes statistics over every teacher "
                        "image in memory; images decoded per step (data.image_size > 0) "
                        "use data.normalization='imagenet' (fixed ImageNet mean and std)")
    x = host.teacher_x.astype(np.float64) / 255.0
    mean = tuple(x.mean(axis=(0, 1, 2)).tolist())
    std = tuple(x.std(axis=(0, 1, 2)).tolist())
  return functools.partial(augment_lib.normalize, mode=mode, mean=mean, std=std)


def load(data: ConfigDict, mesh: Mesh, host: splits_lib.Splits | None = None) -> ExperimentData:
  """``data`` (``config.data``) as pipelines on ``mesh``; ``host``: its splits, if read already."""
  host = load_splits(data) if host is None else host
  kind = data.pipeline
  make = lambda x, y: pipelines.make_pipeline(kind, x, y, mesh)
  is_text = data.source in text.TEXT_SOURCES
  return ExperimentData(
      host=host,
      teacher=make(host.teacher_x, host.teacher_y),
      distill=make(host.distill_x, host.distill_y),
      test=make(host.test_x, host.test_y),
      num_classes=int(host.num_classes),
      input_shape=tuple(host.teacher_x.shape[1:]),
      normalize=(lambda x: x) if is_text else normalizer(host, data.normalization),
      modality="text" if is_text else "image",
      model_options={"vocab_size": int(host.info["vocab_size"])} if is_text else {},
      val=make(host.val_x, host.val_y) if len(host.val_y) else None)
