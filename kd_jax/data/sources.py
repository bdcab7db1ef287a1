"""Where the images come from: every source returns the same host-side ``ArrayDataset``.

Sources are small enough (MNIST, CIFAR, SVHN, EMNIST) to hold as ``uint8`` arrays in host
memory, so each one is read once into numpy and everything downstream (splits, the device
pipeline) works on plain arrays. A source is found by name in ``SOURCES`` (``data.source``):

- ``mnist_embedded``: 5,000 real MNIST images shipped inside the package (no network, no test
  split: ``splits.make_splits`` carves one).
- ``tfds``: a prepared TFDS dataset read through ``tfds.data_source`` (array_record files), so
  training needs no TensorFlow. Only preparing the dataset (``tfds build``) needs it.
- ``image_folder``: ``train/<class>/*.png|jpg`` (and optionally ``test/<class>/*`` or
  ``val/<class>/*``) in a folder or a tar archive, decoded with Pillow once and cached as one
  ``.npz``; with ``data.image_size`` > 0 (ImageNet) kept as files instead and decoded per step
  by the streamed pipeline (``kd_jax.data.folder_files``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kd_jax import recipes
from kd_jax.core import atomic
from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import lookup
# The registration list: each source module adds its sources to SOURCES when imported.
from kd_jax.data import content, mnist1d_source, tfds_source, text_sources  # noqa: F401
from kd_jax.data.core import (CACHE_FORMAT, SOURCES, SPLIT_DIRS, ArrayDataset, archive_errors,
                              cache_file, default_cache_dir, iter_tar, parse_member, sha256_file)

ASSETS = Path(__file__).resolve().parent / "assets"
MNIST_EMBEDDED = ASSETS / "mnist_5k.npz"


def load_source(cfg_like: Any, prefix: str = "data") -> ArrayDataset:
  """Loads the dataset that ``cfg_like.source`` names.

  ``cfg_like`` needs ``source`` and, depending on it, ``name``, ``path``, ``data_dir``,
  ``cache_dir``, ``emnist_transposed``. ``prefix`` is the config path used in error messages (``data.ood`` for OOD).
  """
  source = lookup(cfg_like, "source", "")
  if source not in SOURCES:
    raise ConfigError(f"{prefix}.source={source!r} is not a known data source; "
                      f"choose one of: {', '.join(SOURCES.names())}")
  return SOURCES.get(source)(cfg_like, prefix)


def content_fingerprint(cfg_like: Any, prefix: str = "data") -> dict:
  """What ``load_source`` would read, as content (hashes, tfds name + version), never a path:
  a teacher's identity (``kd_jax.runner.identity.teacher_key``). Decodes nothing; the
  source's one-line ConfigError when the data is not there."""
  source = lookup(cfg_like, "source", "")
  if source not in SOURCES:
    raise ConfigError(f"{prefix}.source={source!r} is not a known data source; "
                      f"choose one of: {', '.join(SOURCES.names())}")
  return dict(content.fingerprint(cfg_like, source, prefix), source=source)


def load_ood(data_cfg: Any) -> ArrayDataset | None:
  """Loads ``data.ood`` (reusing ``data.data_dir``, ``cache_dir``, ``emnist_transposed``), or
  None when unused."""
  ood = lookup(data_cfg, "ood", None)
  if ood is None or int(lookup(ood, "num", 0) or 0) <= 0:
    return None
  if not lookup(ood, "source", ""):
    raise ConfigError(f"data.ood.num={lookup(ood, 'num')} but data.ood.source is empty; "
                      f"set data.ood.source to one of: {', '.join(SOURCES.names())}")
  merged = {k: lookup(ood, k, "") for k in ("source", "name", "path")}
  merged.update(data_dir=lookup(data_cfg, "data_dir", ""),
                cache_dir=lookup(data_cfg, "cache_dir", ""),
                emnist_transposed=lookup(data_cfg, "emnist_transposed", False))
  return load_source(merged, prefix="data.ood")


