"""Nothing lost: atomic files, half-written caches rebuilt, damaged inputs named in one line,
damaged checkpoints skipped, and no checkpoint ever holding a NaN or an infinity.

Expectations come from the files themselves (bytes, arrays read back), from a run straight
through compared bitwise, and from messages checked for the file they must name.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.core import atomic, checkpoints
from kd_jax.core.errors import ConfigError, TrainingDiverged
from kd_jax.data import sources
from kd_jax.runner import experiment
from test_sources import _folder_cfg, _write_folder
from tiny import small_gan_config, small_gan_images, tiny_config

# --------------------------------------------------------------------------- atomic files


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
  target = tmp_path / "results.json"
  atomic.write_json(target, {"v": 1})
  with pytest.raises(KeyboardInterrupt):
    with atomic.replacing(target) as f:
      f.write('{"v": 2, "half')
      raise KeyboardInterrupt
  assert json.loads(target.read_text()) == {"v": 1}
  assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
  target = tmp_path / "results.csv"
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  host = atomic._HOST
  left = tmp_path / f".results.csv.{host}-{int(dead.stdout)}-abcd.tmp"
  left.write_text("half")
  mine = tmp_path / f".results.csv.{host}-{os.getpid()}-abcd.tmp"  # a writer at work
  mine.write_text("in progress")
  other_dir = tmp_path / f".results.csv.{host}-{int(dead.stdout)}-ef01.tmp"
  other_dir.mkdir()
  atomic.write_text(target, "a,b\n")
  assert target.read_text() == "a,b\n"
  assert not left.exists() and not other_dir.exists() and mine.exists()


# --------------------------------------------------------------------------- data files


def _text_folder(root: Path) -> Path:
  for split, n in (("train", 4), ("test", 2)):
    for cls in ("neg", "pos"):
      (root / split / cls).mkdir(parents=True)
      for k in range(n):
        (root / split / cls / f"{k}.txt").write_text(f"{cls} review number {k} " * 3)
  return root


def _text_cfg(path: Path, cache: Path) -> dict:
  return {"source": "text_folder", "path": str(path), "cache_dir": str(cache),
          "text": {"max_len": 8, "min_freq": 1}}


def _tar_gz(folder: Path, archive: Path) -> Path:
  with tarfile.open(archive, "w:gz") as tf:
    tf.add(folder, arcname=folder.name)
  return archive


@pytest.mark.parametrize("kind", ["image", "text"])
def test_a_half_written_cache_is_rebuilt_not_crashed_on(tmp_path, kind):
  if kind == "image":
    _write_folder(tmp_path / "data")
    cfg = _folder_cfg(tmp_path / "data", tmp_path / "cache")
  else:
    cfg = _text_cfg(_text_folder(tmp_path / "data"), tmp_path / "cache")
  first = sources.load_source(cfg)
  (cache,) = (tmp_path / "cache").iterdir()
  whole = cache.read_bytes()
  for cut in (0, 3, 40, len(whole) // 2, len(whole) - 1):
    cache.write_bytes(whole[:cut])  # what a writer without a rename leaves when killed
    again = sources.load_source(cfg)
    np.testing.assert_array_equal(again.train_images, first.train_images)
    np.testing.assert_array_equal(again.test_labels, first.test_labels)
    assert cache.read_bytes() == whole  # rebuilt, the same bytes
  cache.write_bytes(b"PK\x03\x04" + os.urandom(100))  # a zip header, garbage after it
  np.testing.assert_array_equal(sources.load_source(cfg).train_labels, first.train_labels)


def _one_line(err: pytest.ExceptionInfo) -> str:
  msg = str(err.value)
  assert "\n" not in msg
  return msg


def test_an_undecodable_image_is_named_with_what_to_do(tmp_path):
  _write_folder(tmp_path / "data")
  bad = tmp_path / "data" / "train" / "bee" / "001.png"
  bad.write_bytes(os.urandom(300))  # a valid name, garbage bytes
  with pytest.raises(ConfigError) as err:
    sources.load_source(_folder_cfg(tmp_path / "data", tmp_path / "cache"))
  msg = _one_line(err)
  assert str(bad) in msg and "delete it or replace it" in msg
  assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def _data_folder(tmp_path, kind: str, n_train: int):
  """A small text or image folder data set to archive (``kind``: image, text, image_files)."""
  if kind == "text":
    return _text_folder(tmp_path / "data")
  _write_folder(tmp_path / "data", n_train=n_train)
  return tmp_path / "data"


def _load_error_leaving_no_cache(tmp_path, kind: str, archive) -> str:
  """Loads a damaged ``archive``: its one-line ConfigError, after checking that no half cache
  or extraction was left behind."""
  cfg = (_text_cfg if kind == "text" else _folder_cfg)(archive, tmp_path / "cache")
  if kind == "image_files":
    cfg["image_size"] = 4
  with pytest.raises(ConfigError) as err:
    sources.load_source(cfg)
  cache = tmp_path / "cache"
  assert not cache.exists() or not list(cache.iterdir())
  return _one_line(err)


@pytest.mark.parametrize("kind", ["image", "text", "image_files"])
def test_a_truncated_tar_gz_is_named_with_what_to_do(tmp_path, kind):
  archive = _tar_gz(_data_folder(tmp_path, kind, n_train=30), tmp_path / "data.tar.gz")
  whole = archive.read_bytes()
  archive.write_bytes(whole[: len(whole) * 2 // 3])  # a download cut short
  msg = _load_error_leaving_no_cache(tmp_path, kind, archive)
  assert str(archive) in msg and "truncated or damaged" in msg and "again" in msg


@pytest.mark.parametrize("kind", ["image", "text", "image_files"])
def test_a_tar_cut_at_a_member_boundary_is_not_taken_for_a_smaller_archive(tmp_path, kind):
  """The cut lands exactly after a whole member: every header read so far is valid, and only
  the missing end-of-archive marker shows the archive is incomplete."""
  folder = _data_folder(tmp_path, kind, n_train=4)
  plain = tmp_path / "data.tar"
  with tarfile.open(plain, "w") as tf:
    tf.add(folder, arcname=folder.name)
  with tarfile.open(plain) as tf:  # the offset where the middle member's header starts
    members = tf.getmembers()
  cut = members[len(members) // 2].offset
  archive = tmp_path / "data.tar.gz"
  archive.write_bytes(gzip.compress(plain.read_bytes()[:cut]))  # a whole gzip, a cut tar
  msg = _load_error_leaving_no_cache(tmp_path, kind, archive)
  assert str(archive) in msg and "end-of-archive" in msg and "again" in msg


# --------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_with_a_nan_is_refused(tmp_path):
  ckpt = checkpoints.Checkpointer(tmp_path / "ckpt")
  ckpt.save(1, {"w": jnp.ones((2, 3)), "step": jnp.int32(1)})
  with pytest.raises(TrainingDiverged, match=r"\['w'\].*step 2 not saved.*step 1\)"):
    ckpt.save(2, {"w": jnp.ones((2, 3)).at[1, 2].set(jnp.inf), "step": jnp.int32(2)})
  assert ckpt.all_steps() == [1]
  ckpt.close()
  assert checkpoints.nonfinite_members({"a": jnp.ones((3, 2)).at[2, 0].set(jnp.nan),
                                       "b": jnp.zeros((3,))}) == [2]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """A finished tiny run (2 teachers, 3 student epochs) and its store."""
  root = tmp_path_factory.mktemp("straight")
  results = experiment.run(tiny_config(root / "store", members=2, distill_epochs=3),
                           root / "run")
  return root, results


def _tree(directory: Path, step=None):
  return checkpoints.read_host(directory, step)[1]


def _same(a, b) -> None:
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_damaged_student_step_falls_back_to_the_one_before(straight, tmp_path, capsys):
  root, reference = straight
  config = tiny_config(root / "store", members=2, distill_epochs=3)

  class Stop(Exception):
    pass

  def stop_after_epoch_2(phase, epoch):
    if phase == "distill" and epoch == 2:
      raise Stop

  with pytest.raises(Stop):
    experiment.run(config, tmp_path / "run", hook=stop_after_epoch_2)
  step2 = tmp_path / "run" / "checkpoints" / "student" / "2"
  for f in step2.rglob("*"):
    if f.is_file():
      f.write_bytes(os.urandom(64))  # every file of the step damaged
  capsys.readouterr()
  resumed = experiment.run(config, tmp_path / "run")
  out = capsys.readouterr().out
  line = next(l for l in out.splitlines() if "cannot be read" in l)
  assert str(step2) in line and "resuming from epoch 1" in line
  assert resumed["splits"] == reference["splits"]  # bitwise: the lost epoch was redone
  assert (step2.parent / "2.unreadable").is_dir()  # set aside, not deleted


def test_a_damaged_teacher_json_is_named_with_what_to_do(straight, tmp_path):
  root, _ = straight
  store = tmp_path / "store"
  shutil.copytree(root / "store", store)
  (entry,) = store.glob("*-m2")
  (entry / "teacher.json").write_text('{"key": "5bf7', encoding="utf-8")
  with pytest.raises(ConfigError) as err:
    experiment.run(tiny_config(store, members=2, distill_epochs=3), tmp_path / "run")
  msg = _one_line(err)
  assert str(entry / "teacher.json") in msg and f"delete {entry}" in msg
  assert (entry / "final").is_dir()  # nothing else touched


def test_an_entry_left_without_its_metadata_is_resumed_not_fatal(straight, tmp_path, capsys):
  """What a kill between the final save and teacher.json left in the older in-place layout."""
  root, reference = straight
  store = tmp_path / "store"
  shutil.copytree(root / "store", store)
  (entry,) = store.glob("*-m2")
  (entry / "teacher.json").unlink()
  capsys.readouterr()
  results = experiment.run(tiny_config(store, members=2, distill_epochs=3), tmp_path / "run")
  assert "is incomplete (no teacher.json): resuming it" in capsys.readouterr().out
  assert results["splits"] == reference["splits"]
  (again,) = store.glob("*-m2")
  assert (again / "teacher.json").exists() and not list(store.glob("*.partial"))
  _same(_tree(again / "final"), _tree(next((root / "store").glob("*-m2")) / "final"))


# --------------------------------------------------------------------------- divergence


def _all_steps_finite(directory: Path) -> list[int]:
  ckpt = checkpoints.Checkpointer(directory)
  steps = ckpt.all_steps()
  ckpt.close()
  for s in steps:
    tree = _tree(directory, s)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating)), s
  return steps


def test_one_diverging_teacher_member_stops_with_one_line(tmp_path, monkeypatch):
  """The last of 2 members diverges (the teacher of ``straight``: its compiled step is reused)."""
  from kd_jax.train import trainer
  real = trainer.run_epoch

  def member_1_blows_up_in_epoch_2(phase, state, mesh, epoch, members):
    state, totals = real(phase, state, mesh, epoch, members)
    if phase.name == "teacher" and epoch == 1:  # its weights overflow in the epoch's last step
      params = jax.tree.map(lambda x: x.at[1].set(jnp.inf), state.params)
      state = state.replace(params=params)
    return state, totals

  monkeypatch.setattr(trainer, "run_epoch", member_1_blows_up_in_epoch_2)
  with pytest.raises(TrainingDiverged) as err:
    experiment.run(tiny_config(tmp_path / "store", members=2, distill_epochs=3),
                   tmp_path / "run")
  msg = _one_line(err)
  (work,) = (tmp_path / "store").glob("*.partial")
  assert msg.startswith("[teacher] non-finite variables in epoch 2 (member 1)")
  assert f"last good checkpoint (epoch 1) is kept in {work / 'ckpt'}" in msg
  assert _all_steps_finite(work / "ckpt") == [1]


def test_diverging_distillation_stops_with_one_line_and_no_bad_checkpoint(straight, tmp_path):
  root, _ = straight  # its stored teacher: only the student trains here
  store = tmp_path / "store"
  shutil.copytree(root / "store", store)
  config = tiny_config(store, members=2, distill_epochs=3)
  with config.unlocked():
    config.distill.optim.lr = 1e30  # real divergence, no injection
  with pytest.raises(TrainingDiverged) as err:
    experiment.run(config, tmp_path / "run")
  msg = _one_line(err)
  assert msg.startswith("[distill] non-finite") and "(member 0)" in msg and "epoch" in msg
  ckpt_dir = tmp_path / "run" / "checkpoints" / "student"
  assert str(ckpt_dir) in msg or "no checkpoint of it was saved" in msg
  if ckpt_dir.exists():
    _all_steps_finite(ckpt_dir)


def test_diverging_gan_stops_with_one_line_and_no_bad_checkpoint(tmp_path, monkeypatch):
  from kd_jax.runner import gans
  from kd_jax.train import gan_steps
  real = gan_steps.gan_chunk
  calls = []

  def blows_up_in_update_2(state, data, seed, spec, num):
    state, sums = real(state, data, seed, spec=spec, num=num)
    calls.append(num)
    if len(calls) == 2:
      state = dataclasses.replace(state, gen_params=jax.tree.map(lambda x: x * jnp.nan,
                                                                 state.gen_params))
    return state, sums

  monkeypatch.setattr(gan_steps, "gan_chunk", blows_up_in_update_2)
  images = small_gan_images()
  with pytest.raises(TrainingDiverged) as err:
    c = small_gan_config(tmp_path / "gans", gen_steps=2)
    gans.get_gan(c.gan, gans.store_keys(c.gan, c.data), tmp_path, images, tensorboard=False)
  msg = _one_line(err)
  (work,) = (tmp_path / "gans").glob("*.partial")
  assert msg.startswith("[gan] non-finite values in")
  assert "after generator update 2" in msg and f"(update 1) is kept in {work / 'ckpt'}" in msg
  assert _all_steps_finite(work / "ckpt") == [1]


# --------------------------------------------------------------------------- config file


def test_a_config_file_that_raises_on_import_is_one_line(tmp_path):
  bad = tmp_path / "broken.py"
  bad.write_text("import no_such_module_here\n\ndef get_config():\n  return None\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run([sys.executable, "-m", "kd_jax.main", f"--config={bad}",
                         f"--workdir={tmp_path / 'run'}"], capture_output=True, text=True,
                        env=env, timeout=300)
  assert proc.returncode != 0
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1, proc.stderr
  assert str(bad) in lines[0] and "no_such_module_here" in lines[0]
  assert not (tmp_path / "run").exists()
