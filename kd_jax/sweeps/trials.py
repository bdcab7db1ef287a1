"""A figure's trials: its arms × seeds resolved into locked, validated experiment configs.

Nothing here trains or reads data, so a figure is checked end to end in a second
(``python -m kd_jax.sweep --dry_run``). ``kd_jax.sweeps.sweep`` runs the trials; this module says
what they are, which of them share a teacher, and whether a workdir already holds other ones.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from ml_collections import ConfigDict

from kd_jax.kd import metrics
from kd_jax.sweeps import plots
from kd_jax.config import to_json
from kd_jax.config_files import get_dotted, set_dotted
from kd_jax.runner.identity import teacher_key
from kd_jax.runner.validate import validate
from kd_jax.train.evaluators import DISTILL_DEFAULTS
from kd_jax.core.errors import ConfigError
from kd_jax.runner.identity import differences

DEFAULT_ARM = "default"
_ARM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


@dataclasses.dataclass(frozen=True)
class Trial:
  """One arm × seed: its resolved (locked, validated) config and its folder in the workdir."""
  arm: str
  seed: int
  config: ConfigDict
  path: str                 # relative to the sweep workdir
  group: str                # teacher_key: trials of one group share a trained ensemble
  x: Optional[float] = None
  series: str = ""


# ------------------------------------------------------------------------------ resolving


def _pairs(value: Any, field: str) -> list[tuple[str, dict]]:
  """``((name, mapping), ...)`` or ``{name: mapping}`` → list of (name, plain dict)."""
  items = value.items() if hasattr(value, "items") else value
  out = []
  for item in items:
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)
            and (isinstance(item[1], Mapping) or hasattr(item[1], "items"))):
      raise ConfigError(f"{field} entry {item!r} must be a pair (name, {{dotted.key: value}})")
    out.append((item[0], dict(item[1].items())))
  return out


def arm_specs(sweep: ConfigDict) -> list[tuple[str, dict]]:
  """The arms as (name, overrides); checks names are unique and usable as folder names."""
  arms = _pairs(sweep.arms, "sweep.arms") or [(DEFAULT_ARM, {})]
  seen = set()
  for name, _ in arms:
    if not _ARM_NAME.match(name):
      raise ConfigError(f"sweep.arms name {name!r} is not allowed; use letters, digits and "
                        "_ . + = - (it names the arm's folder)")
    if name in seen:
      raise ConfigError(f"sweep.arms name {name!r} appears twice; arm names must be unique")
    seen.add(name)
  return arms


def apply_overrides(config: ConfigDict, arm: str, overrides: Mapping) -> ConfigDict:
  """A locked copy of ``config`` with the arm's dotted overrides; unknown keys are errors."""
  c = copy.deepcopy(config)
  for key, value in overrides.items():
    key = str(key)
    if key == "seed":
      raise ConfigError(f"arm {arm!r}: override 'seed' is not allowed; seeds come from "
                        "sweep.seeds")
    parts = key.split(".")
    node = c
    for i, part in enumerate(parts):
      if not (isinstance(node, ConfigDict) and part in node):
        where = ".".join(parts[:i]) or "the config"
        raise ConfigError(f"arm {arm!r}: unknown config key {key!r} ({part!r} is not in {where})")
      if i < len(parts) - 1:
        node = node[part]
    leaf = parts[-1]
    if isinstance(node[leaf], ConfigDict) and hasattr(value, "items"):
      value = ConfigDict(dict(value.items()))
    try:
      node[leaf] = value
    except TypeError:
      raise ConfigError(f"arm {arm!r}: {key}={value!r} has the wrong type; the config holds a "
                        f"{type(node[leaf]).__name__} there") from None
  c.lock()
  return c


def _numeric(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, key: str, field: str, arm: str) -> float:
  """``value`` of ``key`` (named by ``field``) as the plot's x; ConfigError unless numeric."""
  if not _numeric(value):
    raise ConfigError(f"{field}={key!r} must name a numeric key; arm {arm!r} has {value!r}")
  return float(value)


