"""Optimization remedies (kd_jax/runner/remedies.py) on real tiny runs: annealed interpolation reduces
to the existing modes at its ends, the teacher's trajectory is visited in order and resumes
exactly, and the second-order polish lowers the full-batch loss."""
from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.core import checkpoints
from kd_jax.runner import experiment, remedies
from kd_jax.runner.identity import teacher_key
from kd_jax.train import steps
from kd_jax.core.errors import ConfigError
from tiny import tiny_config

import equivalence


def _quiet_teacher(c):
  """No teacher evaluation but the running loss: no test here reads the others, and each is
  another compilation; evaluations change no number, nor the teacher's store key."""
  with c.unlocked():
    c.teacher.evals = ("running",)
  return c


def _records(workdir, phase):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["phase"] == phase]


def _final_params(workdir, phase="student"):
  _, tree = checkpoints.read_host(workdir / "checkpoints" / phase)
  return tree["params"]


def test_anneal_lambda_closed_form():
  total = 40
  lam = [float(remedies.anneal_lambda(jnp.int32(s), 0.8, 0.5 * total)) for s in range(total + 1)]
  want = [0.8 * max(0.0, 1.0 - s / 20.0) for s in range(total + 1)]
  np.testing.assert_allclose(lam, want, rtol=1e-6, atol=1e-7)
  assert lam[20] == 0.0 and all(v == 0.0 for v in lam[20:])
  assert float(remedies.anneal_lambda(jnp.int32(5), 0.8, 0.0)) == 0.0


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
  """A teacher store shared by the module's runs of tiny_config's default teacher (the same
  teacher key): the first run trains it, the others read it."""
  return tmp_path_factory.mktemp("tiny_teacher") / "store"


@pytest.fixture(scope="module")
def step_pair(tiny_store, tmp_path_factory):
  """lam0 → one train step of the tiny student, plain and with the annealed anchor at λ₀. The
  teacher (tiny_config's, from the module's store), the student's init and the plain step are
  the same for every λ₀: built and computed once for the module."""
  from jax.sharding import PartitionSpec as P
  from kd_jax.train import modeling, optim, writer as report
  from kd_jax.core import parallel
  from kd_jax.runner import student, teachers
  from kd_jax.core.batch import Batch
  from kd_jax.data import inputs
  tmp_path = tmp_path_factory.mktemp("step_pair")
  # The module's runs' teacher, on their devices: trained here or read from the store.
  c = _quiet_teacher(tiny_config(tiny_store))
  data_mesh = parallel.make_mesh(c.run.num_devices)
  data = inputs.load(c.data, data_mesh)
  teacher = teachers.get_teacher(c.teacher, teacher_key(c.data, c.teacher), c.run, tmp_path / "w",
                                 data, data_mesh, report.MetricWriter(tmp_path / "w", False))
  model = modeling.build_model(c.distill.model, data.num_classes, c.run.dtype)
  init, _ = student.student_init(c.distill, c.seed, model, teacher, data)
  tx = optim.make_optimizer(c.distill.optim, 10, 10)
  plain = steps.StepSpec(apply_fn=model.apply, tx=tx, prepare=data.prepare(""),
                         materialize=None, objective="kd", temperature=4.0,
                         teacher_apply=teacher.model.apply)
  batch = Batch(inputs=jnp.asarray(data.host.distill_x[:32]), labels=jnp.zeros(32, jnp.int32),
                mask=jnp.ones(32, bool))
  state = jax.tree.map(lambda a: a[0], modeling.make_state(init, tx))  # one member
  t_vars = modeling.as_flax(teacher.final)
  anchor = modeling.member(teacher.final, 0)["params"]
  key = jax.random.key(0)
  # Inside the one-device map the trainer uses: the step's psum needs the device axis.
  mesh = parallel.make_mesh(1)
  step = lambda sp, tv: parallel.device_map(
      lambda: steps.train_step(state, batch, key, sp, tv), mesh, in_specs=(),
      out_specs=(P(), P()))()
  plain_out = step(plain, t_vars)

  def pair(lam0):
    spec = dataclasses.replace(plain, anneal=functools.partial(
        remedies.anneal_lambda, lam0=lam0, until_step=1e9))   # λ(0) = λ₀
    return plain_out, step(spec, (t_vars, anchor))
  return pair


