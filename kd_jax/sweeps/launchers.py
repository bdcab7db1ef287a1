"""A figure's trials as parallel jobs with submitit: on a SLURM cluster or as local processes.

    python -m kd_jax.sweep --config=configs/fig14_alpha.py:mini --workdir=runs/fig14 \\
        --launcher=submitit --cluster=local --parallel=2
    python -m kd_jax.sweep --config=configs/fig3_augmentation.py --workdir=runs/fig3 \\
        --launcher=submitit --cluster=slurm --slurm_partition=gpu --gpus_per_trial=1 \\
        --time_min=720 --parallel=16

Teacher groups that are not yet stored train first, each as its own job; a group's trials are
submitted when its teacher job has finished (so no trial waits on a GPU, and no teacher trains
twice: the store's lock covers the rest). The runner waits, prints done/total with an ETA,
rewrites results.csv/.md and the plot after every finished trial (``kd_jax.sweeps.report``, as
the in-process runner does) and ends with an error naming the failed trials and their logs.
Rerunning the command reruns only trials without a results.json, resuming each from its own
checkpoints. Jobs write their logs under ``<workdir>/_jobs/submitit``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ml_collections import ConfigDict

from kd_jax.runner.identity import find_teacher
from kd_jax.sweeps import jobs, report as sweep_report
from kd_jax.core.errors import ConfigError, UserFacingError
from kd_jax.runner.experiment import RESULTS
from kd_jax.core.registry import Registry
from kd_jax.train.writer import format_duration
from kd_jax.train.trainer import Hook
from kd_jax.sweeps.trials import Trial, teacher_groups

JOBS = "_jobs"  # arm names start with a letter or digit, so this never names an arm


@dataclasses.dataclass(frozen=True)
class LaunchOptions:
  """How jobs are submitted; the SLURM fields are ignored by the local executor."""
  cluster: str = "local"      # a name in CLUSTERS
  parallel: int = 2           # trials at once: local processes, or SLURM array parallelism
  gpus_per_trial: int = 0
  cpus_per_trial: int = 0     # 0: the cluster's default
  time_min: int = 24 * 60     # per job; a job reaching it is checkpointed and requeued
  slurm_partition: str = ""
  slurm_account: str = ""
  poll_s: float = 0.0         # 0: the cluster's default


@dataclasses.dataclass(frozen=True)
class Cluster:
  build: Callable[[LaunchOptions, Path], Any]  # (options, folder) → submitit executor
  throttled: bool   # the runner keeps at most `parallel` jobs in flight (no scheduler does)
  poll_s: float


CLUSTERS: Registry = Registry("cluster", "--cluster")


def _common(o: LaunchOptions) -> dict[str, Any]:
  out = {"timeout_min": o.time_min, "gpus_per_node": o.gpus_per_trial, "tasks_per_node": 1,
         "nodes": 1, "stderr_to_stdout": True, "name": "kd_jax"}
  if o.cpus_per_trial:
    out["cpus_per_task"] = o.cpus_per_trial
  return out


def _slurm(o: LaunchOptions, folder: Path):
  ex = jobs.import_submitit().AutoExecutor(folder=folder, cluster="slurm")
  extra = {"slurm_partition": o.slurm_partition, "slurm_account": o.slurm_account}
  ex.update_parameters(**_common(o), slurm_array_parallelism=o.parallel,
                       **{k: v for k, v in extra.items() if v})
  return ex


def _local(o: LaunchOptions, folder: Path):
  if o.slurm_partition or o.slurm_account:
    raise ConfigError("--slurm_partition/--slurm_account are for --cluster=slurm; drop them "
                      "for --cluster=local")
  ex = jobs.import_submitit().AutoExecutor(folder=folder, cluster="local")
  ex.update_parameters(**{k: v for k, v in _common(o).items() if k != "cpus_per_task"})
  return ex


def _debug(o: LaunchOptions, folder: Path):
  """In this process, one job at a time (submitit's DebugExecutor): for debugging a launch."""
  ex = jobs.import_submitit().AutoExecutor(folder=folder, cluster="debug")
  ex.update_parameters(timeout_min=o.time_min)
  return ex


CLUSTERS.register("slurm")(Cluster(_slurm, throttled=False, poll_s=30.0))
CLUSTERS.register("local")(Cluster(_local, throttled=True, poll_s=1.0))
CLUSTERS.register("debug")(Cluster(_debug, throttled=False, poll_s=0.0))


def make_executor(options: LaunchOptions, folder: Path):
  if options.parallel < 1:
    raise ConfigError(f"--parallel={options.parallel} must be at least 1")
  if options.time_min < 1:
    raise ConfigError(f"--time_min={options.time_min} must be at least 1 (minutes per job)")
  return CLUSTERS.get(options.cluster).build(options, folder)


# ---------------------------------------------------------------------------- the runner


@dataclasses.dataclass
class _Job:
  """A submitted (or queued) job: a teacher group's (trial None) or one trial's."""
  label: str
  fn: Any
  group: str
  trial: Optional[Trial] = None
  handle: Any = None


def _status(handle) -> Optional[str]:
  """None while running; then "" for success or the last line of the job's error."""
  try:
    if not handle.done():
      return None
    err = handle.exception()
  except Exception as e:  # noqa: BLE001 - the debug executor raises the job's own error here
    err = e
  if err is None:
    return ""
  lines = [l.strip() for l in str(err).strip().splitlines() if l.strip()]
  return lines[-1] if lines else type(err).__name__


def _log(handle) -> str:
  try:
    return str(handle.paths.stdout)
  except Exception:  # noqa: BLE001 - the debug executor has no log of its own
    return "(no log)"


class _Runner:
  """Submits ready jobs (teachers first), polls them, releases each group's trials."""

  def __init__(self, executor, cluster: Cluster, options: LaunchOptions, on_trial_done):
    self.executor, self.cluster, self.options = executor, cluster, options
    self.on_trial_done = on_trial_done
    self.ready: list[_Job] = []
    self.running: list[_Job] = []
    self.waiting: dict[str, list[_Job]] = {}   # group → trials waiting for its teacher
    self.failed: list[tuple[str, str, str]] = []  # (label, error, log)

  def submit_ready(self) -> None:
    room = (self.options.parallel - len(self.running) if self.cluster.throttled
            else len(self.ready))
    batch, self.ready = self.ready[:max(room, 0)], self.ready[max(room, 0):]
    if not batch:
      return
    with self.executor.batch():
      handles = [self.executor.submit(j.fn) for j in batch]
    for j, h in zip(batch, handles):
      j.handle = h
      print(f"[sweep] submitted {j.label} as job {h.job_id}", flush=True)
    self.running += batch

  def poll(self) -> None:
    for j in list(self.running):
      error = _status(j.handle)
      if error is None:
        continue
      self.running.remove(j)
      if error:
        self.failed.append((j.label, error, _log(j.handle)))
        print(f"[sweep] {j.label} FAILED: {error} (log {_log(j.handle)})", flush=True)
      if j.trial is None:  # a teacher: release its trials, or fail them with it
        for t in self.waiting.pop(j.group, []):
          if error:
            self.failed.append((t.label, f"its teacher job failed ({error})", _log(j.handle)))
          else:
            self.ready.append(t)
      elif not error:
        self.on_trial_done(j)

  def run(self) -> None:
    poll_s = self.options.poll_s or self.cluster.poll_s
    try:
      while self.ready or self.running:
        self.submit_ready()
        time.sleep(poll_s)
        self.poll()
    except KeyboardInterrupt:
      for j in self.running:
        j.handle.cancel(check=False)
      print(f"[sweep] interrupted: cancelled {len(self.running)} running jobs", flush=True)
      raise


def _plan(todo: list[Trial], workdir: Path, cache_dir: str, hook: Optional[Hook],
          runner: _Runner) -> None:
  """Teacher jobs for groups not yet stored (first), trials of stored groups ready at once."""
  for key, group in teacher_groups(todo).items():
    c = group[0].config
    trial_jobs = [_Job(f"trial {t.path}", jobs.TrialJob(t.config, str(workdir / t.path),
                                                        cache_dir, hook), key, t)
                  for t in group]
    if find_teacher(Path(c.teacher.store), c.data, c.teacher, int(c.teacher.ensemble_size),
                    missing_ok=True):
      runner.ready += trial_jobs
      continue
    fn = jobs.TeacherJob(c, str(workdir / JOBS / f"teacher-{key}"), cache_dir, hook)
    runner.ready.insert(0, _Job(f"teacher {key} ({c.teacher.ensemble_size} × "
                                f"{c.teacher.model.name})", fn, key))
    runner.waiting[key] = trial_jobs


def run_submitit(name: str, sweep: ConfigDict, trials: list[Trial], chosen: list[Trial],
                 workdir: Path, options: LaunchOptions, *, command: str = "",
                 hook: Optional[Hook] = None) -> list[dict[str, Any]]:
  """Runs the missing ``chosen`` trials as submitit jobs and writes the sweep's outputs (of
  every trial; ``name``: the figure's config name); returns rows. ``kd_jax.sweeps.sweep.
  run_sweep`` resolves and checks the trials first."""
  import jax
  cluster = CLUSTERS.get(options.cluster)
  executor = make_executor(options, workdir / JOBS / "submitit")
  n = len(chosen)
  todo = [t for t in chosen if not (workdir / t.path / RESULTS).exists()]
  done, t0 = n - len(todo), time.perf_counter()
  print(f"[sweep] {n} trials, {done} finished before; launching {len(todo)} on "
        f"{options.cluster} (parallel {options.parallel})", flush=True)

  def on_trial_done(job: _Job) -> None:
    nonlocal done
    done += 1
    finished_here = done - (n - len(todo))
    eta = (time.perf_counter() - t0) / finished_here * (n - done)
    sweep_report.write_outputs(name, sweep, trials, workdir, command)
    print(f"[sweep] {job.label} done: {done}/{n}, ETA {format_duration(eta)}", flush=True)

  runner = _Runner(executor, cluster, options, on_trial_done)
  _plan(todo, workdir, jax.config.jax_compilation_cache_dir or "", hook, runner)
  runner.run()
  rows = sweep_report.write_outputs(name, sweep, trials, workdir, command)
  print(f"[sweep] {done}/{n} trials done; wrote {workdir / 'results.csv'}, results.md and the "
        "plot", flush=True)
  if runner.failed:
    raise JobsFailed(runner.failed)
  return rows


class JobsFailed(UserFacingError):
  """Some jobs failed: one line naming them, their errors and logs, and how to go on."""

  def __init__(self, failed: list[tuple[str, str, str]]):
    self.failed = failed
    shown = "; ".join(f"{label}: {err} (log {log})" for label, err, log in failed)
    super().__init__(f"{len(failed)} job(s) failed: {shown}; fix the cause and rerun the same "
                     "command, which runs only the missing trials")
