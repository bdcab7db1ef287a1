"""The optimization instruments wired into real runs: interpolated init, L-BFGS, CKA, the plane."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.runner import analysis, experiment, student, teachers
from kd_jax.runner.identity import teacher_key
from kd_jax.train import modeling, writer as report, steps
from kd_jax.core import parallel
from kd_jax.data import inputs
from tiny import tiny_config


def _ln_config(store, **kw):
  c = tiny_config(store, **kw)
  with c.unlocked():
    for section in (c.teacher, c.distill):
      section.model = {"name": "preresnet", "depth": 8, "norm": "layer", "width": 0.25}
    # No test here reads the teacher's evaluations (each is another compilation) or resumes
    # (a checkpoint at the end of each phase only): neither changes a number, nor the
    # teacher's store key (config.NOT_IDENTITY).
    c.teacher.evals = ("running",)
    c.run.checkpoint_every = 100
  return c


def _data_and_teacher(c, workdir):
  mesh = parallel.make_mesh(c.run.num_devices)
  data = inputs.load(c.data, mesh)
  teacher = teachers.get_teacher(c.teacher, teacher_key(c.data, c.teacher), c.run, workdir, data,
                                 mesh, report.MetricWriter(workdir, False))
  return data, teacher


@pytest.fixture(scope="module")
def ln_teacher(tmp_path_factory):
  """The LayerNorm teacher of ``_ln_config``, trained once for this module into a store the
  tests below share (the same teacher key: they differ only in distillation settings), with its
  data: (store, data, teacher)."""
  root = tmp_path_factory.mktemp("ln_teacher")
  data, teacher = _data_and_teacher(_ln_config(root / "store"), root / "w")
  return root / "store", data, teacher


def test_lambda_one_layernorm_student_is_the_teacher(ln_teacher):
  store, data, teacher = ln_teacher
  c = _ln_config(store)
  with c.unlocked():
    c.distill.init.mode = "interpolate"
    c.distill.init.lam = 1.0
    c.distill.temperature = 3.0
  model = modeling.build_model(c.distill.model, data.num_classes, c.run.dtype)
  init, lr = student.student_init(c.distill, c.seed, model, teacher, data)
  assert lr == c.distill.optim.lr_min  # lr·(1−λ) floored at the schedule minimum
  x = data.host_inputs(data.host.distill_x, 64)
  local = modeling.local(model)
  s_logits = local.apply(modeling.as_flax(modeling.member(init, 0)), x, train=False)
  t_lp = analysis.teacher_logprobs_of(teacher.model, modeling.as_flax(teacher.final), x)
  assert np.mean(np.argmax(s_logits, -1) == np.argmax(t_lp, -1)) == 1.0
  # KD loss at a perfect match = τ²·H(softmax(z_t/τ)), written out in numpy.
  tau = 3.0
  z = np.asarray(t_lp, np.float64) / tau
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  entropy = -(p * np.log(p)).sum(-1)
  spec = steps.StepSpec(apply_fn=None, tx=None, prepare=None, materialize=None, objective="kd",
                        temperature=tau)
  loss = steps.per_example_loss(spec, s_logits, jnp.zeros(64, jnp.int32), jnp.ones(64, bool), t_lp)
  np.testing.assert_allclose(np.asarray(loss), tau ** 2 * entropy, rtol=2e-4, atol=1e-5)


def test_teacher_initial_weights_init(ln_teacher):
  store, data, teacher = ln_teacher
  c = _ln_config(store)
  with c.unlocked():
    c.distill.init.mode = "teacher_initial"
  model = modeling.build_model(c.distill.model, data.num_classes, c.run.dtype)
  init, _ = student.student_init(c.distill, c.seed, model, teacher, data)
  fresh = modeling.init_variables(model, c.teacher.seed, steps.TEACHER_STREAM, 1,
                                  data.input_shape)
  for a, b, f in zip(jax.tree.leaves(init["params"]), jax.tree.leaves(teacher.initial["params"]),
                     jax.tree.leaves(fresh["params"])):
    np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b)[0])
    np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(f)[0])  # = member 0's seed


def test_lbfgs_decreases_full_batch_loss(tmp_path):
  # A teacher that learned something (8 epochs on 200 images): against a near-uniform teacher
  # the KL starts at ~1e-5 and float noise decides whether it still decreases.
  # 9 full-batch steps: the loss ends at 0.61 of its first value on this machine (0.45 after 12),
  # far under the bound below; each step is a zoom line search on 4 devices.
  c = tiny_config(tmp_path / "store", teacher_epochs=8, distill_epochs=9, devices=4)
  with c.unlocked():
    c.data.teacher_subset = 200
    c.distill.optim.name = "lbfgs"
    c.distill.loss = "kl"  # zero at a perfect match, so the decrease is visible
    c.distill.eval_every = 9
    # Only the running losses are read: no other evaluation (each is another compilation),
    # and nothing resumes: one checkpoint per phase, at its end, not 17.
    c.teacher.evals = c.distill.evals = ("running",)
    c.run.checkpoint_every = 100
  experiment.run(c, tmp_path / "run")
  recs = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  loss = [r["running"]["loss"] for r in recs if r["phase"] == "distill"]
  assert len(loss) == 9
  assert all(b <= a + 1e-6 for a, b in zip(loss, loss[1:])), loss
  assert loss[-1] < 0.8 * loss[0], loss


def test_cka_and_plane_on_a_run(tmp_path, ln_teacher):
  store, _, teacher = ln_teacher
  c = _ln_config(store)   # the module's teacher, read from the store
  with c.unlocked():
    c.distill.evals = ("running",)  # the analyses below read the models, not the evaluations
    c.analysis.cka = True
    c.analysis.cka_examples = 100
    c.analysis.plane = True
    c.analysis.plane_points = 5
    c.analysis.plane_examples = 64
    c.analysis.plane_chunk = 5
    c.analysis.line = True
    c.analysis.line_points = 5
  res = experiment.run(c, tmp_path / "run")
  assert res["teacher"]["entry"] == str(teacher.entry)
  cka = res["splits"]["cka"]
  assert set(cka) == {"stage1", "stage2", "stage3"}
  assert all(0.0 <= v <= 1.0 + 1e-6 for v in cka.values())
  anchors = res["plane"]["anchors"]
  assert anchors["teacher"]["agreement"] == 100.0  # the teacher agrees with itself
  assert abs(anchors["teacher"]["kl"]) < 1e-5
  grid = np.load(tmp_path / "run" / "plane" / "plane.npz")
  assert grid["distill_loss"].shape == (5, 5)
  png = tmp_path / "run" / "plane" / "plane_agreement.png"
  png.unlink()
  analysis.redraw_plane(tmp_path / "run")  # from plane.npz and results.json alone
  assert png.read_bytes()[:4] == b"\x89PNG"
  line = np.load(tmp_path / "run" / "line" / "line.npz")
  np.testing.assert_array_equal(line["ts"], np.linspace(0, 1, 5))
  assert line["agreement"][-1] == 100.0 and abs(line["kl"][-1]) < 1e-5  # t = 1: the teacher
  assert res["line"]["barrier"] == float(line["distill_loss"].max()
                                         - max(line["distill_loss"][0], line["distill_loss"][-1]))
  png = (tmp_path / "run" / "plane" / "plane_agreement.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
