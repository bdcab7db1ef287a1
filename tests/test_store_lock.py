"""The teacher store's lock: one process trains, the other waits and reuses; stale locks go.

Holders are real separate processes (killed with SIGKILL where a test needs a dead one);
trainings are counted from each process's own '[teacher] training' line and weights compared
leaf by leaf with numpy.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from kd_jax.core import store_lock

TESTS = Path(__file__).parent

# Holds the lock at argv[1] until argv[2] exists; argv[3] (optional) is the host it claims.
HOLDER = """
import os, socket, sys, time
if len(sys.argv) > 3:
  socket.gethostname = lambda: sys.argv[3]
import filelock
lease = filelock.SoftFileLease(sys.argv[1], lease_duration=float(sys.argv[4]) if len(sys.argv) > 4
                               else 600.0, heartbeat_interval=1.0)
lease.acquire()
print("held", flush=True)
while not os.path.exists(sys.argv[2]):
  time.sleep(0.05)
lease.release()
"""


def start_holder(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
  lock, gate = tmp_path / "x.lock", tmp_path / "gate"
  p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(gate), *extra],
                       stdout=subprocess.PIPE, text=True)
  assert p.stdout.readline().strip() == "held"
  return p, lock, gate


def test_a_marker_is_read_completely_or_not_at_all(tmp_path):
  """The holder creates its marker and then writes it: a waiter reading at any byte of that
  write sees "no holder yet" or the holder's true pid and host, never a holder with '?'."""
  holder, lock, gate = start_holder(tmp_path, "node-x")
  full = lock.read_bytes()
  gate.write_text("go")
  holder.wait(timeout=30)
  assert full.endswith(b"\n") and b"pid=%d" % holder.pid in full
  partial = tmp_path / "partial.lock"
  complete = 0
  for n in range(len(full) + 1):
    partial.write_bytes(full[:n])
    got = store_lock._marker(partial)
    if got is not None:
      complete += 1
      assert got[0]["pid"] == str(holder.pid) and got[0]["host"] == "node-x", (n, got)
      assert store_lock._who(got[0]) == f"pid {holder.pid} on host node-x"
  assert complete >= 1  # the whole marker is read


def test_a_live_holder_is_waited_for_then_the_lock_is_ours(tmp_path):
  holder, lock, gate = start_holder(tmp_path)
  said = []

  def open_gate_after_first_message(msg):
    said.append(msg)
    gate.write_text("go")

  with store_lock.hold(lock, "teacher abc", stale_after=600, poll=0.2,
                       say=open_gate_after_first_message):
    assert holder.wait(timeout=30) == 0  # it released before we got in
  assert len(said) == 1 and f"pid {holder.pid}" in said[0] and "is held by" in said[0]
  assert not lock.exists()


def test_a_lock_left_by_a_killed_process_on_this_host_is_taken_at_once(tmp_path):
  holder, lock, _ = start_holder(tmp_path)
  holder.send_signal(signal.SIGKILL)
  holder.wait(timeout=30)
  said, t0 = [], time.monotonic()
  with store_lock.hold(lock, "teacher abc", stale_after=600, poll=0.2, say=said.append):
    pass
  assert time.monotonic() - t0 < 30  # far below the 600 s timeout: the holder is known dead
  assert len(said) == 1 and "has died" in said[0] and f"pid {holder.pid}" in said[0]


def test_a_stale_lock_of_another_host_is_taken_after_its_timeout(tmp_path):
  """A node that went down: its pid cannot be checked, only the lock's missing heartbeat."""
  stale_after = 3.0
  holder, lock, _ = start_holder(tmp_path, "node-gone", str(stale_after))
  holder.send_signal(signal.SIGKILL)
  holder.wait(timeout=30)
  said, t0 = [], time.monotonic()
  with store_lock.hold(lock, "teacher abc", stale_after=stale_after, poll=0.2, say=said.append):
    waited = time.monotonic() - t0
  assert stale_after <= waited < stale_after + 20
  assert "is held by" in said[0] and "node-gone" in said[0]
  assert "took over the stale lock" in said[-1] and "node-gone" in said[-1]


