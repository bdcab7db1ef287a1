"""The Python API (kd_jax.api) on a tiny finished run, checked against what the run itself
measured while training (results.json, metrics.jsonl) and against numpy written here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kd_jax
from kd_jax.core.errors import ConfigError
from tiny import tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A finished tiny run: a 2-member teacher ensemble, a student checkpointed every epoch."""
  root = tmp_path_factory.mktemp("api")
  c = tiny_config(root / "store", members=2, teacher_epochs=3)
  for section in (c.teacher, c.distill):  # Adam: models that learn something in a few steps
    section.optim.name, section.optim.lr, section.optim.weight_decay = "adam", 3e-3, 0.0
  results = kd_jax.run(c, root / "run")
  assert 0 < results["splits"]["test"]["agreement"] < 100, "a degenerate run would test little"
  return root / "run"


# ------------------------------------------------------------------------ numpy references


def _log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ece(logits, labels, bins=10):
  p = np.exp(_log_softmax(logits))
  conf, correct = p.max(-1), (p.argmax(-1) == labels)
  idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)  # bin b = (b/nb, (b+1)/nb]
  total = sum(abs(correct[idx == b].sum() - conf[idx == b].sum()) for b in range(bins))
  return total / len(labels)


def _reference(t, s, y):
  """Every metric of a split from teacher log-probs/logits t, student logits s, labels y."""
  lt, ls = _log_softmax(t), _log_softmax(s)
  lab = y >= 0
  return {
      "agreement": 100 * np.mean(t.argmax(-1) == s.argmax(-1)),
      "kl": np.mean(np.sum(np.exp(lt) * (lt - ls), -1)),
      "teacher_acc": 100 * np.mean(t[lab].argmax(-1) == y[lab]),
      "student_acc": 100 * np.mean(s[lab].argmax(-1) == y[lab]),
      "teacher_nll": -np.mean(lt[lab, y[lab]]),
      "student_nll": -np.mean(ls[lab, y[lab]]),
      "teacher_ece": _ece(t[lab], y[lab]),
      "student_ece": _ece(s[lab], y[lab]),
  }


# ----------------------------------------------------------------------------------- tests


