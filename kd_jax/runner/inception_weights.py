"""Local FID Inception weights (``gan.inception_path``) → the variables of
:class:`kd_jax.models.inception.InceptionV3`.

kd_jax cannot download weights, so the user points to a copy of pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (the 2015 TensorFlow graph's weights in PyTorch names),
either as that ``.pth`` (read with torch, when it is installed) or as an ``.npz`` holding the same
``state_dict`` under the same names, written once where torch is installed::

    python -c "import sys, numpy, torch; numpy.savez(sys.argv[2], **{k: v.numpy() for k, v in torch.load(sys.argv[1], map_location='cpu').items()})" pt_inception-2015-12-05-6726825d.pth pt_inception-2015-12-05.npz

Names map one to one (module paths are the same, ``conv.weight`` ↔ ``conv/kernel``,
``bn.weight/bias`` ↔ ``bn/scale/bias``, ``bn.running_mean/var`` ↔ ``batch_stats .../mean/var``,
``fc.weight/bias`` ↔ ``fc/kernel/bias``); conv kernels go from PyTorch's OIHW to flax's HWIO and
the classifier matrix is transposed. Every name must be present with its shape, and no other
(``num_batches_tracked`` counters aside): a wrong file is one line that says what differs.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from kd_jax.core.errors import ConfigError
from kd_jax.models import inception

KEY = "gan.inception_path"
CONVERT = ("python -c \"import sys, numpy, torch; numpy.savez(sys.argv[2], "
           "**{k: v.numpy() for k, v in torch.load(sys.argv[1], map_location='cpu').items()})\" "
           "IN.pth OUT.npz")
#: (module kind, PyTorch leaf) → (flax collection, flax leaf, array PyTorch → flax).
_LEAVES: dict[tuple[str, str], tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = {
    ("conv", "weight"): ("params", "kernel", lambda w: w.transpose(2, 3, 1, 0)),  # OIHW→HWIO
    ("bn", "weight"): ("params", "scale", lambda w: w),
    ("bn", "bias"): ("params", "bias", lambda w: w),
    ("bn", "running_mean"): ("batch_stats", "mean", lambda w: w),
    ("bn", "running_var"): ("batch_stats", "var", lambda w: w),
    ("fc", "weight"): ("params", "kernel", lambda w: w.T),                 # (out, in) → (in, out)
    ("fc", "bias"): ("params", "bias", lambda w: w),
}
_TO_TORCH = {(kind, coll, leaf): torch_leaf
             for (kind, torch_leaf), (coll, leaf, _) in _LEAVES.items()}
_IGNORED = ("num_batches_tracked",)


def convert(name: str, value: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
  """One PyTorch state_dict entry → (flax path ``(collection, module…, leaf)``, float32 array)."""
  *modules, torch_leaf = name.split(".")
  if not modules or (modules[-1], torch_leaf) not in _LEAVES:
    raise KeyError(name)
  coll, leaf, to_flax = _LEAVES[(modules[-1], torch_leaf)]
  return (coll, *modules, leaf), np.asarray(to_flax(np.asarray(value)), np.float32)


@functools.lru_cache(maxsize=None)
def torch_names() -> dict[str, tuple[int, ...]]:
  """PyTorch state_dict name → PyTorch shape, for every variable of the FID Inception."""
  out = {}
  like = inception.variables_like()
  for coll in ("params", "batch_stats"):
    for path, leaf in _leaves(like[coll]):
      kind = path[-2]
      name = ".".join((*path[:-1], _TO_TORCH[(kind, coll, path[-1])]))
      shape = tuple(leaf.shape)
      if kind == "conv":
        shape = (shape[3], shape[2], shape[0], shape[1])  # HWIO → OIHW
      elif (kind, path[-1]) == ("fc", "kernel"):
        shape = shape[::-1]
      out[name] = shape
  return out


def _leaves(tree: Mapping, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
  out = []
  for k, v in tree.items():
    out.extend(_leaves(v, (*prefix, k)) if isinstance(v, Mapping) else [((*prefix, k), v)])
  return out


def nest(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict:
  """``{path: array}`` → the nested variables dict flax applies."""
  out: dict = {}
  for path, value in flat.items():
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = value
  return out


def check_file(path: str | os.PathLike) -> Path:
  """The weights file, or a one-line ConfigError when it is missing or of an unknown kind."""
  p = Path(path).expanduser()
  if not p.is_file():
    raise ConfigError(f"{KEY}={str(path)!r}: no such file; point it to a local copy of "
                      "pytorch-fid's pt_inception-2015-12-05-6726825d.pth or its .npz conversion")
  if p.suffix not in (".npz", ".pth", ".pt"):
    raise ConfigError(f"{KEY}={str(path)!r}: expected a .npz or .pth file of pytorch-fid's "
                      "Inception state_dict")
  return p


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The name → array pairs of a ``.npz`` or (with torch installed) a ``.pth`` file."""
  p = check_file(path)
  if p.suffix == ".npz":
    try:
      with np.load(p, allow_pickle=False) as f:
        return {k: np.asarray(f[k]) for k in f.files}
    except Exception as e:  # a truncated or foreign file
      raise ConfigError(f"{KEY}={str(path)!r} could not be read as .npz "
                        f"({_first_line(e)}); convert the .pth again with: {CONVERT}") from None
  return _read_pth(p)


