"""``python -m kd_jax.sweep_report --rebuild DIR``: a results folder's table, CSV and plot
rewritten from its files under today's rules, its measured numbers and provenance kept."""
from __future__ import annotations

import datetime
import shlex
from pathlib import Path
from typing import Optional, Sequence

from ml_collections import ConfigDict

from kd_jax import config_files
from kd_jax.sweeps.report import (columns, draw_and_tabulate, git_commit, plot_name, read_csv,
                                  write_csv)
from kd_jax.sweeps.trials import resolve_arms


def _old_header(md: Path) -> tuple[list[str], str, str]:
  """The provenance lines of an existing results.md, the command they name and its teachers
  line (keys of the teachers that run trained, which today's code may hash differently)."""
  lines = md.read_text().splitlines() if md.exists() else []
  keep = [ln for ln in lines if ln.startswith(("- command:", "- machine:", "- date:",
                                               "- kd_jax commit:"))]
  command = next((ln.split("`")[1] for ln in keep if ln.startswith("- command:")), "")
  teachers = next((ln for ln in lines if ln.startswith("Teachers: ")), "")
  return keep, command, teachers


def _figure_of(command: str, config_arg: str) -> tuple[ConfigDict, ConfigDict]:
  """The trial config (with the command's ``--config.key=value`` overrides) and the sweep."""
  args = shlex.split(command)
  spec = config_arg or next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), "")
  if not spec:
    raise ValueError("no --config in results.md's command; pass --config=<figure file>[:arg]")
  spec = spec[spec.find("configs/"):] if "configs/" in spec else spec  # as run from the clone
  overrides = [a[len("--config."):].split("=", 1) for a in args
               if a.startswith("--config.") and "=" in a]
  return config_files.load(spec, overrides), config_files.load_sweep(spec)


def rebuild(out: Path, config_arg: str = "") -> Path:
  """Redraws ``out``'s plot and rewrites its results.md and results.csv from its results.csv,
  under today's rules and column names; the measured numbers and their provenance stay."""
  out = Path(out)
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
  this = (f"- rebuilt from results.csv by `python -m kd_jax.sweep_report --rebuild {out}` "
          f"on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}"
          + (f" (kd_jax commit {git_commit()})" if git_commit() else ""))
  draw_and_tabulate(config.name, sweep, trials, rows, out, command=command,
                    header=header + [this], teachers=teachers)
  return out


def main(argv: Optional[Sequence[str]] = None) -> None:
  """``python -m kd_jax.sweep_report --rebuild DIR [--config FILE[:arg]]``."""
  import argparse
  import sys
  p = argparse.ArgumentParser(prog="python -m kd_jax.sweep_report", description=rebuild.__doc__)
  p.add_argument("--rebuild", required=True, nargs="+", metavar="DIR",
                 help="folders holding a results.csv (and the results.md that names its command)")
  p.add_argument("--config", default="", help="figure file[:arg]; default: results.md's command")
  a = p.parse_args(argv)
  for d in a.rebuild:
    try:
      print(f"rebuilt {rebuild(Path(d), a.config)}")
    except (ValueError, OSError) as e:
      print(f"error: {d}: {e}", file=sys.stderr)
      sys.exit(2)
