"""submitit launchers: local processes give the in-process table, a preempted job resumes, the
SLURM submission carries the flags, teachers run first and once.

References are the in-process runner's own files (results.csv, results.json) from the same
figure, and sbatch scripts as submitit writes them; no launcher number is compared with itself.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import stat
import sys
from pathlib import Path

import pytest

from kd_jax.sweeps import jobs, launchers, sweep
from test_sweep import FIGURE, fig

TESTS = Path(__file__).parent
NOT_COMPARED = ("run/wall_time_s", "finished")  # when, not what


@pytest.fixture(scope="module")
def figure_file(tmp_path_factory) -> Path:
  """tests/test_sweep.py's figure: one seed of two arms sharing one teacher, so a launcher
  runs a teacher job and then two trial jobs at once (each job a fresh process, which traces
  and lowers every program again: one device, the test split evaluated alone)."""
  path = tmp_path_factory.mktemp("configs") / "tiny_figure.py"
  name = '  c.name = "tiny_figure"\n'
  assert FIGURE.count(name) == 1
  path.write_text(FIGURE.replace(name, name + '  c.run.num_devices = 1\n'
                                 '  c.teacher.evals = c.distill.evals = ("test",)\n'))
  return path


@pytest.fixture(autouse=True)
def job_env(monkeypatch):
  """Job processes import the test's hooks (tests/ on their path) and log quietly."""
  path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
  monkeypatch.setenv("PYTHONPATH", path)