def test_loaded_models_reproduce_the_runs_own_test_metrics(run_dir):
  teacher, student = kd_jax.load_teacher(run_dir), kd_jax.load_student(run_dir)
  assert (teacher.num_members, student.num_members) == (2, 1)
  reported = kd_jax.load_results(run_dir)["splits"]["test"]
  images, labels = kd_jax.load_split(run_dir, "test")
  t, s = teacher(images), student(images)
  # Agreement is a count: the loaded models' predictions must be exactly those of the run.
  assert 100 * np.mean(t.argmax(-1) == s.argmax(-1)) == pytest.approx(reported["agreement"],
                                                                       abs=1e-9)
  measured = kd_jax.fidelity(teacher, student, split="test")
  assert measured.keys() == reported.keys()
  assert measured["agreement"] == reported["agreement"]
  for k, v in _reference(t, s, labels).items():
    assert reported[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k


def test_student_at_an_earlier_epoch_matches_its_logged_evaluation(run_dir):
  logged = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
  epoch1 = next(r for r in logged if r["phase"] == "distill" and r["epoch"] == 1)["test"]
  teacher = kd_jax.load_teacher(run_dir)
  early = kd_jax.fidelity(teacher, kd_jax.load_student(run_dir, epoch=1), split="test")
  final = kd_jax.fidelity(teacher, kd_jax.load_student(run_dir), split="test")
  assert early["agreement"] == epoch1["agreement"]
  assert early["kl"] == pytest.approx(epoch1["kl"], rel=1e-4)
  assert early["kl"] != final["kl"], "epoch 1 and the final student must differ for this to test"


def test_teacher_is_the_probability_mean_of_its_members(run_dir):
  teacher = kd_jax.load_teacher(run_dir)
  images, _ = kd_jax.load_split(run_dir, "test")
  x = 2.0 * images[:50].astype(np.float32) / 255.0 - 1.0  # unit_cube normalization: 2x - 1
  members = [np.asarray(teacher.model.apply(teacher.member(i), x, train=False))
             for i in range(2)]
  np.testing.assert_allclose(teacher.member_logits(images[:50]), np.stack(members),
                             rtol=1e-5, atol=1e-5)
  mean_p = np.mean([np.exp(_log_softmax(z)) for z in members], axis=0)
  np.testing.assert_allclose(np.exp(teacher(images[:50])), mean_p, rtol=1e-5, atol=1e-6)
  one = kd_jax.load_teacher(run_dir, members=1)
  np.testing.assert_allclose(one.member_logits(images[:50])[0], members[0], rtol=1e-5, atol=1e-5)


def test_splits_are_the_runs_sizes(run_dir):
  sizes = kd_jax.load_results(run_dir)["sizes"]
  for split, key in (("test", "test_size"), ("teacher", "teacher_size"),
                     ("distill", "distill_size")):
    x, y = kd_jax.load_split(run_dir, split)
    assert x.dtype == np.uint8 and x.shape[0] == y.shape[0] == sizes[key]


def test_fidelity_of_arrays_matches_numpy():
  rng = np.random.default_rng(0)
  t = rng.normal(size=(300, 7)) * 3
  s = t + rng.normal(size=(300, 7)) * 2
  y = rng.integers(0, 7, size=300)
  y[::10] = -1  # unlabeled examples count for agreement and KL only
  got = kd_jax.fidelity(t, s, labels=y)
  for k, v in _reference(t, s, y).items():
    assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k
  unlabeled = kd_jax.fidelity(t, s)
  assert unlabeled["agreement"] == got["agreement"] and np.isnan(unlabeled["student_acc"])


def test_reliability_bins_give_the_reported_ece():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(500, 5)) * 2
  y = rng.integers(0, 5, size=500)
  r = kd_jax.reliability(z, y)
  p = np.exp(_log_softmax(z))
  conf = p.max(-1)
  idx = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
  np.testing.assert_array_equal(r["count"], np.bincount(idx, minlength=10))
  full = r["count"] > 0
  np.testing.assert_allclose(r["confidence"][full],
                             [conf[idx == b].mean() for b in np.flatnonzero(full)], rtol=1e-5)
  ece = np.nansum(r["count"] / 500 * np.abs(r["accuracy"] - r["confidence"]))
  assert ece == pytest.approx(_ece(z, y), rel=1e-5)


def test_bad_input_is_one_line_naming_the_fix(run_dir, tmp_path):
  cases = [
      (lambda: kd_jax.load_student(tmp_path), "config.json does not exist"),
      (lambda: kd_jax.load_student(run_dir, epoch=99), "saved: [1, 2]"),
      (lambda: kd_jax.load_split(run_dir, "valid"), "choose one of: test, teacher, distill"),
      (lambda: kd_jax.fidelity(np.zeros((3, 2)), np.zeros((3, 2)), split="test"),
       "needs a loaded predictor"),
      (lambda: kd_jax.load_student(run_dir)(np.zeros((2, 28, 28, 1), np.float32)),
       "must be uint8"),
      (lambda: kd_jax.fidelity(np.zeros((3, 2)), np.zeros((4, 2))), "differ in shape"),
      (lambda: kd_jax.load_config(str(tmp_path / "nope.py")), "does not exist"),
      (lambda: kd_jax.load_config(str(REPO / "configs" / "mnist.py:huge")), "unknown variant"),
  ]
  for call, needle in cases:
    with pytest.raises(ConfigError) as e:
      call()
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_load_config_reads_a_variant_locked():
  c = kd_jax.load_config(str(REPO / "configs" / "mnist.py:tiny"))
  assert c.distill.epochs < kd_jax.load_config(str(REPO / "configs" / "mnist.py")).distill.epochs
  with pytest.raises(AttributeError):
    c.distill.temprature = 2.0  # locked: a misspelt key is an error, not a new key
  s = kd_jax.load_sweep(str(REPO / "configs" / "fig2_mnist.py:mini"))
  assert len(s.arms) > 1


def test_import_kd_jax_does_not_start_jax():
  code = "import sys, kd_jax; print('jax' in sys.modules, callable(kd_jax.fidelity))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
  assert out.stdout.split() == ["False", "True"]