# ------------------------------------------------------------------ mnist_embedded


@SOURCES.register("mnist_embedded")
def load_mnist_embedded(cfg_like: Any = None, prefix: str = "data") -> ArrayDataset:
  """The 5,000-image MNIST subset in ``assets/`` (500 per digit, no test split)."""
  del cfg_like, prefix  # Nothing to choose.
  raw = MNIST_EMBEDDED.read_bytes()
  with np.load(io.BytesIO(raw), allow_pickle=False) as z:
    images = np.ascontiguousarray(z["images"], dtype=np.uint8)
    labels = z["labels"].astype(np.int32)
    origin = str(z["source"])
  return ArrayDataset(
      train_images=images, train_labels=labels, test_images=None, test_labels=None,
      num_classes=10, class_names=[str(i) for i in range(10)],
      meta=dict(source="mnist_embedded", file=str(MNIST_EMBEDDED),
                sha256=hashlib.sha256(raw).hexdigest(), origin=origin))


@content.FINGERPRINTS.register("mnist_embedded")
def fingerprint_mnist_embedded(cfg_like: Any = None, prefix: str = "data") -> dict:
  del cfg_like, prefix
  return {"file": content.file_digest(MNIST_EMBEDDED)}


# ------------------------------------------------------------------ image_folder


def _iter_folder(root: Path) -> Iterator[tuple[str, str, str, bytes]]:
  for path in sorted(root.rglob("*")):
    if path.is_file() and (parsed := parse_member(path.relative_to(root).as_posix())):
      yield (*parsed, path.read_bytes())


def _iter_tar(archive: Path) -> Iterator[tuple[str, str, str, bytes]]:
  # Stream mode ("r|*"): members are read in order straight from the (compressed) file,
  # nothing is extracted to disk and the archive is never seeked.
  for member, data in iter_tar(archive):
    if parsed := parse_member(member.name):
      yield (*parsed, data)


def _decode_image(data: bytes) -> np.ndarray:
  """Decodes PNG/JPEG bytes to uint8 HxWx1 (grayscale files) or HxWx3 (everything else)."""
  from PIL import Image  # Only image folders need Pillow.

  with Image.open(io.BytesIO(data)) as im:
    gray = im.mode in ("1", "L", "LA", "I", "I;16", "F")
    mode = "L" if gray else "RGB"
    arr = np.asarray(im if im.mode == mode else im.convert(mode), dtype=np.uint8)
  return arr[..., None] if arr.ndim == 2 else arr


def _stack(items: list[tuple[str, np.ndarray]], channels: int, path: Path,
           prefix: str) -> np.ndarray:
  if not items:
    return np.zeros((0, 1, 1, channels), np.uint8)
  shape = items[0][1].shape[:2]
  out = np.empty((len(items),) + shape + (channels,), np.uint8)
  for i, (rel, img) in enumerate(items):
    if img.shape[:2] != shape:
      raise ConfigError(f"{prefix}.path={str(path)!r}: {rel} is {img.shape[1]}x{img.shape[0]} "
                        f"but {items[0][0]} is {shape[1]}x{shape[0]}; all images must have "
                        "one size")
    out[i] = img if img.shape[2] == channels else np.repeat(img, channels, axis=2)
  return out


