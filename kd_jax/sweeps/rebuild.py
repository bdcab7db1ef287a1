"""Results folders a reader can audit: every number traced to a committed trial file.

    python -m kd_jax.sweep_report --collect runs/fig6_init_mini --out experiments/results/fig6_init_mini
    python -m kd_jax.sweep_report --rebuild experiments/results/fig6_init_mini

``--collect`` copies each finished trial of a sweep's workdir — its ``results.json`` (with the
commit, machine and flags it ran with), ``config.json`` and per-epoch ``metrics.jsonl``
(gzipped) — into ``<out>/trials/<arm>/seed<k>/``, a dirty tree's diff into
``<out>/diffs/<sha256>.diff``, the command into ``<out>/sweep.json``, the training record
and last sample grid of any GAN the trials used (``gan_metrics.jsonl``,
``gan_samples_<step>.png``), and builds
``results.csv``, ``results.md`` and the plot from those files alone. Trials that ran from a
tree with uncommitted changes (or recorded no commit) are refused unless ``--allow_dirty``.

``--rebuild`` regenerates the same three outputs from the per-trial files, byte for byte (the
test suite rebuilds every committed folder). A folder from before per-trial files holds only
its ``results.csv``: it is rebuilt from that, its provenance lines kept.

``--restore DIR --workdir W`` puts a collected folder's finished trials back into a sweep
workdir (``results.json``, ``config.json``, ``metrics.jsonl``), so the same sweep command run
there skips them and runs only the rest: a sweep longer than one machine's session is
finished across sessions or machines by collecting what is done (say into
``experiments/partial/<name>``), committing it, and restoring it on the next machine. A trial
the workdir already holds is left as it is; one whose config differs from the figure's on a
key that changes results is refused.

``--best_rates DIR [--by val/agreement]`` prints, from a learning-rate grid's results folder
(arms ``<remedy>_lr<rate>``), each remedy's rate with the best mean of the column as the
``TUNED_LR`` lines its tuned config holds (``kd_jax.sweeps.tuning``).
"""
from __future__ import annotations

import datetime
import gzip
import json
import shlex
import shutil
from pathlib import Path
from typing import Any, Optional, Sequence

from ml_collections import ConfigDict

from kd_jax import config_files
from kd_jax.core import atomic, provenance
from kd_jax.sweeps.report import (collect_rows, columns, draw_and_tabulate, git_commit,
                                  plot_name, read_csv, teachers_line, write_csv)
from kd_jax.sweeps.trials import resolve_arms

SWEEP_FILE = "sweep.json"     # {"command": ..., "teachers": ...}: what the folder's trials ran
TRIALS = "trials"
DIFFS = "diffs"
#: Per-trial files copied as they are; metrics.jsonl is gzipped; small plots of analyses too.
TRIAL_FILES = ("results.json", "config.json")
MAX_EXTRA_BYTES = 1 << 20
#: Analysis outputs of a trial kept with it (Fig 6c's loss plane: its grid and plots).
ANALYSIS_DIRS = ("plane",)


# ------------------------------------------------------------------ shared


def _figure_of(command: str, config_arg: str) -> tuple[ConfigDict, ConfigDict]:
  """The trial config (with the command's ``--config.key=value`` overrides) and the sweep."""
  args = shlex.split(command)
  spec = config_arg or next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), "")
  if not spec:
    raise ValueError("no --config in the folder's command; pass --config=<figure file>[:arg]")
  spec = spec[spec.find("configs/"):] if "configs/" in spec else spec  # as run from the clone
  overrides = [a[len("--config."):].split("=", 1) for a in args
               if a.startswith("--config.") and "=" in a]
  return config_files.load(spec, overrides), config_files.load_sweep(spec)