def test_anneal_at_lambda_zero_is_the_plain_step(step_pair):
  (s0, m0), (s1, m1) = step_pair(0.0)
  for a, b in zip(jax.tree.leaves(s0.params), jax.tree.leaves(s1.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert float(m0["loss_sum"]) == float(m1["loss_sum"])


def test_anneal_at_lambda_one_is_the_teacher(step_pair):
  (_, plain), (state, m) = step_pair(1.0)
  # The student the loss sees is the teacher: it agrees on every example, and the KL at τ = 1
  # between them is zero (the random student's is not).
  assert float(m["match"]) == float(m["count"]) == 32.0
  assert abs(float(m["kl_sum"])) < 1e-4 < float(plain["kl_sum"])


def test_anneal_mode_at_lambda_zero_equals_random_mode(tmp_path, tiny_store):
  store = tiny_store
  base = _quiet_teacher(tiny_config(store, distill_epochs=2))
  res_random = experiment.run(base, tmp_path / "random")
  c = _quiet_teacher(tiny_config(store, distill_epochs=2))
  with c.unlocked():
    c.distill.init.mode = "anneal"
    c.distill.init.lam = 0.0
  res_anneal = experiment.run(c, tmp_path / "anneal")
  a, b = _final_params(tmp_path / "anneal"), _final_params(tmp_path / "random")
  _, init = checkpoints.read_host(tmp_path / "random" / "checkpoints" / "student", 1)
  # Against the update of the last epoch: reordered sums stay far below it, a real difference
  # (another init, data order or key) is of its order.
  equivalence.assert_same_training(a, b, init["params"], rtol=1e-2)
  assert res_anneal["splits"]["test"]["agreement"] == pytest.approx(
      res_random["splits"]["test"]["agreement"], abs=1.1)  # at most two of 200 images flip


def _trajectory_config(store, stages=2, distill_epochs=4):
  c = _quiet_teacher(tiny_config(store, teacher_epochs=4, distill_epochs=distill_epochs))
  with c.unlocked():
    c.teacher.keep_every = 1
    c.distill.trajectory = stages
    c.distill.eval_every = distill_epochs
  return c


def test_trajectory_epochs_and_stage_ends():
  assert remedies.trajectory_epochs(list(range(1, 17)), 4, 16) == [4, 8, 12, 16]
  assert remedies.trajectory_epochs([5, 10, 15], 2, 16) == [10, 16]
  assert remedies.stage_ends(20, 4) == [5, 10, 15, 20]
  assert remedies.stage_ends(10, 3) == [3, 7, 10]
  with pytest.raises(ConfigError, match="teacher.keep_every"):
    remedies.trajectory_epochs([16], 4, 16)


class _Kill(Exception):
  pass


def test_trajectory_visits_checkpoints_in_order_and_resumes_exactly(tmp_path):
  store = tmp_path / "store"
  straight_config = _trajectory_config(store)
  with straight_config.unlocked():  # straight through: a checkpoint at the end only
    straight_config.run.checkpoint_every = 100
  straight = experiment.run(straight_config, tmp_path / "straight")
  recs = _records(tmp_path / "straight", "distill")
  assert [r["trajectory"]["teacher_epoch"] for r in recs] == [2, 2, 4, 4]
  entry = next(store.glob("*-m1"))
  assert remedies.kept_epochs(entry) == [1, 2, 3, 4]
  # The stage-1 teacher is the epoch-2 training state as orbax stored it.
  _, stored = checkpoints.read_host(entry / "ckpt", 2)
  final = json.loads((entry / "teacher.json").read_text())
  assert final["members"] == 1
  got = remedies.teacher_at(entry, 2, 1, 4, None)
  for a, b in zip(jax.tree.leaves(got["params"]), jax.tree.leaves(stored["params"])):
    np.testing.assert_array_equal(a, b)

  def kill_in_first_stage(phase, epoch):
    if phase == "distill" and epoch == 1:
      raise _Kill()

  with pytest.raises(_Kill):
    experiment.run(_trajectory_config(store), tmp_path / "resumed", hook=kill_in_first_stage)
  resumed = experiment.run(_trajectory_config(store), tmp_path / "resumed")
  assert resumed["splits"] == straight["splits"]   # same program, same machine: bitwise
  assert [r["epoch"] for r in _records(tmp_path / "resumed", "distill")] == [1, 2, 3, 4]


def test_anneal_resumes_exactly_mid_walk(tmp_path, tiny_store):
  """Killed while λ is still moving (λ reaches 0 at epoch 2 of 4), the rerun ends bitwise where
  one run straight through ends: λ(t) comes from the restored step, the anchor from the teacher."""
  def config(checkpoint_every=1):
    c = _quiet_teacher(tiny_config(tiny_store, distill_epochs=4))
    with c.unlocked():
      c.distill.init.mode, c.distill.init.lam, c.distill.init.anneal_until = "anneal", 1.0, 0.5
      c.distill.eval_every = 4
      c.run.checkpoint_every = checkpoint_every
    return c

  straight = experiment.run(config(checkpoint_every=100), tmp_path / "straight")  # end only

  def kill_mid_walk(phase, epoch):
    if phase == "distill" and epoch == 1:
      raise _Kill()

  with pytest.raises(_Kill):
    experiment.run(config(), tmp_path / "resumed", hook=kill_mid_walk)
  resumed = experiment.run(config(), tmp_path / "resumed")
  assert resumed["splits"] == straight["splits"]   # same program, same machine: bitwise
  for a, b in zip(jax.tree.leaves(_final_params(tmp_path / "straight")),
                  jax.tree.leaves(_final_params(tmp_path / "resumed"))):
    np.testing.assert_array_equal(a, b)


def test_trajectory_without_kept_checkpoints_is_one_clear_error(tmp_path):
  c = _trajectory_config(tmp_path / "store", stages=3)
  with c.unlocked():
    c.teacher.keep_every = 0
  with pytest.raises(ConfigError, match="needs 3 stored teacher checkpoints"):
    experiment.run(c, tmp_path / "run")


@pytest.mark.parametrize("name", ["lbfgs", "lbfgs_backtracking"])
def test_polish_runs_lbfgs_after_sgd_and_lowers_the_loss(tmp_path, tiny_store, name):
  # The module's shared teacher: what is checked is the polish's descent on the student's
  # loss against whatever teacher it distils (the polish is no part of the teacher's key).
  c = _quiet_teacher(tiny_config(tiny_store, distill_epochs=2))
  with c.unlocked():
    c.distill.loss = "kl"
    c.distill.polish.epochs = 4   # full-batch steps at a constant rate: two big, two small
    c.distill.polish.optim.name = name
    # Only the running losses are read, and nothing resumes: no other evaluation (each is
    # another compilation) and one checkpoint per phase; neither changes a number.
    c.teacher.evals = c.distill.evals = ("running",)
    c.run.checkpoint_every = 100
  res = experiment.run(c, tmp_path / "run")
  sgd = _records(tmp_path / "run", "distill")
  polish = _records(tmp_path / "run", "polish")
  assert len(sgd) == 2 and len(polish) == 4
  loss = [r["running"]["loss"] for r in polish]
  assert all(b <= a * (1 + 1e-4) for a, b in zip(loss, loss[1:])), loss  # relative: KL is small
  assert loss[-1] < sgd[-1]["running"]["loss"]
  assert res["splits"]["running"]["loss"] == pytest.approx(loss[-1])


@pytest.mark.parametrize("key,value,needle", [
    ("distill.init.anneal_until", 1.5, "anneal_until"),
    ("distill.trajectory", -1, "distill.trajectory"),
    ("distill.polish.epochs", -2, "distill.polish.epochs"),
])
def test_bad_remedy_keys(tmp_path, key, value, needle):
  c = tiny_config(tmp_path / "store")
  section, *rest = key.split(".")
  with c.unlocked():
    target = c[section]
    for k in rest[:-1]:
      target = target[k]
    target[rest[-1]] = value
  with pytest.raises(ConfigError, match=needle):
    experiment.run(c, tmp_path / "run")