def _check_sweep(s: ConfigDict, arms: Sequence[str]) -> None:
  seeds = list(s.seeds)
  if not seeds or any(isinstance(v, bool) or not isinstance(v, int) for v in seeds):
    raise ConfigError(f"sweep.seeds={tuple(seeds)!r} must be a non-empty tuple of integers")
  if len(set(seeds)) != len(seeds):
    raise ConfigError(f"sweep.seeds={tuple(seeds)!r} repeats a seed")
  if s.get("table", "all") not in ("all", "metrics"):
    raise ConfigError(f"sweep.table={s.table!r} is not known; choose 'all' (the metrics, then "
                      "the usual fidelity columns) or 'metrics' (only sweep.metrics)")
  if s.get("diverged", "stop") not in ("stop", "record"):
    raise ConfigError(f"sweep.diverged={s.diverged!r} is not known; choose 'stop' (a diverged "
                      "trial stops the sweep) or 'record' (it is recorded and the sweep goes on)")
  if s.get("reference_arm", "") and s.reference_arm not in arms:
    raise ConfigError(f"sweep.reference_arm={s.reference_arm!r} is not in sweep.arms "
                      f"({', '.join(arms)})")
  for field, what, example in (("gap", "top", 100.0), ("reached", "level", 99.0)):
    for item in s.get(field, ()):
      if (not isinstance(item, (tuple, list)) or len(item) != 2 or item[0] not in s.metrics
          or isinstance(item[1], bool) or not isinstance(item[1], (int, float))):
        raise ConfigError(f"sweep.{field} entry {item!r} must be (column, {what}) with the "
                          f"column one of sweep.metrics ({', '.join(s.metrics)}) and {what} a "
                          f"number, e.g. ('distill/agreement', {example})")
  known = ", ".join(metrics.known_columns())
  # Old split names (train/…, train_aug/…) are read as today's, with a note.
  named = tuple(metrics.current_column(m, "sweep.metrics") for m in s.metrics)
  if named != tuple(s.metrics):
    s.metrics = named
  paper = _pairs(s.paper, "sweep.paper")
  renamed = [(name, {metrics.current_column(m, f"sweep.paper[{name!r}]"): v
                     for m, v in values.items()}) for name, values in paper]
  if renamed != paper:
    s.paper = tuple(renamed)
  for m in s.metrics:
    if not metrics.known_column(m):
      raise ConfigError(f"sweep.metrics entry {m!r} is not a result column; choose from: "
                        f"{known}")
  for name, values in _pairs(s.paper, "sweep.paper"):
    if name not in arms:
      raise ConfigError(f"sweep.paper names arm {name!r}, which is not in sweep.arms "
                        f"({', '.join(arms)})")
    for m, v in values.items():
      if not metrics.known_column(m):
        raise ConfigError(f"sweep.paper[{name!r}] metric {m!r} is not a result column; choose "
                          f"from: {known}")
      if plots.paper_number(v) is None:
        raise ConfigError(f"sweep.paper[{name!r}][{m!r}]={v!r} must be a number or '≈number'")


def _check_evaluated(s: ConfigDict, c: ConfigDict) -> None:
  """A sweep.metrics column of a distillation evaluation the trials do not run would stay an
  empty column in every table: refused before anything trains."""
  named = {metrics.LEGACY_SPLITS.get(n, n) for n in c.distill.get("evals", ())}
  named |= set(c.get("evals", {}).keys())
  for m in s.metrics:
    split = m.split("/")[0]
    if split in DISTILL_DEFAULTS and split not in named:
      raise ConfigError(f"sweep.metrics entry {m!r} needs the {split!r} evaluation, which "
                        f"distill.evals={tuple(c.distill.evals)!r} does not run; add {split!r} "
                        "to distill.evals or drop the column")


@contextlib.contextmanager
def _in_arm(arm: str):
  """ConfigErrors raised inside say which arm they come from."""
  try:
    yield
  except ConfigError as e:
    raise ConfigError(f"arm {arm!r}: {e}") from None