def _short_paths(value: Any) -> Any:
  """Absolute paths in a committed file shortened to ``…/<last two parts>``: they name one
  machine's folders, and what identifies a teacher or data set is its content key anyway."""
  if isinstance(value, dict):
    return {k: _short_paths(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_short_paths(v) for v in value]
  if isinstance(value, str) and value.startswith("/") and "\n" not in value and " " not in value:
    parts = Path(value).parts
    return "…/" + "/".join(parts[-2:]) if len(parts) > 3 else value
  return value


def _gzip(src: Path, dst: Path) -> None:
  """gzip without a time stamp or file name in the header: the same file, the same bytes."""
  with src.open("rb") as f, atomic.replacing(dst, "wb") as out:
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as z:
      shutil.copyfileobj(f, z)


def _rows_and_trials(out: Path, command: str, config_arg: str):
  config, sweep = _figure_of(command, config_arg)
  trials = resolve_arms(config, sweep, None)
  known = {t.path for t in trials}
  on_disk = {p.parent.relative_to(out / TRIALS).as_posix()
             for p in (out / TRIALS).glob("*/*/results.json")}
  unknown = sorted(on_disk - known)
  if unknown:
    raise ValueError(f"{out / TRIALS} holds trials {unknown} that the figure does not declare; "
                     "pass the matching --config")
  return config, sweep, trials, collect_rows(trials, out / TRIALS)


# ------------------------------------------------------------------ collect


def collect(workdir: Path, out: Path, allow_dirty: bool = False) -> Path:
  """Copies a sweep's finished trials into ``out`` (see the module docstring) and builds it."""
  workdir, out = Path(workdir), Path(out)
  meta_file = workdir / SWEEP_FILE
  if not meta_file.is_file():
    raise ValueError(f"{meta_file} is missing: not a sweep workdir of this kd_jax version "
                     "(run the sweep command again to write it; finished trials are kept)")
  command = json.loads(meta_file.read_text())["command"]
  config, sweep = _figure_of(command, "")
  trials = [t for t in resolve_arms(config, sweep, None)
            if (workdir / t.path / "results.json").is_file()]
  if not trials:
    raise ValueError(f"{workdir} has no finished trial to collect")
  records = {t.path: json.loads((workdir / t.path / "results.json").read_text()) for t in trials}
  unclean = [p for p, r in records.items()
             if not r.get("provenance", {}).get("commit") or r["provenance"].get("dirty")]
  if unclean and not allow_dirty:
    raise ValueError(f"trials {', '.join(unclean[:4])}{' …' if len(unclean) > 4 else ''} ran "
                     "from a tree with uncommitted changes (or recorded no commit); commit and "
                     "rerun them, or pass --allow_dirty to publish them with their diff named")
  _check_borrowed(workdir, trials, records, config.name)
  if (out / TRIALS).exists():
    shutil.rmtree(out / TRIALS)
  for t in trials:
    src, dst = workdir / t.path, out / TRIALS / t.path
    dst.mkdir(parents=True, exist_ok=True)
    for name in TRIAL_FILES:
      if (src / name).is_file():
        data = _short_paths(json.loads((src / name).read_text()))
        atomic.write_text(dst / name, json.dumps(data, indent=1, sort_keys=True) + "\n")
    if (src / "metrics.jsonl").is_file():
      _gzip(src / "metrics.jsonl", dst / "metrics.jsonl.gz")
    _copy_extras(src, dst, MAX_EXTRA_BYTES)
    p = records[t.path].get("provenance", {})
    if p.get("dirty") and (src / provenance.DIFF_FILE).is_file():
      (out / DIFFS).mkdir(parents=True, exist_ok=True)
      shutil.copyfile(src / provenance.DIFF_FILE, out / DIFFS / f"{p['diff_sha256']}.diff")
  _copy_gans(records.values(), out)
  meta = {"command": command, "teachers": teachers_line(resolve_arms(config, sweep, None))}
  atomic.write_text(out / SWEEP_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
  return rebuild(out)


def _check_borrowed(workdir: Path, trials: Sequence[Any], records: dict[str, dict],
                    name: str) -> None:
  """A trial that ran under another figure's name (copied from that sweep's workdir, where it
  had the same trial config) is published only if its config.json equals this sweep's trial
  config (:func:`_trial_differences`); the table's header then names where it ran."""
  for t in trials:
    ran_as = records[t.path].get("name", name)
    if ran_as == name:
      continue
    stored = workdir / t.path / "config.json"
    if not stored.is_file():
      raise ValueError(f"{workdir / t.path} ran as {ran_as!r} and has no config.json to check "
                       "it against this sweep's trial; rerun it in this sweep")
    diffs = _trial_differences(json.loads(stored.read_text()), t)
    if diffs:
      k, was, now = diffs[0]
      raise ValueError(f"{workdir / t.path} ran as {ran_as!r} with {k}={was!r}, this sweep's "
                       f"trial has {now!r}: it cannot stand for it; rerun it in this sweep")


def _copy_gans(records: Sequence[dict], out: Path) -> None:
  """The training record of each GAN the trials distilled from: its store entry's
  ``metrics.jsonl`` (losses, FID/IS, the teacher's view per evaluation) as
  ``gan_metrics.jsonl`` and its last sample grid as ``gan_samples_<step>.png`` (with the
  entry's name after ``gan`` when the trials used several GANs). An entry not on this machine
  is named in one line and skipped: the trials' own files are complete without it."""
  entries = sorted({r["gan"]["entry"] for r in records
                    if isinstance(r.get("gan"), dict) and r["gan"].get("entry")})
  for entry in entries:
    src = Path(entry)
    tag = "" if len(entries) == 1 else f"_{src.name}"
    if not (src / "metrics.jsonl").is_file():
      print(f"[collect] the GAN entry {entry} is not here: its metrics and samples are not "
            "collected (collect on the machine that trained it to include them)", flush=True)
      continue
    shutil.copyfile(src / "metrics.jsonl", out / f"gan{tag}_metrics.jsonl")
    grids = sorted((src / "samples").glob("step*.png"))
    if grids:
      shutil.copyfile(grids[-1], out / f"gan{tag}_samples_{grids[-1].name}")


# ------------------------------------------------------------------ restore


def _trial_differences(stored: dict, trial: Any) -> list[tuple[str, Any, Any]]:
  """Where a trial's stored config.json differs from this sweep's ``trial`` in a key that
  changes results: identity differences, but a shortened path (``…/a/b``, ``_short_paths``)
  matches any current path with the same last parts, and the experiment's ``name`` does not
  count (a trial copied from another figure's sweep with the same trial config ran under that
  figure's name; its numbers are the same, see ``collect``)."""
  from kd_jax.config import to_json
  from kd_jax.runner.identity import differences
  return [(k, a, b) for k, a, b in differences(stored, json.loads(to_json(trial.config)))
          if k != "name" and not (isinstance(a, str) and a.startswith("…/")
                                  and isinstance(b, str) and b.endswith(a[1:]))]


def _copy_extras(src: Path, dst: Path, max_bytes: Optional[int] = None) -> None:
  """A trial's plots and analysis outputs (``ANALYSIS_DIRS``: a loss plane) from ``src`` to
  ``dst``, the same relative paths; files over ``max_bytes`` stay behind."""
  for extra in sorted([*src.glob("*.png"), *(f for d in ANALYSIS_DIRS
                                             for f in (src / d).glob("*.*"))]):
    if extra.is_file() and (max_bytes is None or extra.stat().st_size <= max_bytes):
      (dst / extra.parent.relative_to(src)).mkdir(parents=True, exist_ok=True)
      shutil.copyfile(extra, dst / extra.relative_to(src))


def restore(out: Path, workdir: Path) -> list[str]:
  """Copies the finished trials of the collected folder ``out`` into the sweep workdir
  ``workdir`` (module docstring); returns the trial paths restored."""
  from kd_jax.config import to_json
  out, workdir = Path(out), Path(workdir)
  meta_file = out / SWEEP_FILE
  if not meta_file.is_file():
    raise ValueError(f"{meta_file} is missing: --restore reads a folder written by --collect")
  config, sweep, trials, _ = _rows_and_trials(out, json.loads(meta_file.read_text())["command"],
                                              "")
  restored = []
  for t in trials:
    src, dst = out / TRIALS / t.path, workdir / t.path
    if not (src / "results.json").is_file() or (dst / "results.json").exists():
      continue
    current = json.loads(to_json(t.config))
    diffs = _trial_differences(json.loads((src / "config.json").read_text()), t)
    if diffs:
      k, was, now = diffs[0]
      raise ValueError(f"{src} ran with {k}={was!r}, the figure now has {now!r}: it cannot "
                       "stand for this sweep's trial; rerun it instead")
    dst.mkdir(parents=True, exist_ok=True)
    if (src / "metrics.jsonl.gz").is_file():
      with gzip.open(src / "metrics.jsonl.gz", "rb") as f:
        atomic.write_text(dst / "metrics.jsonl", f.read().decode())
    # This machine's paths, so the sweep's identity check and later collects read it as theirs.
    atomic.write_text(dst / "config.json", json.dumps(current, indent=1, sort_keys=True) + "\n")
    # The trial's plots and analysis outputs (a loss plane), so a later --collect keeps them.
    _copy_extras(src, dst)
    shutil.copyfile(src / "results.json", dst / "results.json")  # last: it marks the trial done
    restored.append(t.path)
  if not (workdir / SWEEP_FILE).exists():
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(meta_file, workdir / SWEEP_FILE)
  return restored


# ------------------------------------------------------------------ rebuild


def _old_header(md: Path) -> tuple[list[str], str, str]:
  """The provenance lines of an existing results.md, the command they name and its teachers
  line (keys of the teachers that run trained, which today's code may hash differently)."""
  lines = md.read_text().splitlines() if md.exists() else []
  keep = [ln for ln in lines if ln.startswith(("- command:", "- machine:", "- date:",
                                               "- kd_jax commit:"))]
  command = next((ln.split("`")[1] for ln in keep if ln.startswith("- command:")), "")
  teachers = next((ln for ln in lines if ln.startswith("Teachers: ")), "")
  return keep, command, teachers


def rebuild(out: Path, config_arg: str = "") -> Path:
  """Rewrites ``out``'s results.csv, results.md and plot from its per-trial files (or, for a
  folder from before them, from its results.csv), under today's rules and column names."""
  out = Path(out)
  if (out / SWEEP_FILE).is_file():
    meta = json.loads((out / SWEEP_FILE).read_text())
    config, sweep, trials, rows = _rows_and_trials(out, meta["command"], config_arg)
    write_csv(out / "results.csv", columns(sweep, trials, rows), rows)
    draw_and_tabulate(config.name, sweep, trials, rows, out, command=meta["command"],
                      teachers=meta.get("teachers", ""))
    return out
  header, command, teachers = _old_header(out / "results.md")
  config, sweep = _figure_of(command, config_arg)
  trials = resolve_arms(config, sweep, None)
  rows = read_csv(out / "results.csv")
  unknown = sorted({r["arm"] for r in rows} - {t.arm for t in trials})
  if unknown:
    raise ValueError(f"{out / 'results.csv'} has arms {unknown} that the figure does not "
                     "declare; rename them in the CSV or pass the matching --config")
  write_csv(out / "results.csv", columns(sweep, trials, rows), rows)
  for old in out.glob("*.png"):
    if old.name == plot_name(config.name):
      old.unlink()
  header = [h for h in header if not h.startswith("- rebuilt from")]
  this = (f"- rebuilt from results.csv by `python -m kd_jax.sweep_report --rebuild {out}` "
          f"on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}"
          + (f" (kd_jax commit {git_commit()})" if git_commit() else ""))
  draw_and_tabulate(config.name, sweep, trials, rows, out, command=command,
                    header=header + [this], teachers=teachers)
  return out


def main(argv: Optional[Sequence[str]] = None) -> None:
  """``python -m kd_jax.sweep_report --rebuild DIR ...`` or ``--collect WORKDIR --out DIR``."""
  import argparse
  import sys
  p = argparse.ArgumentParser(prog="python -m kd_jax.sweep_report", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  g = p.add_mutually_exclusive_group(required=True)
  g.add_argument("--rebuild", nargs="+", metavar="DIR",
                 help="results folders to rewrite from their per-trial files (or results.csv)")
  g.add_argument("--collect", metavar="WORKDIR", help="a sweep's workdir to publish")
  g.add_argument("--restore", metavar="DIR",
                 help="a collected folder whose trials go back into --workdir (to finish it)")
  g.add_argument("--best_rates", metavar="DIR",
                 help="a tuning sweep's results folder: print each remedy's best rate as the "
                      "TUNED_LR lines of its config")
  p.add_argument("--by", default="val/agreement",
                 help="with --best_rates: the column whose mean over seeds picks the rate")
  p.add_argument("--out", help="with --collect: the results folder to write")
  p.add_argument("--workdir", help="with --restore: the sweep workdir to fill")
  p.add_argument("--allow_dirty", action="store_true",
                 help="with --collect: publish trials that ran with uncommitted changes")
  p.add_argument("--config", default="", help="figure file[:arg]; default: the folder's command")
  a = p.parse_args(argv)
  try:
    if a.collect:
      if not a.out:
        raise ValueError("--collect needs --out <results folder>")
      print(f"collected {a.collect} into {collect(Path(a.collect), Path(a.out), a.allow_dirty)}")
      return
    if a.best_rates:
      from kd_jax.sweeps import tuning
      print(tuning.as_python(tuning.best_rates_of(Path(a.best_rates), a.by)))
      return
    if a.restore:
      if not a.workdir:
        raise ValueError("--restore needs --workdir <the sweep's workdir>")
      done = restore(Path(a.restore), Path(a.workdir))
      print(f"restored {len(done)} finished trial(s) of {a.restore} into {a.workdir}; run the "
            "sweep command there to finish the rest")
      return
    for d in a.rebuild:
      print(f"rebuilt {rebuild(Path(d), a.config)}")
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
