"""A run's resumable state as a few size-capped files, and back: for machines lent for minutes
whose inputs and outputs are limited in size and count (e.g. at most 8 files of 16 MiB).

``pack`` writes a workdir (a run's, a sweep's, a teacher store) as one gzipped tar cut into
parts of at most ``part_bytes`` (``<name>.tgz.000``, ``.001``, ...) and ``<name>.json``, a
manifest with each part's size and sha256. Logs a rerun does not read stay behind
(``tensorboard/``, ``<step>.unreadable`` and orbax temporary folders), the JAX compilation
cache travels only when asked (it saves compiling again, at the cost of its size), and with
``latest_only`` each orbax checkpoint folder brings only its newest step: enough to resume, but
it drops the older step a damaged newest one falls back to and a teacher's kept trajectory
(``teacher.keep_every``), and a *finished* teacher or GAN store entry travels without its
training checkpoints (``ckpt/``: a 5-member PreResNet-56's is twice its final variables; runs
read ``final/``, only the route-constrained remedy reads the trajectory), so use it where the
size limit needs it. ``unpack`` checks every part against the manifest before it writes
anything, then extracts into a workdir; rerunning the same command there resumes as it would
have on the first machine.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Iterator, Optional

from kd_jax.core.errors import ConfigError

MiB = 1 << 20
#: Folders never packed: logs a rerun does not read.
SKIPPED_DIRS = ("tensorboard",)
#: The JAX compilation cache's folder in a workdir (kd_jax.core.cache; sweeps put it there).
CACHE_DIR = "jax_cache"
_STEP = re.compile(r"^\d+$")
#: The metadata file that marks a store entry finished: checkpoints.TEACHER_META and
#: kd_jax.runner.gans.META, spelled out so packing imports neither jax nor orbax (1.6 s).
_FINISHED = ("teacher.json", "gan.json")
_ORBAX_TMP = re.compile(r"\.orbax-checkpoint-tmp|\.unreadable$")


def _newest_steps(directory: Path) -> Optional[set[str]]:
  """For an orbax checkpoint folder (its subfolders named by step), the name of its newest step;
  None for any other folder."""
  steps = [p.name for p in directory.iterdir() if p.is_dir() and _STEP.match(p.name)]
  return {max(steps, key=int)} if steps else None


def carried_files(workdir: Path, with_cache: bool = False,
                  latest_only: bool = False) -> list[Path]:
  """The files of ``workdir`` that ``pack`` writes, sorted (module docstring says which)."""
  workdir = Path(workdir)
  out: list[Path] = []

  def walk(d: Path) -> None:
    keep = _newest_steps(d) if latest_only else None
    finished_entry = (latest_only and not d.name.endswith(".partial")
                      and any((d / f).is_file() for f in _FINISHED))
    for p in sorted(d.iterdir()):
      if p.is_symlink():
        continue
      if p.is_dir():
        if (p.name in SKIPPED_DIRS or _ORBAX_TMP.search(p.name)
                or (finished_entry and p.name == "ckpt")
                or (p.name == CACHE_DIR and not with_cache)
                or (keep is not None and _STEP.match(p.name) and p.name not in keep)):
          continue
        walk(p)
      elif p.is_file() and not _ORBAX_TMP.search(p.name):
        out.append(p)

  walk(workdir)
  return out


class _Parts(io.RawIOBase):
  """A write-only stream cut into files of at most ``part_bytes``, hashing each as it goes."""

  def __init__(self, out: Path, name: str, part_bytes: int):
    self.out, self.name, self.part_bytes = out, name, part_bytes
    self.parts: list[dict] = []
    self._file = None

  def writable(self) -> bool:
    return True

  def _next(self) -> None:
    self._close_part()
    path = self.out / f"{self.name}.tgz.{len(self.parts):03d}"
    self._file, self._hash, self._size = path.open("wb"), hashlib.sha256(), 0
    self.parts.append({"file": path.name})

  def _close_part(self) -> None:
    if self._file is not None:
      self._file.close()
      self.parts[-1].update(bytes=self._size, sha256=self._hash.hexdigest())
      self._file = None

  def write(self, data) -> int:
    data = memoryview(data)
    done = 0
    while done < len(data):
      if self._file is None or self._size == self.part_bytes:
        self._next()
      chunk = data[done:done + self.part_bytes - self._size]
      self._file.write(chunk)
      self._hash.update(chunk)
      self._size += len(chunk)
      done += len(chunk)
    return len(data)

  def close(self) -> None:
    self._close_part()
    super().close()


def pack(workdir: Path, out: Path, name: str = "state", part_bytes: int = 16 * MiB,
         max_bytes: Optional[int] = None, with_cache: bool = False,
         latest_only: bool = False) -> dict:
  """Writes ``workdir``'s resumable state into ``out`` (module docstring); returns the manifest.

  Raises ConfigError (one line) when ``workdir`` is not a folder or the parts together exceed
  ``max_bytes``, naming the largest files; no parts are left behind then."""
  workdir, out = Path(workdir), Path(out)
  if not workdir.is_dir():
    raise ConfigError(f"{workdir} is not a folder: pass the --workdir of the run to carry")
  if out.resolve() == workdir.resolve() or workdir.resolve() in out.resolve().parents:
    raise ConfigError(f"{out} is inside {workdir}: the parts would pack themselves; write "
                      "them to a folder outside the workdir")
  if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
    raise ConfigError(f"--name={name!r}: use letters, digits, '.', '_' and '-' only")
  files = carried_files(workdir, with_cache, latest_only)
  out.mkdir(parents=True, exist_ok=True)
  for old in out.glob(f"{name}.tgz.*"):
    old.unlink()
  parts = _Parts(out, name, part_bytes)
  # Level 1: weights barely compress at any level; the JSON and metrics do at the fastest.
  with gzip.GzipFile(fileobj=parts, mode="wb", compresslevel=1, mtime=0) as gz:
    with tarfile.open(fileobj=gz, mode="w|") as tar:
      for f in files:
        tar.add(f, arcname=f.relative_to(workdir).as_posix(), recursive=False)
  parts.close()
  total = sum(p["bytes"] for p in parts.parts)
  if max_bytes is not None and total > max_bytes:
    for p in parts.parts:
      (out / p["file"]).unlink()
    big = sorted(files, key=lambda f: f.stat().st_size, reverse=True)[:3]
    raise ConfigError(
        f"{workdir} packs into {total / MiB:.1f} MiB, over the {max_bytes / MiB:.1f} MiB "
        f"allowed; largest: {', '.join(f'{f.relative_to(workdir)} ({f.stat().st_size / MiB:.1f} MiB)' for f in big)}"
        "; pack with --latest_only, or leave the cache out, or allow more")
  manifest = {"name": name, "files": len(files), "bytes": total, "parts": parts.parts,
              "with_cache": with_cache, "latest_only": latest_only}
  (out / f"{name}.json").write_text(json.dumps(manifest, indent=1) + "\n")
  return manifest


def _verified(src: Path, manifest: dict) -> Iterator[bytes]:
  for part in manifest["parts"]:
    path = src / part["file"]
    if not path.is_file():
      raise ConfigError(f"{path} is missing: copy every part the manifest "
                        f"{manifest['name']}.json names, then unpack again")
    data = path.read_bytes()
    if len(data) != part["bytes"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
      raise ConfigError(f"{path} does not match its sha256 in {manifest['name']}.json "
                        "(damaged or from another pack): copy it again")
    yield data


def unpack(src: Path, workdir: Path, name: str = "state") -> int:
  """Checks the parts in ``src`` against ``<name>.json``, then extracts them into ``workdir``;
  returns the number of files written. Nothing is written when a part is missing or damaged."""
  src, workdir = Path(src), Path(workdir)
  meta = src / f"{name}.json"
  if not meta.is_file():
    raise ConfigError(f"{meta} is missing: unpack reads a folder written by pack "
                      f"(or pass its --name)")
  manifest = json.loads(meta.read_text())
  blob = b"".join(_verified(src, manifest))   # every part checked before anything is written
  with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
    members = tar.getmembers()
    bad = [m.name for m in members if not (m.isfile() or m.isdir()) or m.name.startswith("/")
           or ".." in Path(m.name).parts]
    if bad:  # pack writes plain files under relative paths only: this is not its output
      raise ConfigError(f"{src / (name + '.json')} unpacks to {bad[0]!r}, outside a workdir or "
                        "not a plain file; not unpacked")
    workdir.mkdir(parents=True, exist_ok=True)
    # The "data" filter where Python has it (3.11.4+): the same refusals, checked again.
    tar.extractall(workdir, members,
                   **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
  return len(members)
