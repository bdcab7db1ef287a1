"""``--time_budget``: a run stops right after a checkpoint when the next one would come past the
budget, in every phase, and budgeted runs chained one after another end exactly where one
uninterrupted run ends (bitwise: same program, same machine).

Time is a fake clock that moves a fixed step per reading, so where a run stops is a function
of the code's checkpoint boundaries, never of how fast this machine is.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from kd_jax.core import budget
from kd_jax.core.errors import ConfigError, OutOfTime
from kd_jax.runner import experiment, gans
from kd_jax.sweeps import sweep as sweep_lib
from kd_jax.train import gan_steps
from tiny import FakeClock, tiny_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_budget_after():
  yield
  budget.start(0)


def test_durations_parse_and_a_bad_one_is_one_line():
  assert budget.parse("9m") == 540 and budget.parse("90s") == 90
  assert budget.parse("1.5h") == 5400 and budget.parse("600") == 600 and budget.parse("") == 0
  for bad in ("9 minutes", "-3m", "0", "m"):
    with pytest.raises(ConfigError, match=r"--time_budget=.* is not a duration; write e\.g\. 9m"):
      budget.parse(bad)


def test_stops_when_the_next_interval_would_pass_the_deadline():
  budget.start(100, FakeClock(10))  # start reads the clock twice: deadline 110, last 20
  budget.at_checkpoint()            # now 30, interval 10: 40 ≤ 110
  clock = budget._budget.clock
  clock.step = 35
  budget.at_checkpoint()            # now 65, interval 35: 100 ≤ 110
  with pytest.raises(budget.TimeUp):
    budget.at_checkpoint()          # now 100, interval 35: 135 > 110
  budget.start(0)
  budget.at_checkpoint()            # no budget: never stops


def _chain(run_once, clock_step: float, seconds: float, limit: int = 20):
  """Reruns ``run_once`` with a fresh budget (a new process) until it finishes; returns its
  result and every OutOfTime on the way."""
  stops = []
  for _ in range(limit):
    budget.start(seconds, FakeClock(clock_step))
    try:
      return run_once(), stops
    except OutOfTime as e:
      assert e.epoch == e.saved, "stopped anywhere but right after a checkpoint"
      assert str(e).startswith("stopped for the time budget after ")
      assert str(e).endswith("; rerun the same command to resume")
      stops.append(e)
  raise AssertionError(f"not finished after {limit} budgeted runs: {stops}")


def test_chained_budgeted_runs_end_as_one_run_teacher_and_distill(tmp_path):
  straight = experiment.run(tiny_config(tmp_path / "s1", teacher_epochs=4, distill_epochs=4),
                            tmp_path / "straight")
  config = tiny_config(tmp_path / "s2", teacher_epochs=4, distill_epochs=4)
  # budget 45 from a clock at 10 (deadline 55): checkpoints at 30, 40, 50; the next (60) would
  # pass it, so each run stops after its third checkpoint
  result, stops = _chain(lambda: experiment.run(config, tmp_path / "chained"), 10, 45)
  assert {e.phase for e in stops} == {"teacher", "distill"}, [str(e) for e in stops]
  assert result["splits"] == straight["splits"]
  assert str(stops[0]) == ("stopped for the time budget after epoch 3/4 of teacher; rerun the "
                           "same command to resume")


def _gan_config(store):
  """tests/tiny.py's small GAN (the SN-GAN's blocks, one each side, on 8×8 images: the
  32×32 SN-GAN's compilation was most of this test), 4 generator updates, each checkpointed."""
  from tiny import small_gan_config
  c = small_gan_config(store, gen_steps=4)
  with c.unlocked():
    c.gan.eval_every = 2
  return c


def test_chained_budgeted_gan_training_ends_as_one_run(tmp_path):
  from tiny import small_gan_images
  images = small_gan_images()
  def get(store):
    c = _gan_config(store)
    return gans.get_gan(c.gan, gans.gan_key(c.gan, c.data), tmp_path, images, tensorboard=False)
  straight = get(tmp_path / "a")
  programs = gan_steps.gan_chunk._cache_size()
  gan, stops = _chain(lambda: get(tmp_path / "b"), 10, 25)
  # The resumed runs reuse the straight run's compiled step (a restored state is placed as a
  # fresh one is): no program is added by resuming.
  assert gan_steps.gan_chunk._cache_size() == programs
  assert stops and all(e.phase == "gan" for e in stops)
  assert "after generator update" in str(stops[0])
  for a, b in zip(jax.tree.leaves(straight.variables), jax.tree.leaves(gan.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_sweep_stops_before_a_trial_once_the_budget_is_spent(tmp_path):
  from kd_jax.config import sweep_config
  config = tiny_config(tmp_path / "store", teacher_epochs=4, distill_epochs=4)
  sweep = sweep_config()
  sweep.seeds = (0, 1)
  budget.start(1, FakeClock(10))  # spent at the first reading
  with pytest.raises(OutOfTime, match=r"^stopped for the time budget after trial 0/2 of the "
                     r"sweep; rerun the same command to resume$"):
    sweep_lib.run_sweep(config, sweep, tmp_path / "w")
  assert not (tmp_path / "w" / "default" / "seed0").exists()  # no trial was started
  budget.start(0)
  rows = sweep_lib.run_sweep(config, sweep, tmp_path / "w")
  assert len(rows) == 2


def test_command_line_exits_75_with_one_line(tmp_path):
  """A budget that is spent at the first checkpoint: the process stops there, exit status 75.
  A checkpoint every epoch: the first comes before any evaluation (nothing more to compile)."""
  out = subprocess.run(
      [sys.executable, "-m", "kd_jax.main", "--config=configs/mnist.py:tiny",
       f"--workdir={tmp_path / 'w'}", "--time_budget=0.001s", "--config.run.checkpoint_every=1"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  from kd_jax import config_files
  c = config_files.load(REPO / "configs" / "mnist.py:tiny")
  with c.unlocked():
    c.run.checkpoint_every = 1
  assert c.teacher.eval_every > 1  # the run stops before the teacher's first evaluation
  first = min(c.run.checkpoint_every, c.teacher.epochs)
  assert out.returncode == 75, out.stderr[-2000:]
  assert out.stderr.strip().splitlines()[-1] == (
      f"stopped for the time budget after epoch {first}/{c.teacher.epochs} of teacher; rerun the "
      "same command to resume")
  assert "[budget] stopping at the last checkpoint boundary before 0.001 s" in out.stdout
