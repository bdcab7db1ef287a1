"""One workdir, one run: a rerun with another config is refused rather than mixed into it.

A run resumes whatever its workdir holds (student checkpoints, metrics, ``results.json``), so
running τ = 4 into the workdir of a τ = 1 run would continue the τ = 1 student and label its
numbers τ = 4. ``check`` compares the config with the stored ``config.json`` on the keys that
change results (``identity``) and stops on a difference; ``clear`` is the explicit way to start
over. ``kd_jax.trials`` applies the same identity to a sweep's trials.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable

from ml_collections import ConfigDict

from kd_jax.config import to_json
from kd_jax.errors import ConfigError

# Keys that change how a run goes or where it writes, not what it computes: a finished run
# stays valid when they change (a bigger shared ensemble, another machine's device count).
NOT_IDENTITY = ("data.pipeline", "teacher.store", "teacher.evals", "distill.evals",
                "teacher.ensemble_size", "teacher.eval_every", "distill.eval_every",
                "run.num_devices", "run.steps_per_call",
                "run.checkpoint_every", "run.log_every", "run.eval_batch_size", "run.tensorboard",
                "gan.store", "gan.eval_every", "gan.checkpoint_every", "gan.steps_per_call",
                "gan.eval_samples", "gan.inception_path", "gan.fid_samples", "gan.fid_batch")
CONFIG = "config.json"
RESULTS = "results.json"
#: What a run leaves in its workdir besides config.json (any of them: the workdir holds a run).
PROGRESS = (RESULTS, "metrics.jsonl", "checkpoints")
#: What ``clear`` deletes: everything of the run except the teachers, which are keyed by their
#: own recipe and shared (``<workdir>/teachers`` or ``teacher.store``).
CLEARED = PROGRESS + ("tensorboard", "plane", "line", CONFIG)


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  """Nested dicts → ``{"dotted.key": leaf}``."""
  if isinstance(tree, dict):
    out: dict[str, Any] = {}
    for k, v in tree.items():
      out.update(flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def identity(config_dict: dict) -> dict[str, Any]:
  """The flat keys that decide a run's numbers. ``teacher.ensemble_size`` counts only while
  ``distill.teacher_members`` is 0 (= all members): then it is the number distilled from."""
  keys = flat(config_dict)
  ignored = tuple(n for n in NOT_IDENTITY
                  if not (n == "teacher.ensemble_size"
                          and keys.get("distill.teacher_members") == 0))
  return {k: v for k, v in keys.items()
          if not any(k == n or k.startswith(n + ".") for n in ignored)}


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


def check(config: ConfigDict, workdir: Path) -> None:
  """Refuses to resume a run of another config (raises ConfigError naming the first keys)."""
  old = stored_config(workdir)
  if old is None or not holds_run(workdir):
    return  # nothing to mix with: a folder a failed start left behind is simply reused
  diffs = differences(old, json.loads(to_json(config)))
  if diffs:
    raise ConfigError(
        f"--workdir={workdir} holds a run of another config ({describe(diffs)}); use a new "
        "--workdir, or pass --restart (restart=True from Python) to delete that run's student "
        "checkpoints and results (stored teachers are kept)")


def _stores(config: ConfigDict, workdir: Path) -> list[Path]:
  """Teacher stores this workdir's runs may have used (the default one lies in it)."""
  stores = [config.teacher.store]
  old = stored_config(workdir) if (Path(workdir) / CONFIG).exists() else None
  if old:
    stores.append(old.get("teacher", {}).get("store", ""))
  return [Path(s).absolute() for s in stores if s]


def clear(config: ConfigDict, workdir: Path) -> list[str]:
  """Deletes the run in ``workdir`` (``CLEARED``) but never a teacher store; returns what went."""
  workdir = Path(workdir)
  try:
    stores = _stores(config, workdir)
  except ConfigError:
    stores = [Path(config.teacher.store).absolute()] if config.teacher.store else []
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
