"""Many hosts on one machine: 2 processes × 2 CPU devices (coordinator on 127.0.0.1) train the
same tiny teacher ensemble as 1 process × 4 devices, each process streams only its own columns
of every global batch, and process 0 alone logs.

Same final parameters is judged as in tests/equivalence.py: each leaf's difference against
that leaf's training update (the two programs add floats in different orders).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from equivalence import assert_same_training
from kd_jax.core import checkpoints, parallel
from kd_jax.train import writer as report
from kd_jax.runner import teachers
from kd_jax.runner.identity import teacher_key
from kd_jax.data import inputs, pipelines
from tiny import multihost_config

TESTS = Path(__file__).resolve().parent


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(workdir: Path, store: Path, mode: str) -> list[subprocess.Popen]:
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
  env.pop("XLA_FLAGS", None)
  return [subprocess.Popen([sys.executable, str(TESTS / "multihost_worker.py"), str(port),
                            str(i), str(workdir), str(store), mode], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
          for i in range(2)]


def _spawn(workdir: Path, store: Path, mode: str = "teacher") -> list[str]:
  procs = _start(workdir, store, mode)
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=240)[0])
  except subprocess.TimeoutExpired:  # one stopped, the other waits in a collective: show both
    for p in procs:
      p.kill()
    logs = [p.communicate()[0] for p in procs]
    raise AssertionError("a process did not finish:\n" + "\n".join(
        f"--- process {i}:\n{log[-3000:]}" for i, log in enumerate(logs))) from None
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for i, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, f"process {i} failed:\n{out[-3000:]}"
  return outs


def test_two_processes_train_what_one_process_trains(tmp_path):
  config = multihost_config(tmp_path / "s1")
  mesh = parallel.make_mesh(4)
  teachers.get_teacher(config.teacher, teacher_key(config.data, config.teacher), config.run,
                       tmp_path / "w1", inputs.load(config.data, mesh), mesh,
                       report.MetricWriter(tmp_path / "w1", tensorboard=False))
  outs = _spawn(tmp_path / "w2", tmp_path / "s2")
  assert "[teacher] epoch 2/2" in outs[0] and "[teacher]" not in outs[1], "process 0 logs alone"
  assert (tmp_path / "w2" / "metrics.jsonl").exists()
  entry1, entry2 = (next((tmp_path / s).glob("*-m2")) for s in ("s1", "s2"))
  assert (entry2 / "teacher.json").exists()
  t1, t2 = (checkpoints.read_host(e / "final")[1] for e in (entry1, entry2))
  for a, b in zip(*(jax.tree.leaves(t["initial"]) for t in (t1, t2)), strict=True):
    np.testing.assert_array_equal(a, b)                  # same members, same init
  assert_same_training(t2["final"]["params"], t1["final"]["params"], t1["initial"]["params"])
  _check_columns(tmp_path / "w2")


def _check_columns(workdir: Path) -> None:
  """Per training step, the processes read complementary halves of the global batch, and
  together exactly the examples of the one-process plan."""
  rows = [np.load(workdir / f"taken_{i}.npz")["taken"] for i in range(2)]
  keys = {tuple(r[:4]) for r in np.concatenate(rows)}   # (seed, stream, epoch, step)
  assert len(keys) == 2 * 4                              # 2 epochs × ceil(64 / 16) steps
  for key in keys:
    parts = [r[np.all(r[:, :4] == key, axis=1)] for r in rows]
    cols = [set(map(tuple, p[:, [4, 5]].tolist())) for p in parts]   # (member, position)
    assert cols[0] and cols[1] and not cols[0] & cols[1], f"step {key}: shared columns"
    assert {pos for _, pos in cols[0]} == set(range(8)), "process 0 reads columns 0-7"
    seed, stream, epoch, step = (int(v) for v in key)
    idx, _ = pipelines.epoch_plan(seed, 2, epoch, 64, 16, stream)
    both = np.concatenate(parts)
    assert len(both) == 2 * 16
    for m, pos, example in both[:, 4:]:
      assert idx[step, m, pos] == example


def test_two_processes_distil_as_one_and_resume_after_one_is_killed(tmp_path):
  """The whole run (teacher, then distillation) on 2 processes × 2 devices: process 1 is
  killed after the first distillation checkpoint (process 0 is then stopped, as a scheduler
  ends a job that lost a task); the rerun resumes and ends at the student that 1 process × 4
  devices distils. Process 0 alone writes: every epoch is logged once."""
  from kd_jax.runner import experiment
  from tiny import multihost_run_config
  one = experiment.run(multihost_run_config(tmp_path / "s1"), tmp_path / "w1")
  procs = _start(tmp_path / "w2", tmp_path / "s2", "run_kill")
  try:
    out1 = procs[1].communicate(timeout=240)[0]
    assert procs[1].returncode == -9 and "killing myself" in out1, out1[-3000:]
    assert not (tmp_path / "w2" / "results.json").exists()
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.communicate()
  outs = _spawn(tmp_path / "w2", tmp_path / "s2", "run")
  assert "[distill] resumed from the checkpoint after epoch 1" in outs[0], outs[0][-2000:]
  assert "[distill]" not in outs[1], "process 0 logs alone"
  lines = [json.loads(l) for l in (tmp_path / "w2" / "metrics.jsonl").read_text().splitlines()]
  epochs = [r["epoch"] for r in lines if r["phase"] == "distill"]
  assert epochs == sorted(set(epochs)) and epochs[-1] == 3, epochs  # each epoch once
  two = json.loads((tmp_path / "w2" / "results.json").read_text())
  s1, s2 = (checkpoints.read_host(tmp_path / w / "checkpoints" / "student")[1]
            for w in ("w1", "w2"))
  init = _student_init(multihost_run_config(tmp_path / "s1"))
  assert_same_training(s2["params"], s1["params"], init)
  for k in ("agreement", "student_acc"):
    assert abs(two["splits"]["test"][k] - one["splits"]["test"][k]) <= 2.0, (k, two, one)


def _student_init(c):
  """The student's initial parameters (random init: the model, seed and stream of the run)."""
  from kd_jax.models import get_model
  from kd_jax.train import modeling, steps
  opts = {k: v for k, v in c.distill.model.items() if k != "name"}
  model = get_model(c.distill.model.name, 10, **opts)
  return modeling.init_variables(model, c.seed, steps.STUDENT_STREAM, 1, (28, 28, 1))["params"]
