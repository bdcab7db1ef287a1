"""One workdir, one run: a rerun with another config is refused rather than mixed into it.

A run resumes whatever its workdir holds (student checkpoints, metrics, ``results.json``), so
running τ = 4 into the workdir of a τ = 1 run would continue the τ = 1 student and label its
numbers τ = 4. ``check`` compares the config with the stored ``config.json`` on the keys that
change results (``identity``) and stops on a difference; ``clear`` is the explicit way to start
over. ``kd_jax.sweeps.trials`` applies the same identity to a sweep's trials.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Optional

from ml_collections import ConfigDict

from kd_jax.config import NOT_IDENTITY
from kd_jax.core import checkpoints
from kd_jax.core.errors import ConfigError

CONFIG = "config.json"
RESULTS = "results.json"
#: What a run leaves in its workdir besides config.json (any of them: the workdir holds a run).
PROGRESS = (RESULTS, "metrics.jsonl", "checkpoints")
#: What ``clear`` deletes: everything of the run except the teachers, which are keyed by their
#: own recipe and shared (``<workdir>/teachers`` or ``teacher.store``).
CLEARED = PROGRESS + ("tensorboard", "plane", "line", CONFIG, "wall_time.json")


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  """Nested dicts → ``{"dotted.key": leaf}``."""
  if isinstance(tree, dict):
    out: dict[str, Any] = {}
    for k, v in tree.items():
      out.update(flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


#: The data keys besides its content that decide what a teacher sees (its training subset,
#: normalization, decoding). No path: where the data lies is not what it is.
TEACHER_DATA_KEYS = ("source", "name", "split_seed", "test_size", "teacher_pool",
                     "teacher_subset", "normalization", "emnist_transposed")
#: The data keys of the path-based key stores were written under before (``legacy_teacher_key``).
LEGACY_DATA_KEYS = TEACHER_DATA_KEYS + ("path", "data_dir")


def teacher_key(data: ConfigDict, teacher: ConfigDict, *, missing_ok: bool = False) -> str:
  """Identity of a teacher ensemble: the data it sees and its recipe, not the ensemble size.

  The data counts by content (``kd_jax.data.content``: file sha256, folder listing and hashes,
  tfds name + version + splits), so a store finds its teachers from any clone or host, whatever
  path the data is mounted at, and never reuses one for other data at the same path. Members
  are independent (own seed, own data order), so an ensemble of 5 holds the ensemble of 3;
  arms that differ only in distillation settings share one trained teacher. The teacher keys
  left out are ``NOT_IDENTITY``'s. When the data is not there, ``missing_ok`` keys it by its
  config instead (sweep planning and dry runs; no teacher is trained under such a key, as
  loading the data stops first), else the source's one-line ConfigError is raised.
  """
  from kd_jax.data import sources
  ident = _teacher_identity(data, teacher, TEACHER_DATA_KEYS)
  try:
    ident["data"]["content"] = sources.content_fingerprint(data)
  except (ConfigError, ImportError):  # not there, or tensorflow_datasets not installed
    if not missing_ok:
      raise
    ident["data"]["content"] = {"unavailable": {k: data[k] for k in ("path", "data_dir")}}
  return _digest(ident)


def store_keys(data: ConfigDict, teacher: ConfigDict) -> tuple[str, str]:
  """The keys a teacher's store entry may have: its content key (``teacher_key``), then the
  path-based key it was stored under before keys were content-based (reused in place)."""
  return teacher_key(data, teacher), legacy_teacher_key(data, teacher)


def legacy_teacher_key(data: ConfigDict, teacher: ConfigDict) -> str:
  """The key stores held teachers under before it was content-based (data.path and
  data.data_dir in place of the content): still looked up so those entries stay in use."""
  return _digest(_teacher_identity(data, teacher, LEGACY_DATA_KEYS))


def _teacher_identity(data: ConfigDict, teacher: ConfigDict, keys: Iterable[str]) -> dict:
  from kd_jax.data.text import TEXT_SOURCES
  recipe = {k: v for k, v in flat(teacher.to_dict(), "teacher.").items()
            if not _ignored(k, NOT_IDENTITY)}
  ident = dict(data={k: data[k] for k in keys}, teacher=_nest(recipe, "teacher."))
  if data.source in TEXT_SOURCES:  # only text keys change with the vocabulary
    ident["data"]["text"] = data.text.to_dict()
  if data.image_size:  # only images decoded per step have these keys (older keys stay the same)
    ident["data"].update({k: data[k] for k in ("image_size", "eval_resize", "crop_min_scale")})
  return ident


def _digest(ident: dict) -> str:
  blob = json.dumps(ident, sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:12]


def find_teacher(store: Path, data: ConfigDict, teacher: ConfigDict, members: int, *,
                 missing_ok: bool = False) -> Optional[Path]:
  """The stored ensemble of at least ``members`` for this teacher: under its content key, else
  under its path-based key (an entry stored before keys were content-based, reused in place)."""
  found = checkpoints.find_teacher(store, teacher_key(data, teacher, missing_ok=missing_ok),
                                   members)
  if found is None:
    found = checkpoints.find_teacher(store, legacy_teacher_key(data, teacher), members)
  return found


def _ignored(key: str, names: Iterable[str]) -> bool:
  return any(key == n or key.startswith(n + ".") for n in names)


def _nest(flat_keys: dict[str, Any], prefix: str) -> dict[str, Any]:
  """``{"teacher.optim.lr": 0.1}`` → ``{"optim": {"lr": 0.1}}`` (the dict teacher_key hashed
  before the key list moved next to the schema, so stored teachers keep their keys)."""
  out: dict[str, Any] = {}
  for k, v in flat_keys.items():
    node = out
    *parents, leaf = k[len(prefix):].split(".")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return out


def identity(config_dict: dict) -> dict[str, Any]:
  """The flat keys that decide a run's numbers. ``teacher.ensemble_size`` counts only while
  ``distill.teacher_members`` is 0 (= all members): then it is the number distilled from."""
  keys = flat(config_dict)
  ignored = tuple(n for n in NOT_IDENTITY
                  if not (n == "teacher.ensemble_size"
                          and keys.get("distill.teacher_members") == 0))
  return {k: v for k, v in keys.items() if not _ignored(k, ignored)}


def differences(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
  """(key, old value, new value) for every identity key the two configs both hold and differ
  on, in key order (a key only one of them holds comes from another kd_jax version)."""
  a, b = identity(old), identity(new)
  return [(k, a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]


def describe(diffs: Iterable[tuple[str, Any, Any]], limit: int = 3) -> str:
  diffs = list(diffs)
  shown = "; ".join(f"{k} was {o!r}, now {n!r}" for k, o, n in diffs[:limit])
  return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")


def holds_run(workdir: Path) -> bool:
  return any((Path(workdir) / p).exists() for p in PROGRESS)


def stored_config(workdir: Path) -> dict | None:
  path = Path(workdir) / CONFIG
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    raise ConfigError(f"{path} is not readable JSON; use a new --workdir, or pass --restart "
                      "to start this one over") from None


def check(config_dict: dict, workdir: Path) -> None:
  """Refuses to resume a run of another config (raises ConfigError naming the first keys);
  ``config_dict``: the resolved config as ``config.json`` holds it,
  ``json.loads(to_json(config))``."""
  old = stored_config(workdir)
  if old is None or not holds_run(workdir):
    return  # nothing to mix with: a folder a failed start left behind is simply reused
  diffs = differences(old, config_dict)
  if diffs:
    raise ConfigError(
        f"--workdir={workdir} holds a run of another config ({describe(diffs)}); use a new "
        "--workdir, or pass --restart (restart=True from Python) to delete that run's student "
        "checkpoints and results (stored teachers are kept)")


def _stores(teacher_store: str, workdir: Path) -> list[Path]:
  """Teacher stores this workdir's runs may have used (the default one lies in it)."""
  stores = [teacher_store]
  old = stored_config(workdir) if (Path(workdir) / CONFIG).exists() else None
  if old:
    stores.append(old.get("teacher", {}).get("store", ""))
  return [Path(s).absolute() for s in stores if s]


def clear(teacher_store: str, workdir: Path) -> list[str]:
  """Deletes the run in ``workdir`` (``CLEARED``) but never a teacher store (the run's
  ``teacher.store``, or the one its stored config names); returns what went."""
  workdir = Path(workdir)
  try:
    stores = _stores(teacher_store, workdir)
  except ConfigError:
    stores = [Path(teacher_store).absolute()] if teacher_store else []
  gone = []
  for name in CLEARED:
    path = (workdir / name).absolute()
    if not path.exists():
      continue
    for store in stores:
      if store == path or path in store.parents:
        raise ConfigError(f"--restart would delete {path}, which holds the teacher store "
                          f"{store}; move teacher.store out of it or delete the run by hand")
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    gone.append(name)
  return gone
