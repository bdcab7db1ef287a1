"""Many hosts on one machine: 2 processes × 2 CPU devices (coordinator on 127.0.0.1) train the
same tiny run as 1 process × 4 devices, and each process streams only its own examples.

Same final parameters is judged as in tests/equivalence.py: each leaf's difference against
that leaf's training update (the two programs add floats in different orders).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from equivalence import assert_same_training
from kd_jax import checkpoints, experiment
from kd_jax.data import pipelines
from tiny import multihost_config

TESTS = Path(__file__).resolve().parent


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _spawn(workdir: Path, store: Path) -> None:
  port = _free_port()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]))
  env.pop("XLA_FLAGS", None)
  procs = [subprocess.Popen([sys.executable, str(TESTS / "multihost_worker.py"), str(port),
                             str(i), str(workdir), str(store)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=240)[0])
  finally:
    for p in procs:
      p.kill() if p.poll() is None else None
  for i, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 0, f"process {i} failed:\n{out[-3000:]}"
  assert "[teacher] epoch 2/2" in outs[0] and "[teacher]" not in outs[1], "process 0 logs alone"


def _final(directory: Path):
  return checkpoints.read_host(directory)[1]


def test_two_processes_train_what_one_process_trains(tmp_path):
  ref = experiment.run(multihost_config(tmp_path / "s1"), tmp_path / "w1")
  _spawn(tmp_path / "w2", tmp_path / "s2")
  assert (tmp_path / "w2" / "results.json").exists()
  # Teachers (2 members) and the student: final against final, scaled by the update from init.
  entry1, entry2 = (next((tmp_path / s).glob("*-m2")) for s in ("s1", "s2"))
  t1, t2 = _final(entry1 / "final"), _final(entry2 / "final")
  assert_same_training(t2["final"]["params"], t1["final"]["params"], t1["initial"]["params"])
  # Student: the last epoch's update is the scale (checkpoints keep epochs 1 and 2).
  student = tmp_path / "w1" / "checkpoints" / "student"
  s1, s2 = _final(student), _final(tmp_path / "w2" / "checkpoints" / "student")
  before = checkpoints.read_host(student, 1)[1]
  assert_same_training(s2["params"], s1["params"], before["params"])
  assert ref["splits"]["test"]["agreement"] > 0
  _check_disjoint_columns(tmp_path / "w2")


def _check_disjoint_columns(workdir: Path) -> None:
  """Per training step, the processes read complementary halves of the global batch, and
  together exactly the examples of the one-process plan."""
  rows = [np.load(workdir / f"taken_{i}.npz")["taken"] for i in range(2)]
  keys = {tuple(r[:4]) for r in np.concatenate(rows)}
  assert len(keys) > 4
  for key in keys:
    parts = [r[np.all(r[:, :4] == key, axis=1)] for r in rows]
    cols = [set(map(tuple, p[:, [4, 5]].tolist())) for p in parts]
    assert cols[0] and cols[1] and not cols[0] & cols[1], f"step {key}: shared columns"
    seed, stream, epoch, step = (int(v) for v in key)
    both = np.concatenate(parts)
    size = 64 if stream == 1 else 128                  # tiny_config's teacher / distill sets
    batch = 16 if stream == 1 else 32
    members = 2 if stream == 1 else 1
    idx, _ = pipelines.epoch_plan(seed, members, epoch, size, batch, stream)
    assert len(both) == members * batch
    for m, pos, example in both[:, 4:]:
      assert idx[step, m, pos] == example
