"""Where a table's numbers came from, read off its trials: per trial in results.csv (``commit``,
``machine``, ``finished``), and as the header of results.md — one commit and one machine named
only when every trial ran there; a mix is spelled out by arm, and a sweep run as several
``--only`` commands (e.g. two processes on two cores) names each with its trials. Derived from the trials alone, so a
table rebuilt from its per-trial files is byte-identical to the one the sweep wrote.
"""
from __future__ import annotations

import shlex
from typing import Any, Optional, Sequence

from kd_jax.core import provenance

#: Plain (text) columns of results.csv that say where each trial ran.
COLUMNS = ("commit", "machine", "finished")


#: Row key (not a results.csv column) of the ``--only`` value the trial's sweep command had.
ONLY = "only"
#: Row key (not a results.csv column) of the ``--config`` value the trial's sweep command had:
#: a trial another figure's sweep ran with the same trial config (bar its ``name``) and that was
#: copied into this sweep's workdir is named in the header, so a reader knows where it ran.
CONFIG = "config"


def _config_of(words: Sequence[str]) -> str:
  """The ``--config`` value among a command's words ("" without one), its file by name only
  (``configs/fig3.py:mini`` and ``/abs/configs/fig3.py:mini`` are one figure)."""
  for i, w in enumerate(words):
    value = (w.split("=", 1)[1] if w.startswith("--config=") else
             words[i + 1] if w == "--config" and i + 1 < len(words) else None)
    if value is not None:
      path, sep, arg = value.partition(":")
      return path.rsplit("/", 1)[-1] + sep + arg
  return ""


def _split_only(command: str) -> tuple[list[str], Optional[str]]:
  """(the command's words without ``--only``, its ``--only`` value or None)."""
  try:
    words = shlex.split(command)
  except ValueError:       # an unbalanced quote: not ours to parse
    return command.split(), None
  rest, only, i = [], None, 0
  while i < len(words):
    if words[i].startswith("--only="):
      only = words[i].split("=", 1)[1]
    elif words[i] == "--only" and i + 1 < len(words):
      only, i = words[i + 1], i + 1
    else:
      rest.append(words[i])
    i += 1
  return rest, only


def row_fields(p: Optional[dict[str, Any]]) -> dict[str, str]:
  """The results.csv fields of one trial's ``provenance`` record (none for older results),
  and the ``--only`` its command had (kept out of the CSV: it is the header's)."""
  if not p:
    return {}
  row = {"commit": provenance.code_label(p), "machine": provenance.machine_label(p["machine"]),
         "finished": str(p.get("finished", ""))[:16].replace("T", " ")}
  if p.get("command"):
    words, only = _split_only(p["command"])
    row[ONLY] = only or ""
    row[CONFIG] = _config_of(words)
  return row


def borrowed_line(command: str, rows: Sequence[dict]) -> Optional[str]:
  """The header line naming trials whose sweep command had another ``--config`` than the
  table's (None when all ran in this sweep): their numbers stand for this sweep's trials
  because ``collect`` checked their config equals this sweep's trial config bar ``name``."""
  own = _config_of(_split_only(command)[0]) if command else ""
  others = [r for r in rows if r.get(CONFIG) and own and r[CONFIG] != own]
  if not others:
    return None
  by_config: dict[str, list[dict]] = {}
  for r in others:
    by_config.setdefault(r[CONFIG], []).append(r)
  parts = "; ".join(f"`--config={c}` ran {_seeds_by_arm(rs)}" for c, rs in by_config.items())
  return (f"- run by another figure's sweep: {len(others)} of {len(rows)} trials, the same trial "
          f"config but for its `name` (checked when collected; their config.json and "
          f"results.json keep the name they ran under) — {parts}")


def command_line(command: str, rows: Sequence[dict]) -> str:
  """The header's command: the one given, or — when the trials ran under several ``--only``
  values — that command without ``--only`` and each value with its trial count, so a table
  finished by two processes does not name only the last one's arms."""
  command = command or "kd_jax.sweeps.sweep.run_sweep"
  counts: dict[str, int] = {}
  for r in rows:
    if ONLY in r:
      counts[r[ONLY]] = counts.get(r[ONLY], 0) + 1
  if len(counts) < 2:
    return f"- command: `{command}`"
  runs = "; ".join((f"`--only={v}`" if v else "no `--only`") + f" ({n} trial{'s' if n > 1 else ''})"
                   for v, n in counts.items())
  return (f"- command: `{shlex.join(_split_only(command)[0])}`, run as {len(counts)} commands "
          f"that differ in `--only`: {runs}")


def has_provenance(rows: Sequence[dict]) -> bool:
  return bool(rows) and all(r.get("commit") for r in rows)


def _seeds_by_arm(rows: Sequence[dict]) -> str:
  """``a seeds 1, 2; b seed 0``."""
  seeds: dict[str, list[str]] = {}
  for r in rows:
    seeds.setdefault(r["arm"], []).append(str(r["seed"]))
  return "; ".join(f"{arm} seed{'s' if len(s) > 1 else ''} {', '.join(s)}"
                   for arm, s in seeds.items())


def _by_arm(rows: Sequence[dict], key: str) -> str:
  """``abc1234: arms a, b (4 trials); def5678: arm c (2 trials)``."""
  groups: dict[str, dict[str, int]] = {}
  for r in rows:
    arms = groups.setdefault(str(r[key]), {})
    arms[r["arm"]] = arms.get(r["arm"], 0) + 1
  parts = []
  for value, arms in groups.items():
    n = sum(arms.values())
    parts.append(f"{value}: arm{'s' if len(arms) > 1 else ''} {', '.join(arms)} "
                 f"({n} trial{'s' if n > 1 else ''})")
  return "; ".join(parts)


def header(command: str, rows: Sequence[dict]) -> list[str]:
  """The command, machine, date and commit lines of results.md, from the trials' records."""
  machines = list(dict.fromkeys(r["machine"] for r in rows))
  commits = list(dict.fromkeys(r["commit"] for r in rows))
  done = sorted(r["finished"] for r in rows if r.get("finished"))
  date = done[0] if not done or done[0] == done[-1] else f"{done[0]} – {done[-1]}"
  machine = (machines[0] if len(machines) == 1 else
             "several, per trial in results.csv's `machine` column — " + _by_arm(rows, "machine"))
  commit = (commits[0] if len(commits) == 1 else
            "mixed, per trial in results.csv's `commit` column — " + _by_arm(rows, "commit"))
  dirty = any("+diff" in c for c in commits)
  borrowed = borrowed_line(command, rows)
  return [command_line(command, rows), *([borrowed] if borrowed else []),
          f"- machine: {machine}",
          f"- date: {date}" if date else "- date: —",
          f"- kd_jax commit: {commit}"
          + (" (+diff: run with uncommitted changes, saved as diffs/<sha256>.diff)" if dirty else "")]
