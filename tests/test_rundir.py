"""A workdir holds one run: another config is refused, --restart starts over, Ctrl-C says where
it stopped, and a finished run keeps the results (and wall time) of the process that made them."""
from __future__ import annotations

import json
import shutil

import pytest

from kd_jax.runner import experiment, identity as rundir
from kd_jax.config import base_config, to_json
from kd_jax.core.errors import ConfigError, Interrupted
from tiny import tiny_config


def _config(store, **changes):
  """The tiny config at τ = 1 with ``section__key=value`` changes."""
  c = tiny_config(store, teacher_epochs=1, distill_epochs=2)
  with c.unlocked():
    for key, value in {"distill__temperature": 1.0, **changes}.items():
      node = c
      *path, leaf = key.split("__")
      for part in path:
        node = node[part]
      node[leaf] = value
  return c


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """One finished tiny run at τ = 1: (its store, its workdir, its results)."""
  root = tmp_path_factory.mktemp("rundir")
  store, workdir = root / "store", root / "run"
  results = experiment.run(_config(store), workdir)
  return store, workdir, results


@pytest.mark.parametrize("change,needle", [
    (dict(distill__temperature=4.0), "distill.temperature was 1.0, now 4.0"),
    (dict(distill__epochs=6), "distill.epochs was 2, now 6"),
    (dict(distill__model__name="preresnet"), "distill.model.name was 'lenet5', now 'preresnet'"),
])
def test_another_config_is_refused_before_anything_runs(finished, change, needle):
  store, workdir, _ = finished
  before = {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()}
  with pytest.raises(ConfigError) as err:
    experiment.run(_config(store, **change), workdir)
  message = str(err.value)
  assert "\n" not in message and needle in message
  assert "new --workdir" in message and "--restart" in message
  assert {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()} == before  # untouched


def test_rerun_of_a_finished_run_returns_its_results_and_wall_time(finished, capsys):
  store, workdir, results = finished
  stored = (workdir / "results.json").read_text()
  # Eval cadence and logging do not change what was computed: the same run.
  again = experiment.run(_config(store, run__log_every=2), workdir)
  assert again == json.loads(stored)
  assert again["wall_time_s"] == results["wall_time_s"]
  assert (workdir / "results.json").read_text() == stored
  assert "finished before" in capsys.readouterr().out


def test_restart_clears_the_run_but_keeps_the_teacher(finished, tmp_path):
  store, workdir, results = finished
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy)
  teachers_before = sorted(p.name for p in store.iterdir())
  new = experiment.run(_config(store, distill__temperature=4.0), copy, restart=True)
  assert sorted(p.name for p in store.iterdir()) == teachers_before
  assert new["teacher"]["entry"] == results["teacher"]["entry"]  # reused, not retrained
  assert json.loads((copy / "config.json").read_text())["distill"]["temperature"] == 4.0
  records = [json.loads(l) for l in (copy / "metrics.jsonl").read_text().splitlines()]
  assert [r["epoch"] for r in records if r["phase"] == "distill"] == [1, 2]  # no old epochs
  assert not any(r["phase"] == "teacher" for r in records)  # the teacher was loaded
  assert new["splits"]["test"]["kl"] != results["splits"]["test"]["kl"]  # τ = 4 numbers


def test_restart_never_deletes_a_teacher_store_inside_the_run(tmp_path):
  workdir = tmp_path / "run"
  (workdir / "checkpoints" / "teachers").mkdir(parents=True)
  c = _config(workdir / "checkpoints" / "teachers")
  with pytest.raises(ConfigError, match="teacher store"):
    rundir.clear(c.teacher.store, workdir)
  assert (workdir / "checkpoints" / "teachers").is_dir()


def test_ctrl_c_says_where_it_stopped_and_the_rerun_resumes(finished, tmp_path):
  store, _, results = finished

  def ctrl_c(phase, epoch):
    if phase == "distill" and epoch == 1:
      raise KeyboardInterrupt

  c = _config(store)
  with pytest.raises(Interrupted) as err:
    experiment.run(c, tmp_path / "run", hook=ctrl_c)
  assert (err.value.phase, err.value.epoch, err.value.saved) == ("distill", 1, 1)
  assert str(err.value) == ("interrupted after epoch 1/2 of distill; rerun the same command "
                            "to resume")
  assert isinstance(err.value, KeyboardInterrupt)  # notebooks and callers still see Ctrl-C
  resumed = experiment.run(c, tmp_path / "run")
  assert resumed["splits"] == results["splits"]


def test_interrupted_names_the_checkpoint_a_rerun_resumes_from():
  assert str(Interrupted("teacher", 7, 10, 5)) == (
      "interrupted after epoch 7/10 of teacher (its last checkpoint is after epoch 5: a rerun "
      "resumes there); rerun the same command to resume")
  assert str(Interrupted("teacher", 0, 10, 0)).startswith("interrupted in epoch 1/10 of teacher;")
  assert "no checkpoint of it yet" in str(Interrupted("distill", 3, 10, 0))


def _dict(**changes):
  c = base_config()
  for key, value in changes.items():
    section, leaf = key.split("__")
    c[section][leaf] = value
  return json.loads(to_json(c))


def test_identity_ignores_cadence_but_not_the_members_distilled_from():
  base = _dict()
  assert rundir.differences(base, _dict(run__log_every=7, distill__eval_every=3,
                                        run__tensorboard=False, teacher__store="/elsewhere")) == []
  # teacher_members = 0 distills from every member: the ensemble size is then part of the run
  assert rundir.differences(base, _dict(teacher__ensemble_size=3)) == [
      ("teacher.ensemble_size", 1, 3)]
  pinned = _dict(distill__teacher_members=1)
  assert rundir.differences(pinned, _dict(distill__teacher_members=1,
                                          teacher__ensemble_size=3)) == []


def test_a_folder_without_progress_is_reused(tmp_path):
  (tmp_path / "config.json").write_text(to_json(_config(tmp_path / "s")))  # a failed start
  changed = _config(tmp_path / "s", distill__temperature=2.0)
  rundir.check(json.loads(to_json(changed)), tmp_path)  # no error
