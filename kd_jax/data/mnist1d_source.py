"""MNIST-1D (Greydanus 2020): ten 1-D templates warped, shifted and noised into length-40 signals.

A procedurally generated task small enough that every run reaches its plateau on two CPU cores,
yet, with enough noise, hard enough that a teacher is not perfect (configs/testbed.py). The
``mnist1d`` package's generator (``mnist1d.data.make_dataset``) builds it from a seed: nothing is
downloaded (its ``get_dataset`` fetches a pickle from the web; never called here). Generator
options come from ``data.mnist1d`` (number of samples, train fraction, noise scales, seed), and
the teacher's identity holds them with the package version (:func:`fingerprint_mnist1d`): two
teachers of different noise never share a store entry.

Every source returns uint8 NHWC images, so the float signals are mapped affinely onto 0…255
over the generated set's [min, max] (step ≈ 0.04 of a signal whose std is 1; ``meta`` keeps
``offset`` and ``scale``: signal ≈ offset + scale·uint8) and shaped (N, 1, 40, 1): one row of 40
pixels. With ``data.normalization='zscore'`` the model sees the standardized signal again.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

import numpy as np

from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import lookup
from kd_jax.data import content
from kd_jax.data.core import SOURCES, ArrayDataset

#: The generator options a config may set (``data.mnist1d``); every other option keeps the
#: package default (``mnist1d.data.get_dataset_args()``).
OPTIONS = ("num_samples", "train_split", "iid_noise_scale", "corr_noise_scale", "seed")
INSTALL = "pip install mnist1d"


def _package():
  """The ``mnist1d.data`` module, or a one-line ConfigError saying how to install it."""
  try:
    return importlib.import_module("mnist1d.data")
  except ImportError:
    raise ConfigError(f"data.source='mnist1d' needs the mnist1d package; {INSTALL} "
                      "(or pip install -e \".[testbed]\")") from None


def generator_options(cfg_like: Any, prefix: str = "data") -> dict[str, Any]:
  """``data.mnist1d`` as the generator's argument values, checked (a bad value is a
  ConfigError naming the key)."""
  section = lookup(cfg_like, "mnist1d", None)
  opts = {k: lookup(section, k, None) for k in OPTIONS} if section is not None else {}
  opts = {k: v for k, v in opts.items() if v is not None}
  n, split = int(opts.get("num_samples", 5000)), float(opts.get("train_split", 0.8))
  if n < 20:
    raise ConfigError(f"{prefix}.mnist1d.num_samples={n} must be at least 20 (2 per class)")
  if not 0 < split < 1:
    raise ConfigError(f"{prefix}.mnist1d.train_split={split} must be in (0, 1)")
  for k in ("iid_noise_scale", "corr_noise_scale"):
    if float(opts.get(k, 0.0)) < 0:
      raise ConfigError(f"{prefix}.mnist1d.{k}={opts[k]} must be >= 0")
  return opts


def generate(opts: dict[str, Any]) -> dict[str, np.ndarray]:
  """The generator's own arrays (``x``, ``y``, ``x_test``, ``y_test``) for ``opts``."""
  pkg = _package()
  args = pkg.get_dataset_args(as_dict=True)
  args.update(opts)
  args.pop("url", None)  # only get_dataset (the download) reads it
  return pkg.make_dataset(_View(args))


class _View:
  """Attribute access to a dict, as the generator reads its arguments (the package's
  ``ObjectView``, which is not part of its documented interface)."""

  def __init__(self, d: dict):
    self.__dict__.update(d)


def quantize(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
  """Signals [N, L] → uint8 [N, 1, L, 1], affinely over [lo, hi]."""
  scaled = np.round((x - lo) / max(hi - lo, 1e-12) * 255.0)
  return np.clip(scaled, 0, 255).astype(np.uint8)[:, None, :, None]


@SOURCES.register("mnist1d")
def load_mnist1d(cfg_like: Any, prefix: str = "data") -> ArrayDataset:
  """Generates MNIST-1D with ``data.mnist1d``'s options (seconds; nothing is cached)."""
  opts = generator_options(cfg_like, prefix)
  d = generate(opts)
  x, x_test = np.asarray(d["x"], np.float64), np.asarray(d["x_test"], np.float64)
  lo = float(min(x.min(), x_test.min()))
  hi = float(max(x.max(), x_test.max()))
  return ArrayDataset(
      train_images=quantize(x, lo, hi), train_labels=np.asarray(d["y"], np.int32),
      test_images=quantize(x_test, lo, hi), test_labels=np.asarray(d["y_test"], np.int32),
      num_classes=10, class_names=[str(i) for i in range(10)],
      meta=dict(source="mnist1d", offset=lo, scale=(hi - lo) / 255.0,
                generator=dict(opts), version=_version()))


def _version() -> str:
  try:
    return importlib.metadata.version("mnist1d")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


@content.FINGERPRINTS.register("mnist1d")
def fingerprint_mnist1d(cfg_like: Any, prefix: str = "data") -> dict:
  """The generator's options and the package version: generated data is its recipe."""
  _package()
  return {"generator": generator_options(cfg_like, prefix), "mnist1d": _version()}