def test_another_timeout_than_the_holders_is_one_clear_error(tmp_path):
  holder, lock, gate = start_holder(tmp_path, "node-gone", "5.0")
  try:
    with pytest.raises(store_lock.ConfigError, match="KD_JAX_LOCK_STALE_S") as err:
      with store_lock.hold(lock, "teacher abc", stale_after=7.0, poll=0.2, say=lambda m: None):
        pass
    assert "\n" not in str(err.value)
  finally:
    gate.write_text("go")
    holder.wait(timeout=30)


# ------------------------------------------------------------- two processes, one teacher

# get_teacher of tests/tiny.py's teacher; blocks after its first epoch (lock held) until the
# gate file exists, then saves the teacher's final weights.
TEACHER = """
import os, sys, time
from pathlib import Path
store, workdir, gate, cache_dir, tests = sys.argv[1:6]
sys.path.insert(0, tests)
from kd_jax.core import cache
cache.use_compile_cache(cache_dir)
import jax, numpy as np
from tiny import tiny_config
from kd_jax.core import parallel
from kd_jax.data import inputs
from kd_jax.runner import teachers
from kd_jax.runner.identity import teacher_key
from kd_jax.train import writer as report

def hold_until_gate(phase, epoch):
  while not os.path.exists(gate):
    time.sleep(0.1)

c = tiny_config(store, members=2)
mesh = parallel.make_mesh(c.run.num_devices)
data = inputs.load(c.data, mesh, inputs.load_splits(c.data))
writer = report.MetricWriter(Path(workdir), tensorboard=False)
t = teachers.get_teacher(c.teacher, teacher_key(c.data, c.teacher), c.run, Path(workdir), data,
                         mesh, writer, hold_until_gate)
writer.close()
np.savez(Path(workdir) / "final.npz", *jax.tree.leaves(jax.device_get(t.final)))
"""


def wait_for(predicate, timeout: float, what: str, show=lambda: "") -> None:
  t0 = time.monotonic()
  while not predicate():
    if time.monotonic() - t0 > timeout:
      raise AssertionError(f"timed out waiting for {what}: {show()}")
    time.sleep(0.2)


def test_two_processes_needing_one_untrained_teacher_train_it_once(tmp_path):
  store, gate = tmp_path / "store", tmp_path / "gate"
  cache_dir = jax.config.jax_compilation_cache_dir or str(tmp_path / "cache")
  procs, outs = [], []
  for name in ("a", "b"):  # started at once
    (tmp_path / name).mkdir()
    out = (tmp_path / f"{name}.log").open("w")
    outs.append(tmp_path / f"{name}.log")
    procs.append(subprocess.Popen(
        [sys.executable, "-c", TEACHER, str(store), str(tmp_path / name), str(gate), cache_dir,
         str(TESTS)], stdout=out, stderr=subprocess.STDOUT, text=True))
  text = lambda: [p.read_text() for p in outs]
  # the trainer is held inside training (lock taken) until the other says it waits
  wait_for(lambda: sum("[teacher] training" in t for t in text()) == 1
           and any("[lock] teacher" in t and "is held by" in t for t in text()), 300,
           "one process training and the other waiting", text)
  gate.write_text("go")
  for p in procs:
    assert p.wait(timeout=300) == 0, text()
  logs = text()
  assert sum(t.count("[teacher] training") for t in logs) == 1, logs
  trainer = 0 if "[teacher] training" in logs[0] else 1
  assert "[teacher] reusing 2-member ensemble" in logs[1 - trainer]
  assert f"pid {procs[trainer].pid}" in logs[1 - trainer]  # it named who it waited for
  assert "pid ?" not in logs[1 - trainer] and "host ?" not in logs[1 - trainer]
  a, b = (np.load(tmp_path / n / "final.npz") for n in ("a", "b"))
  assert len(a.files) == len(b.files) > 0
  for k in a.files:
    np.testing.assert_array_equal(a[k], b[k])
  assert len([e for e in store.iterdir() if (e / "teacher.json").exists()]) == 1
  assert not any(store.glob("*.lock"))  # released
