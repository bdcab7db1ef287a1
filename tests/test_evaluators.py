"""Evaluations as config entries: name lists stand for default entries, entries add to or replace
them, each runs at its own cadence, and building an evaluator computes nothing."""
from __future__ import annotations

import json

import pytest
from ml_collections import ConfigDict

from kd_jax.config import base_config
from kd_jax.core.errors import ConfigError
from kd_jax.runner import experiment
from kd_jax.runner.validate import validate
from kd_jax.train import evaluators
from kd_jax.train.evaluators import Entry
from tiny import tiny_config


def test_a_name_list_stands_for_its_default_entries():
  c = base_config()
  got = evaluators.entries("distill", c.distill.evals, c.evals)
  assert [(e.name, e.type, e.split, e.pred, e.every) for e in got] == [
      ("test", "fidelity", "test", "clean", 0),
      ("distill", "fidelity", "distill", "clean", 0),
      ("val", "fidelity", "val", "clean", 0),
      ("distill_aug", "fidelity", "distill", "augmented", 0),
      ("synth", "fidelity_unlabelled", "synth", "clean", 0),
      ("running", "running", "test", "clean", 0)]
  got = evaluators.entries("teacher", ("test", "members"), c.evals)
  assert [(e.name, e.type) for e in got] == [("test", "ensemble"), ("members", "members")]


def test_old_split_names_in_distill_evals_are_read_with_a_note(capsys):
  got = evaluators.entries("distill", ("test", "train", "train_aug"), None)
  assert [(e.name, e.split, e.pred) for e in got] == [
      ("test", "test", "clean"), ("distill", "distill", "clean"),
      ("distill_aug", "distill", "augmented")]
  err = capsys.readouterr().err.splitlines()
  assert len(err) == 2 and "'train' is the old name of 'distill'" in err[0]
  assert "'train_aug' is the old name of 'distill_aug'" in err[1]


def test_config_entries_add_to_and_replace_the_names_of_their_phase():
  c = base_config()
  c.evals.test = dict(phase="distill", type="fidelity", split="distill", every=3)
  c.evals.test_aug = dict(phase="distill", type="fidelity", split="test", pred="augmented")
  c.evals.members_train = dict(phase="teacher", type="members", split="train", every=2)
  validate(c)
  got = {e.name: e for e in evaluators.entries("distill", ("test", "running"), c.evals)}
  assert list(got) == ["test", "running", "test_aug"]
  assert got["test"] == Entry("test", "fidelity", "distill", "clean", 3)
  assert got["test_aug"] == Entry("test_aug", "fidelity", "test", "augmented", 0)
  teacher = evaluators.entries("teacher", ("test",), c.evals)
  assert teacher == [Entry("test", "ensemble"), Entry("members_train", "members", "train",
                                                      "clean", 2)]


@pytest.mark.parametrize("entry, message", [
    (dict(phase="student", type="fidelity"), "evals.bad.phase='student' is not known"),
    (dict(phase="distill", type="ensemble"), "evals.bad.type='ensemble' is not a known"),
    (dict(phase="distill", type="fidelity", split="train"), "evals.bad.split='train' is not a "
                                                             "distill split"),
    (dict(phase="teacher", type="members", pred="augmented"), "evals.bad.pred='augmented'"),
    (dict(phase="distill", type="fidelity", every=-1), "evals.bad.every=-1 must be"),
    (dict(phase="distill", type="fidelity", every=1.5), "evals.bad.every=1.5 must be"),
])
def test_a_bad_entry_is_one_line_naming_its_key(entry, message):
  c = base_config()
  c.evals.bad = entry
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")) as e:
    validate(c)
  assert "\n" not in str(e.value)


def test_an_unknown_name_in_a_name_list_is_an_error():
  c = base_config()
  c.distill.evals = ("test", "tset")
  with pytest.raises(ConfigError, match="distill.evals entry 'tset' is not known"):
    validate(c)


def test_each_entry_runs_at_its_own_cadence_and_all_run_at_the_end():
  chosen = [Entry("a", "running", every=2), Entry("b", "running", every=3),
            Entry("c", "running")]  # every 0: the phase's eval_every (here 4)
  assert evaluators.cadence(chosen, 4) == 1  # gcd(2, 3, 4): the trainer calls every epoch
  assert evaluators.cadence([Entry("a", "running", every=6)], 4) == 6
  assert evaluators.cadence([Entry("a", "running", every=6), Entry("c", "running")], 4) == 2
  evaluate = evaluators.build("distill", chosen, ctx=None, eval_every=4)
  running = {"running": {"loss": 1.0}}
  due = {epoch: sorted(evaluate(None, running, epoch)) for epoch in range(1, 13)}
  assert due == {1: [], 2: ["a"], 3: ["b"], 4: ["a", "c"], 5: [], 6: ["a", "b"], 7: [],
                 8: ["a", "c"], 9: ["b"], 10: ["a"], 11: [], 12: ["a", "b", "c"]}
  assert sorted(evaluate(None, running)) == ["a", "b", "c"]  # the final evaluation: all


def test_building_the_distillation_context_predicts_nothing(monkeypatch):
  calls = []

  def predict(applies, var_list, pipeline, *args, **kwargs):
    calls.append(pipeline)
    import jax.numpy as jnp
    return (jnp.zeros((1, 2, 3)),)

  monkeypatch.setattr(evaluators, "predict", predict)
  ctx = evaluators.DistillContext(
      student_apply=None, teacher_apply=None, teacher_vars=None, test="test-pipeline",
      distill="distill-pipeline", mesh=None, clean=None, augmented=None, batch_size=8,
      train_limit=0, seed=0, synthetic=None)
  assert calls == []
  ctx.teacher_test
  ctx.teacher_test
  assert calls == ["test-pipeline"]  # computed on first use, then kept
  assert ctx.teacher_synth is None and calls == ["test-pipeline"]


def test_a_run_writes_an_entry_at_its_cadence(tmp_path):
  c = tiny_config(tmp_path / "store", teacher_epochs=1, distill_epochs=2)
  with c.unlocked():
    c.distill.eval_every = 2
    c.distill.evals = ("test",)
    c.evals.test_each = ConfigDict(dict(phase="distill", type="fidelity", split="test",
                                        every=1))
  results = experiment.run(c, tmp_path / "run")
  records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  distill = {r["epoch"]: r for r in records if r["phase"] == "distill"}
  assert "test_each" in distill[1] and "test" not in distill[1]
  assert "test_each" in distill[2] and "test" in distill[2]
  # an entry of the default's type, split and predict function measures what the name does
  assert distill[2]["test_each"] == distill[2]["test"]
  assert results["splits"]["test_each"] == results["splits"]["test"]
