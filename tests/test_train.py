"""End-to-end checks of the training spine on the embedded real MNIST subset.

Equivalences are checked against independent runs (1 vs 4 devices, vmapped ensemble vs
members alone, interrupted vs straight-through), not against stored numbers.
"""
from __future__ import annotations

import json

import chex
import jax
import numpy as np
import pytest

from equivalence import assert_same_training, update_gaps
from kd_jax.kd import ensemble
from kd_jax.runner import experiment, teachers
from kd_jax.runner.identity import teacher_key
from kd_jax.core import parallel
from kd_jax.train import writer as report
from kd_jax.data import inputs
from kd_jax.core.errors import ConfigError, TrainingDiverged
from tiny import tiny_config


def _teacher(c, workdir):
  mesh = parallel.make_mesh(c.run.num_devices)
  data = inputs.load(c.data, mesh)
  writer = report.MetricWriter(workdir, tensorboard=False)
  return teachers.get_teacher(c.teacher, teacher_key(c.data, c.teacher), c.run, workdir, data,
                              mesh, writer)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_four_devices_match_one(tmp_path):
  assert len(jax.devices()) == 4, "conftest must give 4 fake CPU devices"
  one = _teacher(tiny_config(tmp_path / "s1", devices=1), tmp_path / "w1")
  four = _teacher(tiny_config(tmp_path / "s4", devices=4), tmp_path / "w4")
  chex.assert_trees_all_equal_shapes(one.final, four.final)
  assert_same_training(four.final, one.final, one.initial)
  moved = max(float(np.abs(a - init).max())
              for a, init in zip(_leaves(one.final), _leaves(one.initial)))
  assert moved > 1e-3, "training must have changed the parameters for the check to mean anything"


def _student_init(c):
  """The student's initial parameters (random init: the model, seed and stream of the run)."""
  from kd_jax.models import get_model
  from kd_jax.train import modeling, steps
  opts = {k: v for k, v in c.distill.model.items() if k != "name"}
  model = get_model(c.distill.model.name, 10, **opts)
  return modeling.init_variables(model, c.seed, steps.STUDENT_STREAM, 1, (28, 28, 1))["params"]


def test_four_devices_distil_as_one(tmp_path):
  """Distillation (the student's phase) on 4 devices ends where 1 device does, from one shared
  teacher (the device count is not part of a teacher's identity, so the second run reuses it).
  The 4-device run goes first: its teacher is the tiny default other tests compile too."""
  from kd_jax.core import checkpoints
  store = tmp_path / "store"
  runs = {d: experiment.run(tiny_config(store, devices=d, distill_epochs=3), tmp_path / f"d{d}")
          for d in (4, 1)}
  assert len(list(store.glob("*-m1"))) == 1  # one teacher, trained by the first run
  s1, s4 = (checkpoints.read_host(tmp_path / f"d{d}" / "checkpoints" / "student")[1]["params"]
            for d in (1, 4))
  init = _student_init(tiny_config(store))
  assert_same_training(s4, s1, init)
  # Control: another student seed, same check, is told apart.
  c = tiny_config(store, distill_epochs=3)
  with c.unlocked():
    c.seed = 1
  experiment.run(c, tmp_path / "other")
  other = checkpoints.read_host(tmp_path / "other" / "checkpoints" / "student")[1]["params"]
  assert max(update_gaps(other, s1, init).values()) > 0.1
  assert runs[1]["splits"]["test"]["agreement"] > 0


def _member(tree, i):
  return jax.tree.map(lambda x: np.asarray(x)[i], tree)


@pytest.fixture(scope="module")
def members_alone(tmp_path_factory):
  """Models 0 and 1 each trained alone (member i of an ensemble seeded 0 is the model seeded
  i); the same for every member mode, so trained once for all of them."""
  root = tmp_path_factory.mktemp("alone")
  alone = []
  for i in range(2):
    c = tiny_config(root / f"a{i}")
    with c.unlocked():
      c.teacher.seed = i
    alone.append(_teacher(c, root / f"wa{i}"))
  return alone


@pytest.mark.parametrize("mode", ensemble.MEMBER_MODES)
def test_vmapped_ensemble_equals_members_alone(tmp_path, mode, members_alone):
  """Member i is the model trained alone, however the stacked members run (run.member_mode)."""
  c = tiny_config(tmp_path / "e", members=2)
  with c.unlocked():
    c.run.member_mode = mode
  both = _teacher(c, tmp_path / "we")
  alone = members_alone
  for i in range(2):
    assert_same_training(_member(both.final, i), _member(alone[i].final, 0),
                         _member(alone[i].initial, 0))
  # Control: the same check tells two different members apart (own init and data order), so
  # it would catch a wrong seed, data order or shared key.
  gaps = update_gaps(_member(both.final, 1), _member(alone[0].final, 0),
                     _member(alone[0].initial, 0))
  assert min(gaps.values()) > 0.1, gaps


