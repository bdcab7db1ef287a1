"""A trained teacher ensemble as one portable artifact: copy it anywhere, check it, skip training.

``teacher-<key>-m<members>.json`` (the manifest) names the teacher key, the member count, the
resolved teacher and data config it was trained with, and the sha256 and size of the data: the
ensemble's final params and batch statistics (no optimizer state, no initial weights: those
follow from ``teacher.seed``) as a compressed ``.npz``, split into parts of at most
:data:`PART_BYTES` (``.npz.000``, ``.npz.001``, ...) so each file fits where large files do not
(a git repository, a mail). The manifest is written last, so a half-copied artifact is not
found; a corrupted one stops with one line naming the file and the mismatch.

Before training a teacher, ``kd_jax.runner.teachers`` looks in :func:`folder`
(``$KD_JAX_TEACHER_ARTIFACTS``, else ``experiments/teachers/`` of the clone) for an artifact of
its key with at least its members, and stores that instead.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
from flax import traverse_util
from ml_collections import ConfigDict

from kd_jax.config import to_json
from kd_jax.core.errors import ConfigError

ENV = "KD_JAX_TEACHER_ARTIFACTS"
DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "experiments" / "teachers"
#: The largest file an artifact writes; a larger ensemble is split into parts of this size.
PART_BYTES = 16 << 20
FORMAT = 1
_SEP = "/"


def folder() -> Path:
  """Where runs look for artifacts: ``$KD_JAX_TEACHER_ARTIFACTS``, else experiments/teachers/."""
  return Path(os.environ.get(ENV, "") or DEFAULT_FOLDER).expanduser()


def name(key: str, members: int) -> str:
  return f"teacher-{key}-m{members}"


def _write_atomic(path: Path, data: bytes) -> None:
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


def save(out_dir: Path, final: Any, key: str, members: int, teacher: ConfigDict,
         data: ConfigDict) -> Path:
  """Writes the artifact of ``final`` (stacked {"params", "batch_stats"}) trained by the
  ``teacher`` recipe on ``data`` (the config's sections); returns its manifest."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  flat = traverse_util.flatten_dict(final, sep=_SEP)
  buf = io.BytesIO()
  np.savez_compressed(buf, **{k: np.asarray(v) for k, v in flat.items()})
  blob = buf.getvalue()
  stem = name(key, members)
  chunks = [blob[i:i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
  files = [f"{stem}.npz"] if len(chunks) == 1 else [f"{stem}.npz.{i:03d}"
                                                     for i in range(len(chunks))]
  parts = []
  for file, chunk in zip(files, chunks):
    _write_atomic(out_dir / file, chunk)
    parts.append({"file": file, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
  manifest = {"format": FORMAT, "key": key, "members": int(members),
              "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob), "parts": parts,
              "teacher": json.loads(to_json(teacher)),
              "data": json.loads(to_json(data))}
  path = out_dir / f"{stem}.json"
  _write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True).encode())
  return path


def find(where: Path, key: str, members: int) -> Optional[Path]:
  """The manifest of the smallest artifact of ``key`` with at least ``members`` members."""
  best: tuple[int, Path] | None = None
  for path in sorted(Path(where).glob(f"{name(key, '')}*.json")) if Path(where).is_dir() else []:
    try:
      m = int(path.stem.rsplit("-m", 1)[1])
    except (IndexError, ValueError):
      continue
    if m >= members and (best is None or m < best[0]):
      best = (m, path)
  return None if best is None else best[1]


def load(manifest_path: Path) -> tuple[dict, dict]:
  """(stacked {"params", "batch_stats"} as numpy, manifest), every byte checked against the
  manifest's sha256 (one-line ConfigError naming the file and the mismatch)."""
  manifest_path = Path(manifest_path)
  try:
    manifest = json.loads(manifest_path.read_text())
    parts = manifest["parts"]
  except (OSError, ValueError, KeyError) as e:
    raise ConfigError(f"{manifest_path}: not a readable teacher artifact manifest ({e}); "
                      "copy the artifact again or delete it") from None
  chunks = []
  for part in parts:
    file = manifest_path.parent / part["file"]
    if not file.is_file():
      raise ConfigError(f"{file}: missing part of the teacher artifact {manifest_path.name}; "
                        "copy every file of the artifact")
    chunk = file.read_bytes()
    got = hashlib.sha256(chunk).hexdigest()
    if got != part["sha256"]:
      raise ConfigError(f"{file}: sha256 {got} does not match {part['sha256']} recorded in "
                        f"{manifest_path.name} ({len(chunk)} bytes, {part['bytes']} recorded); "
                        "the file is corrupt or incomplete: copy it again")
    chunks.append(chunk)
  blob = b"".join(chunks)
  if hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
    raise ConfigError(f"{manifest_path}: the parts' sha256 {hashlib.sha256(blob).hexdigest()} "
                      f"does not match {manifest['sha256']}; copy the artifact again")
  with np.load(io.BytesIO(blob), allow_pickle=False) as z:
    flat = {k: z[k] for k in z.files}
  tree = traverse_util.unflatten_dict(flat, sep=_SEP)
  tree.setdefault("batch_stats", {})
  return tree, manifest
