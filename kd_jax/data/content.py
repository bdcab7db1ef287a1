"""What a teacher's identity holds of its data: the bytes a source reads, never where they lie.

A teacher store shared by two hosts that mount the data at different paths, or a clone moved
to another folder, must find the teachers it already trained; a file replaced by other images
at the same path must not. So each source registers, beside its loader, a ``fingerprint(cfg,
prefix)`` in :data:`FINGERPRINTS` that describes its data without decoding it:

- one file (the embedded MNIST asset, a ``.tar.gz``, a text corpus): its sha256;
- a folder: the sorted listing of the files the source reads (relative path and size) and
  the sha256 of every one of them;
- a tfds set: name, config and version (``builder.info.full_name``) and the splits read.

Files and folders larger than :data:`FULL_HASH_BYTES` (ImageNet-sized) get a cheaper scheme
instead of hashing every byte: a file hashes its size and :data:`SAMPLE_BLOCKS` blocks of
1 MiB at evenly spaced offsets (first and last included); a folder hashes its whole listing
(every path and size) and the digests of :data:`SAMPLE_FILES` files evenly spaced in it. The
digest says which scheme made it (``sha256:`` or ``sampled:``). Results are kept per process,
keyed by path, size, mtime and inode, so the many key lookups of one run hash the data once.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable

from kd_jax.core.registry import Registry
from kd_jax.data.core import sha256_file

#: Files and folders up to this many bytes are hashed completely.
FULL_HASH_BYTES = 1 << 30
#: Above it: blocks sampled from a file, files sampled from a folder.
SAMPLE_BLOCKS, BLOCK_BYTES = 64, 1 << 20
SAMPLE_FILES = 1024

FingerprintFn = Callable[[Any, str], dict]
#: source name → fingerprint(cfg_like, prefix): a JSON-able dict of the data's content.
FINGERPRINTS: Registry[FingerprintFn] = Registry("data source", "data.source")

_MEMO: dict[tuple, str] = {}


def _sampled_file(path: Path, size: int) -> str:
  h = hashlib.sha256(f"{size}|".encode())
  with open(path, "rb") as f:
    for i in range(SAMPLE_BLOCKS):
      f.seek(i * (size - BLOCK_BYTES) // (SAMPLE_BLOCKS - 1))
      h.update(f.read(BLOCK_BYTES))
  return h.hexdigest()


def file_digest(path: Path) -> str:
  """``sha256:<hex>`` of the file's bytes (``sampled:<hex>`` above FULL_HASH_BYTES)."""
  path = Path(path)
  st = path.stat()
  key = ("file", str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
  if key not in _MEMO:
    whole = st.st_size <= max(FULL_HASH_BYTES, SAMPLE_BLOCKS * BLOCK_BYTES)
    _MEMO[key] = (f"sha256:{sha256_file(path)}" if whole
                  else f"sampled:{_sampled_file(path, st.st_size)}")
  return _MEMO[key]


def _listing(root: Path, reads: Callable[[str], bool]) -> list[tuple[str, os.stat_result]]:
  """(relative path, stat) of every file under ``root`` that ``reads`` accepts, sorted."""
  out = []
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    rel_dir = Path(folder).relative_to(root).as_posix()
    for name in files:
      rel = name if rel_dir == "." else f"{rel_dir}/{name}"
      if reads(rel):
        out.append((rel, os.stat(os.path.join(folder, name))))
  return sorted(out, key=lambda t: t[0])


def folder_digest(root: Path, reads: Callable[[str], bool]) -> str:
  """Digest of the files under ``root`` a source reads (``reads(relpath)``): their listing
  with sizes, and their contents (every file, or SAMPLE_FILES of them above FULL_HASH_BYTES)."""
  root = Path(root).resolve()
  listed = _listing(root, reads)
  state = hashlib.sha256(repr([(r, s.st_size, s.st_mtime_ns, s.st_ino)
                               for r, s in listed]).encode()).hexdigest()
  key = ("folder", str(root), state)
  if key not in _MEMO:
    total = sum(s.st_size for _, s in listed)
    sampled = total > FULL_HASH_BYTES and len(listed) > SAMPLE_FILES
    picked = (range(len(listed)) if not sampled else
              sorted({i * (len(listed) - 1) // (SAMPLE_FILES - 1) for i in range(SAMPLE_FILES)}))
    h = hashlib.sha256()
    for rel, st in listed:
      h.update(f"{rel}\0{st.st_size}\n".encode())
    digests = [file_digest(root / listed[i][0]) for i in picked]
    for d in digests:
      h.update(d.encode())
    sampled = sampled or any(d.startswith("sampled:") for d in digests)
    _MEMO[key] = f"{'sampled' if sampled else 'sha256'}:{h.hexdigest()}"
  return _MEMO[key]


def path_digest(path: Path, reads: Callable[[str], bool]) -> dict[str, str]:
  """``{"file": digest}`` for an archive, ``{"folder": digest}`` for a folder."""
  path = Path(path)
  if path.is_file():
    return {"file": file_digest(path)}
  return {"folder": folder_digest(path, reads)}


def fingerprint(cfg_like: Any, source: str, prefix: str = "data") -> dict:
  """The content fingerprint of ``source``'s data as ``cfg_like`` selects it (the loader's
  one-line ConfigError when the data is not there)."""
  return FINGERPRINTS.get(source, f"{prefix}.source")(cfg_like, prefix)
