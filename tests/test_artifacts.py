"""Portable teacher artifacts: params and batch statistics, compressed, checked by sha256, split
into ≤ PART_BYTES files, found by a run before it would train the teacher."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import kd_jax
from kd_jax.core import checkpoints, parallel
from kd_jax.core.errors import ConfigError
from kd_jax.data import inputs, sources
from kd_jax.runner import artifacts, experiment, identity, teachers
from kd_jax.train import modeling, writer as report
from tiny import tiny_config


def _teacher(c, workdir):
  mesh = parallel.make_mesh(c.run.num_devices)
  data = inputs.load(c.data, mesh)
  return teachers.get_teacher(c.teacher, identity.store_keys(c.data, c.teacher), c.run, workdir,
                              data, mesh, report.MetricWriter(workdir, tensorboard=False))


def _logits(model, variables, x) -> np.ndarray:
  members = jax.tree.leaves(variables["params"])[0].shape[0]
  return np.stack([np.asarray(model.apply(modeling.as_flax(jax.tree.map(lambda a: a[i],
                                                                          variables)),
                                          x, train=False)) for i in range(members)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("trained")
  c = tiny_config(tmp / "store", members=2)
  return c, _teacher(c, tmp / "w")


def test_saved_artifact_loads_elsewhere_with_identical_logits(trained, tmp_path, monkeypatch):
  c, teacher = trained
  monkeypatch.setattr(artifacts, "PART_BYTES", 20_000)  # the tiny LeNet pair: several parts
  key = identity.teacher_key(c.data, c.teacher)
  manifest = artifacts.save(tmp_path / "a", teacher.final, key, 2, c.teacher, c.data)
  meta = json.loads(manifest.read_text())
  assert len(meta["parts"]) > 1 and meta["key"] == key and meta["members"] == 2
  assert meta["teacher"]["seed"] == c.teacher.seed and meta["data"]["source"] == "mnist_embedded"
  assert all((manifest.parent / p["file"]).stat().st_size <= 20_000 for p in meta["parts"])
  moved = tmp_path / "b" / "copied"
  shutil.copytree(tmp_path / "a", moved)
  shutil.rmtree(tmp_path / "a")
  loaded, _ = artifacts.load(moved / manifest.name)
  assert set(loaded) == {"params", "batch_stats"}  # no optimizer state
  want = jax.tree.map(np.asarray, teacher.final)
  assert jax.tree.structure(loaded) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(want)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  with np.load(sources.MNIST_EMBEDDED) as z:
    x = z["images"][::250].astype(np.float32) / 255.0
  got, ref = _logits(teacher.model, loaded, x), _logits(teacher.model, want, x)
  assert got.shape == (2, len(x), 10) and np.ptp(ref) > 0
  np.testing.assert_array_equal(got, ref)


def test_a_corrupted_byte_is_one_line_naming_the_file(trained, tmp_path):
  c, teacher = trained
  manifest = artifacts.save(tmp_path, teacher.final, "abc", 2, c.teacher, c.data)
  part = tmp_path / json.loads(manifest.read_text())["parts"][0]["file"]
  raw = bytearray(part.read_bytes())
  raw[len(raw) // 2] ^= 0x01
  part.write_bytes(bytes(raw))
  with pytest.raises(ConfigError) as e:
    artifacts.load(manifest)
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith(f"{part}: sha256 ")
  assert "does not match" in msg and "copy it again" in msg


def test_find_takes_the_smallest_artifact_with_enough_members(trained, tmp_path):
  c, teacher = trained
  for m in (2, 5):
    artifacts.save(tmp_path, teacher.final, "k1", m, c.teacher, c.data)
  assert artifacts.find(tmp_path, "k1", 1).name == "teacher-k1-m2.json"
  assert artifacts.find(tmp_path, "k1", 3).name == "teacher-k1-m5.json"
  assert artifacts.find(tmp_path, "k1", 6) is None
  assert artifacts.find(tmp_path, "k2", 1) is None
  assert artifacts.find(tmp_path / "absent", "k1", 1) is None


def test_run_with_the_artifact_present_does_not_train_the_teacher(tmp_path, monkeypatch):
  first = experiment.run(tiny_config(tmp_path / "store1", members=2, distill_epochs=1),
                         tmp_path / "run1")
  manifest = kd_jax.export_teacher(tmp_path / "run1", tmp_path / "artifacts")
  monkeypatch.setenv(artifacts.ENV, str(tmp_path / "artifacts"))

  def no_training(*args, **kwargs):
    raise AssertionError("the teacher was trained although its artifact is present")

  monkeypatch.setattr(teachers, "_train", no_training)
  c = tiny_config(tmp_path / "store2", members=1, distill_epochs=1)  # the first member of 2
  second = experiment.run(c, tmp_path / "run2")
  entry = teachers.store_dir(c.teacher, tmp_path / "run2") / f"{identity.teacher_key(c.data, c.teacher)}-m2"
  assert json.loads((entry / "teacher.json").read_text())["artifact"] == str(manifest)
  # The same first member, so the same teacher numbers on the same test split.
  assert second["teacher"]["members_used"] == 1
  t1 = kd_jax.load_teacher(tmp_path / "run1", members=1)
  t2 = kd_jax.load_teacher(tmp_path / "run2", members=1)
  for a, b in zip(jax.tree.leaves(t1.variables), jax.tree.leaves(t2.variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert first["teacher"]["entry"] != second["teacher"]["entry"]
  # The initial weights (not in the artifact) follow from teacher.seed: stored as trained.
  _, was = checkpoints.read_host(Path(first["teacher"]["entry"]) / "final")
  _, now = checkpoints.read_host(entry / "final")
  for a, b in zip(jax.tree.leaves(was["initial"]), jax.tree.leaves(now["initial"])):
    np.testing.assert_array_equal(a, b)
