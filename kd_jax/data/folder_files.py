"""ImageNet-layout folders kept as files: ``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG``.

The ``image_folder`` source with ``data.image_size`` > 0 comes here: the folder is listed (not
decoded), labels are indices of the sorted class folder names (for ImageNet the sorted wnids:
tfds ``imagenet2012``'s label order), and the images become an
:class:`kd_jax.data.image_files.ImageFiles` that the streamed pipeline decodes per step. A tar
archive cannot be read at random, so it is extracted once into ``data.cache_dir`` (atomically:
a folder renamed into place when complete) and read from there.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from kd_jax.core import atomic
from kd_jax.core.registry import lookup
from kd_jax.data import core as data_core
from kd_jax.data.image_files import FileReader, ImageFiles
from kd_jax.data.transforms import ImageTransform
from kd_jax.core.errors import ConfigError


def transform_from(cfg_like: Any) -> ImageTransform:
  """``data.image_size`` / ``eval_resize`` (0 = size·256/224) / ``crop_min_scale``."""
  size = int(lookup(cfg_like, "image_size", 0) or 0)
  resize = int(lookup(cfg_like, "eval_resize", 0) or 0) or int(round(size * 256 / 224))
  scale = float(lookup(cfg_like, "crop_min_scale", 0.08))
  if resize < size:
    raise ConfigError(f"data.eval_resize={resize} is smaller than data.image_size={size}; the "
                      "eval center crop needs eval_resize >= image_size (0 = image_size·256/224)")
  if not 0 < scale <= 1:
    raise ConfigError(f"data.crop_min_scale={scale} must be in (0, 1]")
  return ImageTransform(size=size, resize=resize, min_scale=scale)


def _list(root: Path) -> dict[str, list[tuple[str, str]]]:
  """{split: sorted [(class, relpath)]} of every image under ``root`` (os.walk: fast on 1M)."""
  found: dict[str, list[tuple[str, str]]] = {split: [] for split in data_core.SPLIT_DIRS}
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    rel_dir = Path(folder).relative_to(root).as_posix()
    for name in files:
      parsed = data_core.parse_member(f"{rel_dir}/{name}")
      if parsed:
        found[parsed[0]].append((parsed[1], parsed[2]))
  return {split: sorted(items, key=lambda t: t[1]) for split, items in found.items()}


def _extract(archive: Path, cache_dir: Path, prefix: str = "data") -> Path:
  """The archive's images as a folder in ``cache_dir`` (extracted on first use)."""
  target = cache_dir / (data_core.cache_file(cache_dir, archive).stem + ".files")
  if target.is_dir():
    return target
  print(f"[data] extracting {archive} into {target} (once)", flush=True)
  atomic.clean_leftovers(target)  # a killed extraction's folder
  tmp = atomic.temp_name(target)
  tmp.mkdir()
  try:
    with data_core.archive_errors(archive, prefix):
      for member, data in data_core.iter_tar(archive):
        if parsed := data_core.parse_member(member.name):
          dest = tmp / parsed[2]
          dest.parent.mkdir(parents=True, exist_ok=True)
          dest.write_bytes(data)
    os.replace(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return target


def load(path: Path, cache_dir: Path, cfg_like: Any, prefix: str) -> data_core.ArrayDataset:
  """The folder (or extracted tar) as encoded ImageFiles with labels (module docstring)."""
  transform = transform_from(cfg_like)
  root = _extract(path, cache_dir, prefix) if path.is_file() else path
  listed = _list(root)
  class_names = sorted({cls for cls, _ in listed["train"]})
  if not class_names:
    raise ConfigError(f"{prefix}.path={str(path)!r} holds no train/<class>/*.png|jpg images")
  index = {c: i for i, c in enumerate(class_names)}
  extra = sorted({cls for cls, _ in listed["test"]} - set(index))
  if extra:
    raise ConfigError(f"{prefix}.path={str(path)!r}: test/val classes {extra[:3]} have no "
                      "train/ folder; test classes must be a subset of train classes")

  def split(name: str):
    items = listed[name]
    if not items:
      return None, None
    files = ImageFiles(FileReader(root, [rel for _, rel in items]), transform)
    return files, np.asarray([index[c] for c, _ in items], np.int32)

  train_x, train_y = split("train")
  test_x, test_y = split("test")
  meta = dict(source="image_folder", path=str(path), decoded="per step",
              num_files=str(len(listed["train"]) + len(listed["test"])),
              transform=str(transform))
  return data_core.ArrayDataset(train_x, train_y, test_x, test_y, num_classes=len(class_names),
                              class_names=class_names, meta=meta)
