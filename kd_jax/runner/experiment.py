"""One experiment: data → teacher (stored or trained) → student → analyses → ``results.json``.

``run(config, workdir)`` is what ``kd_jax.main`` and every trial of ``kd_jax.sweeps.sweep`` call.
A workdir holds one run: a rerun with the same config resumes it (or, finished, prints its
results), one with another config is refused unless ``restart`` (``kd_jax.runner.identity``).
``results.json`` is nested by split: ``{"splits": {"test": {"agreement": ..., ...},
"distill": {...}, ...}, ...}`` with split and metric names from ``kd_jax.kd.metrics``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np
from ml_collections import ConfigDict

from kd_jax.core import atomic, distributed, parallel, provenance, wallclock
from kd_jax.kd import metrics
from kd_jax.train import writer as report
from kd_jax.runner import identity as rundir, student as student_lib, teachers
from kd_jax.config import to_json
from kd_jax.runner.identity import store_keys
from kd_jax.runner.validate import steps_per_call_note, validate
from kd_jax.data import inputs, splits as splits_lib
from kd_jax.core.errors import ConfigError
from kd_jax.train.trainer import Hook

RESULTS = rundir.RESULTS
#: Rows of the printed table, in order: (split, row label).
#: The distillation split is ``distill`` everywhere: here, results.json, CSV columns and
#: kd_jax.load_split (README.md, "Outputs": the names of the splits).
TABLE_ROWS = (("test", "test"), ("distill", "distill"), ("val", "val (held out of distill)"),
              ("distill_aug", "distill (augmented)"), ("running", "distill (running)"))


def check_workdir(workdir: Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise ConfigError(f"--workdir={workdir} is not writable ({e.strerror}); "
                      "pass a folder you can write to") from None


def load_data(data: ConfigDict, num_devices: int) -> tuple[Any, inputs.ExperimentData]:
  """The device mesh (``run.num_devices``) and the experiment's splits (``config.data``) on it,
  announced with one ``[data]`` line: the start of a run, of a teacher-only job
  (kd_jax.sweeps.jobs) and of a GAN's training (kd_jax.gan_main)."""
  mesh = parallel.make_mesh(num_devices)
  host = inputs.load_splits(data)
  print(f"[data] {splits_lib.describe(host)}", flush=True)
  return mesh, inputs.load(data, mesh, host)


def run(config: ConfigDict, workdir: str | Path, hook: Optional[Hook] = None,
        restart: bool = False) -> dict[str, Any]:
  """The whole experiment; returns (and writes) the results dict.

  ``restart`` deletes the run already in ``workdir`` (not its teachers) and starts over;
  without it, a workdir holding a run of another config is a ConfigError.
  """
  workdir = Path(workdir)
  validate(config)
  primary = distributed.is_primary()  # on many hosts process 0 alone writes files
  if primary:
    check_workdir(workdir)
  if restart and primary:
    gone = rundir.clear(config.teacher.store, workdir)
    if gone:
      print(f"[run] --restart: deleted {', '.join(gone)} in {workdir}", flush=True)
  distributed.barrier("kd_jax.run.start")
  rundir.check(json.loads(to_json(config)), workdir)
  finished = _finished(workdir)
  # Every process has read config.json and results.json before process 0 rewrites config.json
  # (on many hosts a reader could otherwise see it half-written and stop alone, leaving the
  # others waiting in a collective for good).
  distributed.barrier("kd_jax.run.checked")
  if finished is not None:
    return finished
  if primary:
    atomic.write_text(workdir / rundir.CONFIG, to_json(config))
  # Wall time of every process that worked on this run, not only this one (a resumed run).
  clock = wallclock.WallClock(workdir, enabled=primary)
  mesh, data = load_data(config.data, config.run.num_devices)
  note = steps_per_call_note(int(config.run.steps_per_call), jax.default_backend())
  if note and primary:
    print(note, flush=True)
  writer = report.MetricWriter(workdir, tensorboard=config.run.tensorboard, on_write=clock.save)
  try:
    teacher = teachers.get_teacher(config.teacher, store_keys(config.data, config.teacher),
                                   config.run, workdir, data, mesh, writer, hook, config.evals)
    gan, gan_info = None, None
    if float(config.distill.synth_ratio) > 0:
      from kd_jax.runner import gans  # the SN-GAN only when its samples are used
      gan, gan_info = gans.gan_for_run(config.gan, gans.store_keys(config.gan, config.data),
                                       workdir, data, teacher, config.run.tensorboard)
    student = student_lib.distill(config.distill, config.run, int(config.seed), workdir, data,
                                  teacher, mesh, writer, hook, gan=gan, evals=config.evals)
  finally:
    writer.close()
  splits = dict(student.results)
  extra: dict[str, Any] = {}
  if config.analysis.cka or config.analysis.plane or config.analysis.line:
    from kd_jax.runner import analysis  # matplotlib only when needed
    extra = analysis.run_analyses(config.analysis, config.distill, workdir, data, teacher,
                                  student)
    if "cka" in extra:
      splits["cka"] = extra.pop("cka")
  if gan_info is not None:
    extra["gan"] = gan_info
  members_used = int(config.distill.teacher_members or config.teacher.ensemble_size)
  results = {
      "name": config.name,
      "splits": splits,
      **extra,
      "teacher": {"entry": str(teacher.entry), "members_used": members_used},
      "sizes": data.host.info,
      "devices": [str(d) for d in mesh.devices.flat],
      "wall_time_s": round(clock.spent(), 1),
      "processes": clock.processes,   # > 1: resumed; wall_time_s sums them
  }
  if primary:
    # The code, machine and flags it ran with (XLA:CPU numbers are bitwise only on one CPU type).
    results["provenance"] = provenance.record(workdir)  # atomically: a kill while writing leaves no half results.json
    atomic.write_json(workdir / RESULTS, results, default=_json_default)
  _print_results(results, f"wrote {workdir / RESULTS}")
  distributed.barrier("kd_jax.run.end")
  return results


def _finished(workdir: Path) -> Optional[dict[str, Any]]:
  """The results of a run that finished before: printed, not recomputed, so ``results.json``
  keeps the wall time of the process that computed it."""
  try:
    results = metrics.current_results(json.loads((workdir / RESULTS).read_text()),
                                      str(workdir / RESULTS))
  except (OSError, ValueError):  # absent or cut short by a kill: (re)compute it
    return None
  print(f"[run] {workdir} finished before: its results, not recomputed (--restart starts it "
        "over):", flush=True)
  _print_results(results, f"{workdir / RESULTS} computed")
  return results


def _print_results(results: dict[str, Any], done: str) -> None:
  splits = results["splits"]
  rows = [(label, splits[s]) for s, label in TABLE_ROWS
          if s in splits and s != "running"]
  print(report.table(rows), flush=True)
  if "running" in splits:
    print("running (train mode, augmented batch, last epoch): "
          + ", ".join(f"{k} {v:.4g}" for k, v in splits["running"].items()), flush=True)
  print(f"{done} ({results['wall_time_s']:.0f} s)", flush=True)


def _json_default(o: Any) -> Any:
  if isinstance(o, np.integer):
    return int(o)
  if isinstance(o, np.floating):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)