def read_rows(path: Path) -> list[dict[str, str]]:
  with path.open() as f:
    return [{k: v for k, v in r.items() if k not in NOT_COMPARED} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def in_process(figure_file, tmp_path_factory) -> Path:
  workdir = tmp_path_factory.mktemp("in_process")
  sweep.run_sweep(*fig(figure_file), workdir)
  return workdir


def submitit_logs(workdir: Path) -> dict[str, str]:
  return {p.name: p.read_text() for p in (workdir / launchers.JOBS / "submitit").glob("*.out")}


def test_local_executor_writes_the_in_process_table(in_process, figure_file, tmp_path, capsys):
  options = launchers.LaunchOptions(cluster="local", parallel=2, poll_s=0.5)
  sweep.run_sweep(*fig(figure_file), tmp_path, launch=options)
  out = capsys.readouterr().out
  assert read_rows(tmp_path / "results.csv") == read_rows(in_process / "results.csv")
  assert len(read_rows(tmp_path / "results.csv")) == 2
  # the teacher group trained once, in its own job, submitted before any trial
  logs = submitit_logs(tmp_path)
  trained = [n for n, text in logs.items() if "[teacher] training" in text]
  reused = [n for n, text in logs.items() if "[teacher] reusing" in text]
  assert len(trained) == 1 and len(reused) == 2, (trained, reused)
  submitted = [l for l in out.splitlines() if "submitted" in l]
  assert submitted[0].startswith("[sweep] submitted teacher ") and len(submitted) == 3
  assert "done: 2/2" in out
  md = (tmp_path / "results.md").read_text()
  assert "trials finished: 2/2" in md and (tmp_path / "tiny_figure.png").exists()


class PreemptOnce:
  """A hook that sends the job the signal SLURM sends before preemption, once (marker file)."""

  def __init__(self, marker: str, phase: str = "distill", epoch: int = 1):
    self.marker, self.phase, self.epoch = marker, phase, epoch

  def __call__(self, phase: str, epoch: int) -> None:
    if (phase, epoch) == (self.phase, self.epoch) and not os.path.exists(self.marker):
      Path(self.marker).write_text(str(os.getpid()))
      os.kill(os.getpid(), signal.SIGUSR2)


def test_preempted_trial_job_requeues_and_resumes_to_the_same_result(in_process, figure_file,
                                                                      tmp_path):
  (trial,) = [t for t in sweep.resolve_arms(*fig(figure_file), in_process)
              if t.path == "m2_t4/seed0"]  # the stored teacher is reused; the student is preempted
  marker = tmp_path / "preempted"
  executor = launchers.make_executor(launchers.LaunchOptions(cluster="local"), tmp_path / "jobs")
  import jax
  job = executor.submit(jobs.TrialJob(trial.config, str(tmp_path / "trial"),
                                      jax.config.jax_compilation_cache_dir or "",
                                      PreemptOnce(str(marker))))
  job.result()
  log = job.paths.stdout.read_text()
  assert marker.exists() and int(marker.read_text()) != 0
  assert "Caught signal SIGUSR2" in log and "[distill] resumed from the checkpoint after epoch 1" in log
  got = json.loads((tmp_path / "trial" / "results.json").read_text())
  want = json.loads((in_process / trial.path / "results.json").read_text())
  assert got["splits"] == want["splits"]


def test_checkpoint_resubmits_the_same_job():
  job = jobs.TrialJob(config=None, workdir="w")
  delayed = job.checkpoint()
  assert delayed.function is job and delayed.args == () and delayed.kwargs == {}
  teacher = jobs.TeacherJob(config=None, workdir="t")
  assert teacher.checkpoint().function is teacher


# -------------------------------------------------------------------- SLURM, without a cluster

FAKE_SBATCH = """#!/bin/sh
cp "$1" "{out}/script$(ls {out} | wc -l).sh"
echo "Submitted batch job 4242"
"""


def test_slurm_submission_script_carries_the_flags(figure_file, tmp_path, monkeypatch):
  """submitit's real SlurmExecutor, with `sbatch` replaced by a script that keeps the file."""
  bin_dir, out = tmp_path / "bin", tmp_path / "sbatch_files"
  bin_dir.mkdir(), out.mkdir()
  for name, text in (("sbatch", FAKE_SBATCH.format(out=out)), ("srun", "#!/bin/sh\n")):
    (bin_dir / name).write_text(text)
    (bin_dir / name).chmod(stat.S_IRWXU)
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  options = launchers.LaunchOptions(cluster="slurm", parallel=3, gpus_per_trial=2,
                                    cpus_per_trial=8, time_min=90, slurm_partition="gpu",
                                    slurm_account="kdproj")
  executor = launchers.make_executor(options, tmp_path / "jobs")
  c, s = fig(figure_file)
  s.seeds = (0, 1)  # 4 trials: more than parallel=3, which submitit's array then caps at 3
  trials = sweep.resolve_arms(c, s, tmp_path)
  with executor.batch():
    handles = [executor.submit(jobs.TrialJob(t.config, str(tmp_path / t.path))) for t in trials]
  (script,) = out.iterdir()
  lines = script.read_text().splitlines()
  for flag in ("--partition=gpu", "--account=kdproj", "--gpus-per-node=2",
               "--cpus-per-task=8", "--time=90", f"--array=0-{len(trials) - 1}%3",
               "--ntasks-per-node=1", "--nodes=1", "--job-name=kd_jax"):
    assert f"#SBATCH {flag}" in lines, (flag, lines)
  assert any(l.startswith("#SBATCH --signal=USR2@") for l in lines)  # preemption → checkpoint
  assert any("submitit.core._submit" in l for l in lines)
  assert [h.job_id for h in handles] == [f"4242_{i}" for i in range(len(trials))]
  pickled = sorted((tmp_path / "jobs").glob("*_submitted.pkl"))
  assert len(pickled) == len(trials)
  with pickled[0].open("rb") as f:
    submitted = pickle.load(f)
  assert isinstance(submitted.function, jobs.TrialJob)
  assert {handles[0].submission().function.workdir} <= {str(tmp_path / t.path) for t in trials}


def test_local_cluster_refuses_slurm_flags(tmp_path):
  with pytest.raises(launchers.ConfigError, match="--slurm_partition") as err:
    launchers.make_executor(launchers.LaunchOptions(cluster="local", slurm_partition="gpu"),
                            tmp_path)
  assert "\n" not in str(err.value)
  with pytest.raises(launchers.ConfigError, match="--cluster='pbs'"):
    launchers.make_executor(launchers.LaunchOptions(cluster="pbs"), tmp_path)


# ----------------------------------------------- the runner's order and failures (in process)


def test_teachers_run_first_and_a_failed_teacher_fails_its_trials(figure_file, tmp_path,
                                                                   monkeypatch):
  """submitit's debug executor runs jobs in this process: the order of calls is observable."""
  calls = []
  c, s = fig(figure_file)
  s.arms = (("a", {}), ("b", {"teacher.epochs": 3}))  # two teacher groups
  s.seeds = (0, 1)
  s.paper = ()

  def train_teacher(config, workdir, hook=None):
    calls.append(("teacher", int(config.teacher.epochs)))
    if config.teacher.epochs == 3:
      raise RuntimeError("out of memory")
    return workdir

  def run(config, workdir, hook=None):
    calls.append(("trial", Path(workdir).relative_to(tmp_path).as_posix()))
    raise RuntimeError("stop here")  # results are not the point of this test

  from kd_jax.runner import experiment
  monkeypatch.setattr(jobs, "train_teacher", train_teacher)
  monkeypatch.setattr(experiment, "run", run)
  options = launchers.LaunchOptions(cluster="debug", poll_s=0.01)
  monkeypatch.setattr("pdb.post_mortem", lambda *a: None)  # the debug executor's failure path
  with pytest.raises(launchers.JobsFailed) as err:
    sweep.run_sweep(c, s, tmp_path, launch=options)
  assert sorted(calls[:2]) == [("teacher", 2), ("teacher", 3)]
  assert sorted(calls[2:]) == [("trial", "a/seed0"), ("trial", "a/seed1")]
  failed = {label: e for label, e, _ in err.value.failed}
  assert failed["trial b/seed0"].startswith("its teacher job failed (") and "out of memory" in \
      failed["trial b/seed0"]
  assert "stop here" in failed["trial a/seed0"] and len(failed) == 5  # 1 teacher + 4 trials
  assert "\n" not in str(err.value) and "rerun the same command" in str(err.value)


def test_submitit_flags_without_the_launcher_are_one_clear_error(figure_file, tmp_path):
  import subprocess
  cmd = [sys.executable, "-m", "kd_jax.sweep", f"--config={figure_file}",
         f"--workdir={tmp_path}", "--parallel=4", "--dry_run"]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
  assert "--parallel is for --launcher=submitit" in out.stderr
  ok = subprocess.run(cmd + ["--launcher=submitit", "--cluster=slurm"], capture_output=True,
                      text=True, timeout=120)
  assert ok.returncode == 0, ok.stderr
  assert "m2_t4/seed0" in ok.stdout and not (tmp_path / "_jobs").exists()