def _decode_folder(path: Path, prefix: str) -> dict[str, Any]:
  """Decodes every image under ``path``; returns the arrays the cache file stores."""
  entries = _iter_tar(path) if path.is_file() else _iter_folder(path)
  decoded: dict[tuple[str, str, str], np.ndarray] = {}
  with archive_errors(path, prefix):
    for split, cls, rel, data in entries:
      try:
        decoded[(split, cls, rel)] = _decode_image(data)
      except OSError as e:  # Pillow's UnidentifiedImageError is an OSError.
        where = f"{path / rel}" if path.is_dir() else f"{rel} in {path}"
        raise ConfigError(f"{prefix}.path: cannot decode the image {where} "
                          f"({type(e).__name__}); delete it or replace it with a PNG/JPEG "
                          "file") from None
  class_names = sorted({cls for split, cls, _ in decoded if split == "train"})
  if not class_names:
    raise ConfigError(f"{prefix}.path={str(path)!r} holds no train/<class>/*.png|jpg images")
  extra = sorted({cls for split, cls, _ in decoded if split == "test"} - set(class_names))
  if extra:
    raise ConfigError(f"{prefix}.path={str(path)!r}: test classes {extra} have no train/ "
                      "folder; test classes must be a subset of train classes")
  # Grayscale only when every image is; a mixed folder becomes RGB (gray repeated).
  channels = max(img.shape[2] for img in decoded.values())
  index = {c: i for i, c in enumerate(class_names)}
  arrays: dict[str, Any] = {}
  for split in SPLIT_DIRS:
    keys = sorted(k for k in decoded if k[0] == split)  # Archive order does not matter.
    arrays[f"{split}_images"] = _stack([(k[2], decoded[k]) for k in keys], channels, path,
                                       prefix)
    arrays[f"{split}_labels"] = np.array([index[k[1]] for k in keys], np.int32)
  arrays["class_names"] = np.array(class_names)
  meta = dict(source="image_folder", path=str(path))
  if path.is_file():
    meta["sha256"] = sha256_file(path)
  meta["num_files"] = str(len(decoded))
  arrays["meta"] = np.array(json.dumps(meta))
  arrays["format"] = np.array(CACHE_FORMAT)
  return arrays