def _read_pth(p: Path) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError:
    raise ConfigError(f"{KEY}={str(p)!r}: reading a .pth needs torch, which is not installed; "
                      f"convert it once where torch is: {CONVERT}") from None
  try:
    state = torch.load(p, map_location="cpu", weights_only=True)
  except Exception as e:
    raise ConfigError(f"{KEY}={str(p)!r} could not be read by torch.load "
                      f"({_first_line(e)})") from None
  if not isinstance(state, Mapping):
    raise ConfigError(f"{KEY}={str(p)!r} holds a {type(state).__name__}, not a state_dict")
  return {k: v.detach().cpu().numpy() for k, v in state.items()}


def _first_line(e: Exception) -> str:
  text = str(e).strip()
  return text.splitlines()[0] if text else type(e).__name__


def to_variables(state: Mapping[str, np.ndarray], source: str = "") -> dict:
  """``{"params", "batch_stats"}`` of the FID Inception from a PyTorch-named state_dict; a
  missing, unexpected or misshapen entry is a one-line ConfigError."""
  where = f"{KEY}={source!r}" if source else "the Inception weights"
  names = torch_names()
  given = {k: v for k, v in state.items() if not k.endswith(_IGNORED)}
  missing = sorted(set(names) - set(given))
  extra = sorted(set(given) - set(names))
  hint = "expected pytorch-fid's FID Inception (pt_inception-2015-12-05-*.pth)"
  if missing:
    raise ConfigError(f"{where}: {len(missing)} weights missing (e.g. {', '.join(missing[:3])}); "
                      f"{hint}")
  if extra:
    raise ConfigError(f"{where}: {len(extra)} unexpected weights (e.g. {', '.join(extra[:3])}); "
                      f"{hint}")
  for name, shape in names.items():
    if tuple(np.shape(given[name])) != shape:
      raise ConfigError(f"{where}: {name} has shape {tuple(np.shape(given[name]))}, expected "
                        f"{shape}; {hint}")
  return nest(dict(convert(name, given[name]) for name in names))


def load(path: str | os.PathLike) -> dict:
  """The FID Inception's variables from ``gan.inception_path``."""
  return to_variables(read_state_dict(path), str(path))


def digest(path: str | os.PathLike) -> str:
  """A content hash of the weights file: cached statistics are keyed by it, so other weights
  never reuse them."""
  h = hashlib.sha256()
  with Path(path).expanduser().open("rb") as f:
    for chunk in iter(lambda: f.read(1 << 22), b""):
      h.update(chunk)
  return h.hexdigest()[:16]