def resolve_arms(config: ConfigDict, sweep: ConfigDict,
                 workdir: Optional[str | Path] = None) -> list[Trial]:
  """Every trial of the figure, validated, in run order (all seeds of arm 1, then arm 2, ...).

  Nothing is trained here, so a figure config can be checked end to end in a second. With a
  ``workdir`` the teacher store defaults to ``<workdir>/teachers``.
  """
  arms = arm_specs(sweep)
  _check_sweep(sweep, [name for name, _ in arms])
  s = sweep
  resolved = []  # (arm, config with the arm's own teacher size, x, series)
  for name, overrides in arms:
    c = apply_overrides(config, name, overrides)
    with _in_arm(name):
      validate(c)
      _check_evaluated(s, c)
    c.distill.teacher_members = int(c.distill.teacher_members or c.teacher.ensemble_size)
    if workdir is not None and not c.teacher.store:
      c.teacher.store = str((Path(workdir) / "teachers").absolute())
    x = (_number(get_dotted(c, s.x_key, "sweep.x_key"), s.x_key, "sweep.x_key", name)
         if s.x_key else None)
    series = ""
    if s.series_key:
      series = (f"{s.series_key.split('.')[-1]}="
                f"{get_dotted(c, s.series_key, 'sweep.series_key')}")
    resolved.append((name, c, x, series))

  also = _seed_also(s, arms)
  # Seed-major: a sweep stopped part-way has every arm at its first seeds, not some arms at all
  # seeds and others at none.
  seeded = []  # (arm, seed, config, x, series)
  for seed in s.seeds:
    for name, c, x, series in resolved:
      t = copy.deepcopy(c)
      t.seed = int(seed)
      for k in also:
        set_dotted(t, k, int(seed))
      seeded.append((name, int(seed), t, x, series))
  # Keyed once per arm (a key fingerprints the data; data not there yet keys by its config),
  # or per trial when the seed reaches the teacher (sweep.seed_also). Arms that share a
  # teacher share the largest ensemble any of them asks for.
  per_arm = {name: teacher_key(c.data, c.teacher, missing_ok=True)
             for name, c, _, _ in resolved} if not also else {}
  keys = [per_arm[name] if not also else teacher_key(t.data, t.teacher, missing_ok=True)
          for name, _, t, _, _ in seeded]
  size: dict[str, int] = {}
  for key, (_, _, t, _, _) in zip(keys, seeded):
    size[key] = max(size.get(key, 0), int(t.teacher.ensemble_size))
  checked = set()
  for key, (name, _, t, _, _) in zip(keys, seeded):
    t.teacher.ensemble_size = size[key]
    if (name, key) not in checked:
      with _in_arm(name):
        validate(t)
      checked.add((name, key))
  return [Trial(name, seed, t, f"{name}/seed{seed}", key, x, series)
          for key, (name, seed, t, x, series) in zip(keys, seeded)]


def _seed_also(s: ConfigDict, arms: Sequence[tuple[str, dict]]) -> tuple[str, ...]:
  """``sweep.seed_also``: integer keys that take each trial's seed besides ``seed`` (e.g.
  ``teacher.seed``: a teacher per seed, for a study of the teachers themselves)."""
  also = tuple(str(k) for k in s.get("seed_also", ()))
  for k in also:
    if k == "seed":
      raise ConfigError("sweep.seed_also lists 'seed'; every trial's seed is set already")
    for name, overrides in arms:
      if k in overrides:
        raise ConfigError(f"arm {name!r} overrides {k!r}, which sweep.seed_also sets from the "
                          "trial's seed; drop one of them")
  return also


def select(trials: Sequence[Trial], only: Iterable[str]) -> list[Trial]:
  """The trials of the named arms (all when ``only`` is empty); unknown names are errors."""
  only = [a.strip() for a in only if a.strip()]
  arms = list(dict.fromkeys(t.arm for t in trials))
  for a in only:
    if a not in arms:
      raise ConfigError(f"--only={a!r} is not an arm of this sweep; arms: {', '.join(arms)}")
  return [t for t in trials if not only or t.arm in only]


def teacher_groups(trials: Sequence[Trial]) -> dict[str, list[Trial]]:
  groups: dict[str, list[Trial]] = {}
  for t in trials:
    groups.setdefault(t.group, []).append(t)
  return groups


# ---------------------------------------------------------------------- consistency check


def check_existing(trials: Sequence[Trial], workdir: Path) -> None:
  """Refuses to mix results of another config into this figure's table (or resume from them)."""
  for t in trials:
    stored = Path(workdir) / t.path / "config.json"
    if not stored.exists():
      continue
    diffs = differences(json.loads(stored.read_text()), json.loads(to_json(t.config)))
    if diffs:
      key, was, now = diffs[0]
      raise ConfigError(f"{stored.parent} was run with {key}={was!r}, this sweep has "
                        f"{now!r}; use another --workdir or delete that folder")
