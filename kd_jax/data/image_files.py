"""Images kept encoded on disk and decoded per step: the ImageNet-sized inputs.

An :class:`ImageFiles` stands where a source would put its ``uint8`` image array: it has the
array's ``len``, ``shape`` (N, size, size, 3) and indexing (``files[idx]`` is the subset, so
splits carve it like an array), but holds only a reader of record i's encoded bytes (a file in
an ImageNet-layout folder, a record of a tfds data source) and the positions it uses. Pixels
exist only inside the streamed pipeline (``kd_jax.data.pipelines.HostStreamed``), whose grain
threads call :meth:`ImageFiles.decode`: the train transform (random-resized crop + flip) when
training, the eval transform (resize + center crop) for evaluation.

Per-example randomness is a pure function of (seed, stream, epoch, step, member, position in
the global batch), so the same example gets the same crop on 1 process or many, and after a
resume: the streamed pipeline's iterator state is just (epoch, step), which the checkpoints
after each epoch already hold.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from kd_jax.data.transforms import ImageTransform, decode_rgb


class FileReader:
  """Record i → the bytes of file i (paths relative to ``root``, so the list stays small)."""

  def __init__(self, root: Path, relpaths: Sequence[str]):
    self.root, self.relpaths = Path(root), np.asarray(relpaths)

  def __len__(self) -> int:
    return len(self.relpaths)

  def __call__(self, i: int) -> bytes:
    return (self.root / str(self.relpaths[i])).read_bytes()


class RecordReader:
  """Record i → the encoded ``image`` bytes of a ``tfds.data_source`` (read undecoded)."""

  def __init__(self, source: Any):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __call__(self, i: int) -> bytes:
    return self.source[int(i)]["image"]


@dataclasses.dataclass
class ImageFiles:
  """Encoded images read and transformed on demand (see the module docstring)."""
  read: Callable[[int], bytes]
  transform: ImageTransform
  index: Optional[np.ndarray] = None

  def __post_init__(self):
    if self.index is None:
      self.index = np.arange(len(self.read))  # type: ignore[arg-type]
    self.index = np.asarray(self.index, np.int64)

  dtype = np.dtype(np.uint8)
  ndim = 4

  @property
  def shape(self) -> tuple[int, int, int, int]:
    return (len(self.index), self.transform.size, self.transform.size, 3)

  def __len__(self) -> int:
    return len(self.index)

  def __getitem__(self, idx: Any) -> "ImageFiles":
    """The subset at ``idx`` (positions, a boolean mask or a slice), still encoded."""
    return ImageFiles(self.read, self.transform, self.index[idx])

  def decode(self, idx: np.ndarray, seeds: Optional[np.ndarray] = None) -> np.ndarray:
    """``uint8 [*idx.shape, size, size, 3]``: eval transform, or, with ``seeds`` (one row of
    ints per example, ``[*idx.shape, k]``), the train transform drawn from those seeds."""
    idx = np.asarray(idx)
    s = self.transform.size
    out = np.empty(idx.shape + (s, s, 3), np.uint8)
    flat = out.reshape((-1, s, s, 3))
    rows = None if seeds is None else np.asarray(seeds).reshape((idx.size, -1))
    for j, i in enumerate(idx.reshape(-1)):
      im = decode_rgb(self.read(int(self.index[i])))
      if rows is None:
        flat[j] = self.transform.eval(im)
      else:
        flat[j] = self.transform.train(im, np.random.default_rng(rows[j].tolist()))
    return out


def is_lazy(images: Any) -> bool:
  return isinstance(images, ImageFiles)
