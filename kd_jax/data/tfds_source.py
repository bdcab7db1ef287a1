"""The ``tfds`` source: a prepared TFDS image-classification set read without TensorFlow.

``tfds.data_source`` reads array_record files with no TensorFlow import; only preparing a set
(``tfds build``, the ``prepare`` extra) needs it. Every way a set can be missing gets its own
one-line error with the command that fixes it, and the run records which set it read
(name, version, data_dir) in ``ArrayDataset.meta``, which lands in results.json["sizes"].
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from kd_jax.data.content import FINGERPRINTS
from kd_jax.data.core import SOURCES, ArrayDataset
from kd_jax.core.registry import lookup
from kd_jax.core.errors import ConfigError

EXAMPLES = "e.g. cifar100, cifar10, svhn_cropped, mnist, emnist"


def build_name(builder: Any) -> str:
  """``name`` or ``name/config``: building a bare name builds every config (EMNIST has six)."""
  if builder.builder_config is not None:
    return f"{builder.name}/{builder.builder_config.name}"
  return builder.name


def prepare_command(name: str, data_dir: str) -> str:
  """The shell command, run from a kd_jax clone, that writes ``name`` where training reads it."""
  return (f'pip install -e ".[prepare]" && tfds build {name} --data_dir={data_dir} '
          "--file_format=array_record")


def _builder(tfds: Any, name: str, data_dir: str | None, root: str, prefix: str) -> Any:
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError as e:
    raise ConfigError(
        f"{prefix}.name={name!r} is neither a tfds catalog dataset nor a dataset prepared in "
        f"{root}; point {prefix.split('.')[0]}.data_dir at the folder that holds {name}/ or "
        f"use a catalog name ({EXAMPLES})") from e


#: What a manually downloaded set needs in ``<data_dir>/downloads/manual/`` before ``tfds build``.
MANUAL_FILES = {"imagenet2012": "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
                                "(from image-net.org, after registering)"}


def not_prepared(builder: Any, name: str, root: str, prefix: str) -> str:
  """The one line for a set that is not there: where its files go (manual downloads) and the
  one command that prepares it."""
  if getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None):
    manual = f"{root}/downloads/manual"
    files = MANUAL_FILES.get(builder.name, "the files tfds names in its manual-download "
                             f"instructions for {builder.name}")
    return (f"{prefix}.name={name!r}: the tfds dataset is not prepared in {root}; put "
            f"{files} in {manual}/ and prepare it with: "
            f"{prepare_command(build_name(builder), root)} --manual_dir={manual}")
  return (f"{prefix}.name={name!r}: the tfds dataset is not prepared in {root}; "
          f"prepare it with: {prepare_command(build_name(builder), root)}")


def _open_split(tfds: Any, builder: Any, name: str, split: str, data_dir: str | None,
                root: str, prefix: str, decoders: Any = None) -> Any:
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False,
                            decoders=decoders)
  except Exception as e:  # tfds raises several types for "not there"; diagnose below.
    if not builder.is_prepared():
      raise ConfigError(not_prepared(builder, name, root, prefix)) from e
    if "file format" in str(e).lower():
      # `tfds convert_format` in place adds array_record files that tfds ignores for catalog
      # names (it trusts dataset_info.json), so the same error would come back: rebuild.
      raise ConfigError(
          f"{prefix}.name={name!r}: {builder.data_dir} is stored as "
          f"{builder.info.file_format.value}, not array_record (read without TensorFlow); "
          f"build it into a fresh folder with: "
          f"{prepare_command(build_name(builder), '<new dir>')} and set "
          f"{prefix.split('.')[0]}.data_dir=<new dir>") from e
    raise ConfigError(f"{prefix}.name={name!r}: split {split!r} cannot be read from "
                      f"{builder.data_dir}: {e}") from e


@SOURCES.register("tfds")
def load_tfds(cfg_like: Any, prefix: str = "data") -> ArrayDataset:
  """Reads a prepared TFDS image-classification dataset into numpy (``image``/``label``)."""
  import tensorflow_datasets as tfds  # Slow import; only this source needs it.

  name = str(lookup(cfg_like, "name", "") or "")
  if not name:
    raise ConfigError(f"{prefix}.name is empty; with {prefix}.source='tfds' set it to a tfds "
                      f"dataset name, {EXAMPLES}")
  data_dir = os.path.expanduser(str(lookup(cfg_like, "data_dir", "") or "")) or None
  root = data_dir or tfds.core.constants.get_default_data_dir()
  builder = _builder(tfds, name, data_dir, root, prefix)
  features = builder.info.features
  if "image" not in features or "label" not in features:
    raise ConfigError(f"{prefix}.name={name!r} has no 'image'/'label' features; the tfds "
                      "source reads image-classification datasets only")

  lazy = int(lookup(cfg_like, "image_size", 0) or 0) > 0

  def read(split: str) -> tuple[Any, np.ndarray]:
    if lazy:  # ImageNet: records stay encoded, decoded per step by the streamed pipeline
      opened = _open_split(tfds, builder, name, split, data_dir, root, prefix,
                           decoders={"image": tfds.decode.SkipDecoding()})
      return _record_files(opened, cfg_like)
    return _read_records(_open_split(tfds, builder, name, split, data_dir, root, prefix),
                         prefix, name)

  train_images, train_labels = read("train")
  test_images = test_labels = None
  if "test" in splits_read(builder):
    test_images, test_labels = read("test")
  meta = dict(source="tfds", name=builder.info.full_name, version=str(builder.info.version),
              data_dir=str(builder.data_dir), tfds_version=tfds.__version__)
  if builder.name == "emnist":
    train_images, test_images = _emnist_orientation(cfg_like, train_images, test_images, meta)
  label = features["label"]
  return ArrayDataset(train_images, train_labels, test_images, test_labels,
                      num_classes=int(label.num_classes), class_names=list(label.names),
                      meta=meta)


def splits_read(builder: Any) -> tuple[str, ...]:
  """train, and test when the set has one. The split list is empty when tfds could not read
  dataset_info.json (mocked datasets); then the test split is tried and a failure means none."""
  split_names = set(builder.info.splits.keys())
  return ("train", "test") if "test" in split_names or not split_names else ("train",)


@FINGERPRINTS.register("tfds")
def fingerprint_tfds(cfg_like: Any, prefix: str = "data") -> dict:
  """name/config/version and the splits read (+ EMNIST's orientation): never data_dir, so
  hosts that keep the prepared set in different folders share its teachers."""
  import tensorflow_datasets as tfds  # Slow import; only this source needs it.

  name = str(lookup(cfg_like, "name", "") or "")
  if not name:
    raise ConfigError(f"{prefix}.name is empty; with {prefix}.source='tfds' set it to a tfds "
                      f"dataset name, {EXAMPLES}")
  data_dir = os.path.expanduser(str(lookup(cfg_like, "data_dir", "") or "")) or None
  builder = _builder(tfds, name, data_dir, data_dir or tfds.core.constants.get_default_data_dir(),
                     prefix)
  out = {"tfds": builder.info.full_name, "splits": list(splits_read(builder))}
  if builder.name == "emnist":
    out["orientation"] = ("as published" if bool(lookup(cfg_like, "emnist_transposed", False))
                          else "mnist")
  return out


def _emnist_orientation(cfg_like: Any, train: np.ndarray, test: np.ndarray | None,
                        meta: dict) -> tuple[np.ndarray, np.ndarray | None]:
  """TFDS stores EMNIST as published: mirrored and rotated, i.e. transposed against MNIST.

  MNIST teachers label these images (paper Fig. 2), so by default put them in MNIST
  orientation. data.emnist_transposed keeps them as stored, which is what the official code
  trained on (torchvision's EMNIST, gnosis/datasets/emnist.py, does not transpose).
  """
  if bool(lookup(cfg_like, "emnist_transposed", False)):
    meta["orientation"] = "as published (transposed against MNIST)"
    return train, test
  meta["orientation"] = "transposed to MNIST orientation"
  flip = lambda a: a.transpose(0, 2, 1, 3).copy()  # noqa: E731
  return flip(train), (None if test is None else flip(test))


def _record_files(source: Any, cfg_like: Any) -> tuple[Any, np.ndarray]:
  """Encoded images of a tfds data source as ImageFiles, and every label (read once)."""
  from kd_jax.data.folder_files import transform_from
  from kd_jax.data.image_files import ImageFiles, RecordReader
  labels = np.fromiter((int(source[i]["label"]) for i in range(len(source))), np.int32,
                       count=len(source))
  return ImageFiles(RecordReader(source), transform_from(cfg_like)), labels


def _read_records(source: Any, prefix: str, name: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads every record of a tfds data source into one image and one label array."""
  n = len(source)
  images: np.ndarray | None = None
  labels = np.empty((n,), np.int32)
  for i in range(n):
    ex = source[i]
    img = np.asarray(ex["image"])
    if img.ndim == 2:
      img = img[..., None]
    if images is None:
      images = np.empty((n,) + img.shape, np.uint8)
    if img.shape != images.shape[1:]:
      raise ConfigError(f"{prefix}.name={name!r} has images of different sizes "
                        f"({images.shape[1:]} and {img.shape}); kd_jax needs one size")
    images[i] = img
    labels[i] = int(ex["label"])
  if images is None:
    raise ConfigError(f"{prefix}.name={name!r}: the split is empty")
  return images, labels