def test_teacher_reused_not_retrained(tmp_path, capsys):
  c = tiny_config(tmp_path / "store", members=2)
  first = _teacher(c, tmp_path / "w")
  assert first.trained_now
  c1 = tiny_config(tmp_path / "store", members=1)
  again = _teacher(c1, tmp_path / "w2")
  assert not again.trained_now
  for a, b in zip(_leaves(first.final), _leaves(again.final)):
    np.testing.assert_array_equal(a[:1], b)


class _Kill(Exception):
  pass


def test_killed_run_resumes_to_same_result(tmp_path):
  store = tmp_path / "store"
  straight = experiment.run(tiny_config(store, distill_epochs=3), tmp_path / "straight")

  def kill_after_first_student_checkpoint(phase, epoch):
    if phase == "distill" and epoch == 1:
      raise _Kill()

  with pytest.raises(_Kill):
    experiment.run(tiny_config(store, distill_epochs=3), tmp_path / "resumed",
              hook=kill_after_first_student_checkpoint)
  resumed = experiment.run(tiny_config(store, distill_epochs=3), tmp_path / "resumed")
  assert resumed["splits"] == straight["splits"]  # same program, same machine: bitwise
  lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
  assert sum('"phase": "distill"' in l for l in lines) == 3  # no duplicated epochs


def test_end_to_end_teacher_beats_chance(tmp_path):
  c = tiny_config(tmp_path / "store", teacher_epochs=8, distill_epochs=10)
  with c.unlocked():
    c.data.teacher_subset = 200
    c.distill.batch_size = 16
    # Only the final evaluations are read: each phase evaluates once, at its end (the cadence
    # changes no number of the run, config.NOT_IDENTITY).
    c.teacher.eval_every, c.distill.eval_every = c.teacher.epochs, c.distill.epochs
  res = experiment.run(c, tmp_path / "run")
  test = res["splits"]["test"]
  assert test["teacher_acc"] > 50.0  # chance is 10%
  # The student learned from the teacher: 80 steps on 128 images agree far above the 10% of
  # chance (57% on this machine).
  assert test["agreement"] > 30.0
  assert res["sizes"]["test_size"] == 200 and res["sizes"]["teacher_size"] == 200
  for key in ("student_acc", "teacher_acc", "agreement", "kl", "student_ece", "student_nll"):
    assert np.isfinite(test[key]), key
  # The running agreement of the last epoch is the mean over its batches: between 0 and 100
  # and, on the unaugmented distillation data, close to the eval-mode train agreement.
  assert abs(res["splits"]["running"]["agreement"] - res["splits"]["distill"]["agreement"]) < 25
  stored = json.loads((tmp_path / "run" / "results.json").read_text())
  assert stored["splits"] == res["splits"]


@pytest.mark.parametrize("key,value,needle", [
    ("distill.model.name", "lenet6", "model.name='lenet6'"),
    ("distill.temperature", 0.0, "distill.temperature"),
    ("teacher.optim.name", "adagrad", "optim.name='adagrad'"),
    ("data.teacher_subset", 10_000, "data.teacher_subset"),
    ("data.source", "imagenet", "data.source='imagenet'"),
])
def test_bad_config_is_one_clear_error(tmp_path, key, value, needle):
  c = tiny_config(tmp_path / "store")
  section, *rest = key.split(".")
  node = c[section]
  for part in rest[:-1]:
    node = node[part]
  node[rest[-1]] = value
  with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")) as err:
    experiment.run(c, tmp_path / "w")
  assert "\n" not in str(err.value)


def test_divergence_is_one_line_naming_the_fix(tmp_path):
  c = tiny_config(tmp_path / "store", teacher_epochs=3)
  with c.unlocked():
    c.teacher.optim.lr = 1e12
  with pytest.raises(TrainingDiverged, match=r"lower teacher\.optim\.lr") as err:
    experiment.run(c, tmp_path / "w")
  assert not isinstance(err.value, ConfigError)  # not bad input: a run to retry differently
  assert "\n" not in str(err.value)


def test_running_metrics_equal_eval_metrics_when_weights_stand_still(tmp_path):
  """The ``running`` split (train mode, batches as trained) against the eval-mode ``distill``
  split: LeNet has no BatchNorm or dropout, so with a learning rate of 1e-12 and no
  augmentation both measure the same weights on the same images."""
  c = tiny_config(tmp_path / "store", teacher_epochs=4, distill_epochs=1)
  with c.unlocked():
    c.distill.optim.lr = 1e-12
    c.distill.optim.lr_min = 0.0
    c.distill.optim.weight_decay = 0.0
  res = experiment.run(c, tmp_path / "w")["splits"]
  assert res["running"]["agreement"] == pytest.approx(res["distill"]["agreement"], abs=1e-9)
  assert res["running"]["kl"] == pytest.approx(res["distill"]["kl"], rel=1e-4)
  assert res["running"]["kl"] > 1e-3  # a real distance, not a trivially equal zero