def _read_cache(cache: Path) -> dict[str, Any] | None:
  """The cached arrays, or None when the file is absent or unreadable (then re-decode)."""
  if not cache.exists():
    return None
  try:
    with np.load(cache, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    if int(arrays["format"]) != CACHE_FORMAT:
      return None
    return arrays
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # Truncated, foreign
    return None


def _write_cache(cache: Path, arrays: dict[str, Any]) -> None:
  """Writes to a temp file in the same folder and renames: readers never see half a file."""
  with atomic.replacing(cache, "wb") as f:
    np.savez(f, **arrays)  # Uncompressed: loads in a fraction of a second.
  stem = cache.name.rsplit("-", 1)[0]
  for old in cache.parent.glob(f"{stem}-*.npz"):
    if old != cache:
      old.unlink(missing_ok=True)


#: The one line printed when a named dataset (``data.name``) that configs find on their own
#: (kd_jax.recipes.cifar10_data) is nowhere to be found; the ways are listed in lookup order.
HOW_TO_GET = {
    "cifar10": lambda: (
        "CIFAR-10 not found; provide it one of these ways (looked up in this order): set "
        f"{recipes.CIFAR10_ENV} to a folder or .tar.gz holding train/<class>/*.png|jpg and "
        "test/<class>/*.png|jpg; prepare it with tfds (pip install -e \".[prepare]\" && tfds "
        "build cifar10 --file_format=array_record, into $TFDS_DATA_DIR or ~/tensorflow_datasets); "
        f"or put cifar10-jpeg.tar.gz in ../shared/data beside the clone "
        f"({recipes.SIBLING_CIFAR10}); --config.data.path=<folder or tar> overrides them for "
        "one command"),
}
#: Environment variables that set ``data.path`` in figure configs: an error names the variable.
PATH_ENVS = (recipes.CIFAR10_ENV, "KD_JAX_IMAGENET")


def check_path(cfg_like: Any, prefix: str = "data") -> Path:
  """The folder or tar an ``image_folder``/``text_folder`` source reads, or a ConfigError
  naming where the path came from (``data.path`` or the environment variable that set it)."""
  raw = str(lookup(cfg_like, "path", "") or "")
  text = lookup(cfg_like, "source", "") == "text_folder"
  layout = ("train/<class>/*.txt (e.g. aclImdb_v1.tar.gz)" if text
            else "train/<class>/*.png|jpg")
  if not raw and lookup(cfg_like, "name", "") in HOW_TO_GET:
    raise ConfigError(HOW_TO_GET[lookup(cfg_like, "name", "")]())
  if not raw:
    raise ConfigError(f"{prefix}.path is empty; with {prefix}.source="
                      f"{lookup(cfg_like, 'source', '')!r} set it to a folder or .tar/.tar.gz "
                      f"holding {layout}")
  path = Path(raw).expanduser().resolve()
  if not path.exists():
    env = next((v for v in PATH_ENVS if os.environ.get(v) == raw), None)
    where = (f"{env}={raw!r} (which sets {prefix}.path)" if env else f"{prefix}.path={raw!r}")
    raise ConfigError(f"{where} does not exist; point it to a folder or .tar/.tar.gz holding "
                      f"{layout}")
  return path


def _folder_path(cfg_like: Any, prefix: str) -> Path:
  """``data.path`` resolved (``check_path``), and a file must be a tar archive."""
  path = check_path(cfg_like, prefix)
  raw = str(lookup(cfg_like, "path", ""))
  if path.is_file() and not tarfile.is_tarfile(path):
    raise ConfigError(f"{prefix}.path={raw!r} is neither a folder nor a tar archive "
                      "(.tar, .tar.gz)")
  return path


@SOURCES.register("image_folder")
def load_image_folder(cfg_like: Any, prefix: str = "data") -> ArrayDataset:
  """Loads ``train/<class>/*`` and ``test/<class>/*`` (or ``val/<class>/*``) from a folder or
  tar archive.

  Labels are indices into the sorted class names. Decoded arrays are cached in
  ``cache_dir`` (default ``~/.cache/kd_jax``) under a key of path, size and mtime. With
  ``image_size`` > 0 (ImageNet-sized folders) nothing is decoded here: the images stay files,
  decoded and cropped per step by the streamed pipeline (``kd_jax.data.folder_files``).
  """
  path = _folder_path(cfg_like, prefix)
  cache_dir = Path(str(lookup(cfg_like, "cache_dir", "") or "")
                   or default_cache_dir()).expanduser()
  try:
    cache_dir.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"data.cache_dir={str(cache_dir)!r} cannot be created ({e}); set "
                      "data.cache_dir to a writable folder") from e
  if int(lookup(cfg_like, "image_size", 0) or 0) > 0:
    from kd_jax.data import folder_files  # files decoded per step (ImageNet-sized folders)
    return folder_files.load(path, cache_dir, cfg_like, prefix)
  cache = cache_file(cache_dir, path)
  arrays = _read_cache(cache)
  hit = arrays is not None
  if arrays is None:
    arrays = _decode_folder(path, prefix)
    try:
      _write_cache(cache, arrays)
    except OSError as e:
      raise ConfigError(f"data.cache_dir={str(cache_dir)!r} is not writable ({e}); set "
                        "data.cache_dir to a writable folder") from e
  meta = json.loads(str(arrays["meta"]))
  meta.update(cache=str(cache), cache_hit=str(hit))
  has_test = len(arrays["test_labels"]) > 0
  class_names = [str(c) for c in arrays["class_names"]]
  return ArrayDataset(
      train_images=arrays["train_images"], train_labels=arrays["train_labels"],
      test_images=arrays["test_images"] if has_test else None,
      test_labels=arrays["test_labels"] if has_test else None,
      num_classes=len(class_names), class_names=class_names, meta=meta)


@content.FINGERPRINTS.register("image_folder")
def fingerprint_image_folder(cfg_like: Any, prefix: str = "data") -> dict:
  """The archive's sha256, or the folder's listing and contents (only the images read)."""
  return content.path_digest(_folder_path(cfg_like, prefix), lambda rel: bool(parse_member(rel)))
