"""What every data source shares: the host-side ``ArrayDataset`` they all return, the ``SOURCES``
registry they add themselves to, and the helpers for files (folder layout, fingerprints,
checksums, the decode cache's folder). Source modules import this, never each other's
private names; ``kd_jax.data.sources`` imports every source module (the registration list).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import lzma
import tarfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import Registry

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLIT_DIRS = ("train", "test")
#: ImageNet's layout calls its test split val/ (val/<wnid>/*.JPEG).
SPLIT_ALIASES = {"val": "test"}
# Bump when the decoded layout changes so stale caches are ignored.
CACHE_FORMAT = 1


@dataclasses.dataclass
class ArrayDataset:
  """A labelled image (or token-sequence) dataset held in host memory.

  Images are ``uint8`` NHWC (always 4-D, grayscale has C=1), text ``int32`` [N, L] token ids
  (``kd_jax.data.text``), labels ``int32``. ``test_*`` are
  ``None`` when the source has no test split. ``meta`` holds provenance strings (file, sha256,
  tfds version, ...) that the run log records.
  """
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray | None
  test_labels: np.ndarray | None
  num_classes: int
  class_names: list[str]
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    # Catch a source that hands back the wrong layout here, not deep inside a jitted step.
    _check_pair(self.train_images, self.train_labels, "train")
    if (self.test_images is None) != (self.test_labels is None):
      raise ValueError("test_images and test_labels must both be set or both be None")
    if self.test_images is not None:
      _check_pair(self.test_images, self.test_labels, "test")
      if self.test_images.shape[1:] != self.train_images.shape[1:]:
        raise ValueError(f"test images {self.test_images.shape[1:]} differ from train images "
                         f"{self.train_images.shape[1:]}")
    if len(self.class_names) != self.num_classes:
      raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])  # type: ignore[return-value]

  @property
  def has_test(self) -> bool:
    return self.test_images is not None


def _check_pair(images: np.ndarray, labels: np.ndarray, split: str) -> None:
  image = images.dtype == np.uint8 and images.ndim == 4  # arrays, or encoded ImageFiles
  tokens = images.dtype == np.int32 and images.ndim == 2  # text: padded token ids [N, L]
  if not (image or tokens):
    raise ValueError(f"{split} inputs must be uint8 NHWC images or int32 [N, L] tokens, "
                     f"got {images.dtype} {images.shape}")
  if labels.dtype != np.int32 or labels.shape != (images.shape[0],):
    raise ValueError(f"{split} labels must be int32 [{images.shape[0]}], "
                     f"got {labels.dtype} {labels.shape}")


SourceFn = Callable[[Any, str], ArrayDataset]
SOURCES: Registry[SourceFn] = Registry("data source", "data.source")


def default_cache_dir() -> Path:
  return Path("~/.cache/kd_jax").expanduser()


def parse_member(relpath: str) -> tuple[str, str, str] | None:
  """``.../train/<class>/<file>.png`` → (split, class, relpath); anything else → None."""
  parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
  if len(parts) < 3 or parts[-3] not in SPLIT_DIRS + tuple(SPLIT_ALIASES) or ".." in parts:
    return None
  fname = parts[-1]
  if fname.startswith(".") or not fname.lower().endswith(IMAGE_SUFFIXES):
    return None  # Hidden files such as macOS "._x.jpg" resource forks are not images.
  return SPLIT_ALIASES.get(parts[-3], parts[-3]), parts[-2], "/".join(parts)


def fingerprint(path: Path) -> str:
  """Changes whenever the data changes: size + mtime of the archive, or of every file."""
  h = hashlib.sha256(f"v{CACHE_FORMAT}|{path}".encode())
  if path.is_file():
    st = path.stat()
    h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
  else:
    for p in sorted(path.rglob("*")):
      if p.is_file():
        st = p.stat()
        h.update(f"|{p.relative_to(path).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
  return h.hexdigest()


def cache_file(cache_dir: Path, path: Path) -> Path:
  # Name = <archive name>-<hash of its path>-<hash of its state>: a changed archive gets a new
  # file, and the old one (same path hash) is removed when the new one is written.
  path_key = hashlib.sha256(str(path).encode()).hexdigest()[:8]
  return cache_dir / f"{path.name}-{path_key}-{fingerprint(path)[:16]}.npz"


#: What reading a cut-short or damaged .tar(.gz|.bz2|.xz) raises (bz2 raises an OSError).
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


@contextlib.contextmanager
def archive_errors(path: Path, prefix: str) -> Iterator[None]:
  """Turns a damaged archive's error, while reading it in the block, into one line."""
  try:
    yield
  except ARCHIVE_ERRORS as e:
    raise ConfigError(f"{prefix}.path={str(path)!r} is truncated or damaged "
                      f"({type(e).__name__}: {e}); download or copy the archive again") from None


class _EndMarked(tarfile.TarInfo):
  """Notes on its archive when the end-of-archive marker (a zero block) is read.

  tarfile ends iteration without an error when the stream stops at a header boundary (a
  download cut short there looks like a smaller, complete archive); only the marker tells
  the two apart.
  """

  @classmethod
  def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
    try:
      return super().fromtarfile(tarfile_)
    except tarfile.EOFHeaderError:
      tarfile_.kd_end_marked = True  # type: ignore[attr-defined]
      raise


def iter_tar(archive: Path) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
  """(member, bytes) of every regular file, streamed in order from a .tar(.gz|.bz2|.xz).

  Stream mode: nothing is extracted to disk and the file is never seeked. Raises
  ``tarfile.ReadError`` when the archive ends before its end-of-archive marker (see
  ``archive_errors`` for the one-line message).
  """
  with tarfile.open(archive, mode="r|*", tarinfo=_EndMarked) as tf:
    for member in tf:
      if member.isfile():
        f = tf.extractfile(member)
        assert f is not None
        yield member, f.read()
    if not getattr(tf, "kd_end_marked", False):
      raise tarfile.ReadError("the archive ends before its end-of-archive marker")


def sha256_file(path: Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()
