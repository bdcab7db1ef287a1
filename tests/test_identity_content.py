"""Teachers and GANs are keyed by the content of their data, never by its path: the same bytes
moved (another folder, another clone, another host's mount) find the stored teacher; other
bytes at the same path train a new one."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from kd_jax import config as config_lib
from kd_jax.core import checkpoints, parallel
from kd_jax.core.errors import ConfigError
from kd_jax.data import content, inputs, sources
from kd_jax.runner import gans, identity, teachers
from kd_jax.train import writer as report
from tiny import tiny_config

REPO = Path(__file__).resolve().parent.parent


def _mnist(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
  """Examples lo..hi of embedded MNIST taken class by class (the file is sorted by label)."""
  i = np.arange(lo, hi)
  with np.load(sources.MNIST_EMBEDDED) as z:
    idx = (i % 10) * 500 + i // 10
    return z["images"][idx], z["labels"][idx]


def _png(img: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(img[..., 0]).save(buf, format="PNG")
  return buf.getvalue()


def _write_tar(path: Path, lo: int, hi: int) -> Path:
  """MNIST images lo..hi as ``train/<digit>/<i>.png`` in a tar (no test split)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  images, labels = _mnist(lo, hi)
  with tarfile.open(path, "w") as tf:
    for i, (img, lab) in enumerate(zip(images, labels)):
      data = _png(img)
      info = tarfile.TarInfo(f"train/{lab}/{i:04d}.png")
      info.size = len(data)
      tf.addfile(info, io.BytesIO(data))
  return path


def _write_folder(root: Path, lo: int, hi: int) -> Path:
  images, labels = _mnist(lo, hi)
  for i, (img, lab) in enumerate(zip(images, labels)):
    (root / "train" / str(lab)).mkdir(parents=True, exist_ok=True)
    (root / "train" / str(lab) / f"{i:04d}.png").write_bytes(_png(img))
  return root


def _data(path: Path, cache: Path):
  c = config_lib.base_config()
  c.data.source, c.data.path, c.data.cache_dir = "image_folder", str(path), str(cache)
  return c.data


# ------------------------------------------------------------------ fingerprints


def test_file_digest_is_the_sha256_of_the_bytes_wherever_they_lie(tmp_path):
  a = tmp_path / "a" / "data.bin"
  a.parent.mkdir()
  a.write_bytes(os.urandom(5000))
  want = "sha256:" + hashlib.sha256(a.read_bytes()).hexdigest()
  assert content.file_digest(a) == want
  b = tmp_path / "elsewhere" / "renamed.bin"
  b.parent.mkdir()
  shutil.copy(a, b)
  assert content.file_digest(b) == want
  a.write_bytes(a.read_bytes()[:-1] + bytes([a.read_bytes()[-1] ^ 1]))  # same path, other byte
  assert content.file_digest(a) == "sha256:" + hashlib.sha256(a.read_bytes()).hexdigest() != want


def test_large_file_digest_samples_evenly_spaced_blocks(tmp_path, monkeypatch):
  monkeypatch.setattr(content, "FULL_HASH_BYTES", 1000)
  monkeypatch.setattr(content, "BLOCK_BYTES", 10)
  monkeypatch.setattr(content, "SAMPLE_BLOCKS", 4)
  raw = bytearray(os.urandom(3001))
  f = tmp_path / "big.bin"
  f.write_bytes(bytes(raw))
  # Blocks of 10 at offsets 0, 997, 1994, 2991: the first and the last 10 bytes included.
  want = hashlib.sha256(b"3001|" + b"".join(bytes(raw[o:o + 10]) for o in (0, 997, 1994, 2991)))
  assert content.file_digest(f) == "sampled:" + want.hexdigest()
  raw[1000] ^= 1  # inside the second block
  f.write_bytes(bytes(raw))
  assert content.file_digest(f) != "sampled:" + want.hexdigest()


def test_folder_digest_reads_only_the_images_and_their_content(tmp_path):
  a = _write_folder(tmp_path / "a", 0, 30)
  key = lambda p: sources.content_fingerprint(_data(p, tmp_path / "cache"))
  first = key(a)
  assert first["folder"].startswith("sha256:")
  b = tmp_path / "moved" / "b"
  shutil.copytree(a, b)
  assert key(b) == first
  (b / "train" / "notes.txt").write_text("not an image")  # files the source does not read
  (b / "train" / "0" / "._0000.png").write_bytes(b"resource fork")
  assert key(b) == first
  png = b / "train" / "0" / "0000.png"
  png.write_bytes(_png(255 - _mnist(0, 1)[0][0]))  # one image's bytes changed in place
  assert key(b) != first
  shutil.rmtree(b)
  shutil.copytree(a, b)
  (b / "train" / "0").rename(b / "train" / "zero")  # same bytes, other class name
  assert key(b) != first


def test_large_folder_digest_hashes_the_listing_and_sampled_files(tmp_path, monkeypatch):
  a = _write_folder(tmp_path / "a", 0, 20)
  monkeypatch.setattr(content, "FULL_HASH_BYTES", 100)
  monkeypatch.setattr(content, "SAMPLE_FILES", 3)
  listed = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.png"))
  h = hashlib.sha256()
  for rel in listed:
    h.update(f"{rel}\0{(a / rel).stat().st_size}\n".encode())
  for i in (0, 9, 19):  # 3 files evenly spaced in the sorted listing of 20
    h.update(b"sha256:" + hashlib.sha256((a / listed[i]).read_bytes()).hexdigest().encode())
  got = sources.content_fingerprint(_data(a, tmp_path / "cache"))
  assert got == {"source": "image_folder", "folder": "sampled:" + h.hexdigest()}


def test_missing_data_is_the_loader_error_unless_planning(tmp_path):
  data = _data(tmp_path / "nowhere.tar", tmp_path / "cache")
  c = config_lib.base_config()
  with pytest.raises(ConfigError, match=r"data\.path=.*nowhere\.tar.* does not exist"):
    identity.teacher_key(data, c.teacher)
  planned = identity.teacher_key(data, c.teacher, missing_ok=True)
  other = _data(tmp_path / "elsewhere.tar", tmp_path / "cache")
  assert planned != identity.teacher_key(other, c.teacher, missing_ok=True)


# ------------------------------------------------------------------ keys


def test_teacher_key_ignores_the_path_and_follows_the_content(tmp_path):
  c = config_lib.base_config()
  tar = _write_tar(tmp_path / "a" / "mnist.tar", 0, 50)
  moved = tmp_path / "b" / "other-name.tar"
  moved.parent.mkdir()
  shutil.copy(tar, moved)
  key = identity.teacher_key(_data(tar, tmp_path / "c1"), c.teacher)
  assert identity.teacher_key(_data(moved, tmp_path / "c2"), c.teacher) == key
  # The data_dir (tfds' folder) is no part of it either.
  d = _data(moved, tmp_path / "c2")
  d.data_dir = "/mnt/elsewhere"
  assert identity.teacher_key(d, c.teacher) == key
  # The path-based key of old stores did change with the path.
  assert (identity.legacy_teacher_key(_data(tar, tmp_path), c.teacher)
          != identity.legacy_teacher_key(_data(moved, tmp_path), c.teacher))
  _write_tar(tar, 50, 100)  # same path, other images
  assert identity.teacher_key(_data(tar, tmp_path / "c1"), c.teacher) != key


def test_tfds_key_is_name_version_and_orientation_not_the_data_dir(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  c = config_lib.base_config()
  keys = {}
  with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
    for where in ("a", "b"):
      for transposed in (False, True):
        d = c.data.copy_and_resolve_references()
        d.source, d.name, d.data_dir = "tfds", "emnist", str(tmp_path / where)
        d.emnist_transposed = transposed
        keys[where, transposed] = identity.teacher_key(d, c.teacher)
        fp = sources.content_fingerprint(d)
        assert fp["tfds"] == tfds.builder("emnist").info.full_name and "data_dir" not in fp
  assert keys["a", False] == keys["b", False] != keys["a", True] == keys["b", True]


def test_moved_clone_computes_the_same_key(tmp_path):
  """A copy of the package elsewhere (its embedded MNIST at another path) keys alike."""
  clone = tmp_path / "clone"
  shutil.copytree(REPO / "kd_jax", clone / "kd_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))
  code = ("from kd_jax import config as C; from kd_jax.runner import identity as I; "
          "from kd_jax.data import sources as S; c = C.base_config(); "
          "print(S.MNIST_EMBEDDED); print(I.teacher_key(c.data, c.teacher))")
  env = dict(os.environ, PYTHONPATH=str(clone), JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=300)
  assert out.returncode == 0, out.stderr
  asset, key = out.stdout.split()
  assert Path(asset).is_relative_to(clone)  # the clone's own file was read
  c = config_lib.base_config()
  assert key == identity.teacher_key(c.data, c.teacher)


def test_gan_key_ignores_the_path_and_follows_the_content(tmp_path):
  tar = _write_tar(tmp_path / "a" / "mnist.tar", 0, 40)
  moved = tmp_path / "b" / "copy.tar"
  moved.parent.mkdir()
  shutil.copy(tar, moved)
  c = config_lib.base_config()
  c.data.source, c.data.path = "image_folder", str(tar)
  key = gans.gan_key(c.gan, c.data)
  c.data.path = str(moved)
  assert gans.gan_key(c.gan, c.data) == key
  _write_tar(moved, 40, 80)
  assert gans.gan_key(c.gan, c.data) != key


# ------------------------------------------------------------------ the store


def _teacher(c, workdir):
  mesh = parallel.make_mesh(c.run.num_devices)
  data = inputs.load(c.data, mesh)
  return teachers.get_teacher(c.teacher, identity.store_keys(c.data, c.teacher), c.run, workdir,
                              data, mesh, report.MetricWriter(workdir, tensorboard=False))


def _tar_config(store: Path, tar: Path, cache: Path):
  c = tiny_config(store)
  with c.unlocked():
    c.data.source, c.data.path, c.data.cache_dir = "image_folder", str(tar), str(cache)
    c.data.test_size = 100
  return c


def test_teacher_reused_from_a_moved_file_retrained_for_other_content(tmp_path):
  store = tmp_path / "store"
  tar = _write_tar(tmp_path / "host1" / "mnist.tar", 0, 400)
  first = _teacher(_tar_config(store, tar, tmp_path / "cache1"), tmp_path / "w1")
  assert first.trained_now
  moved = tmp_path / "host2" / "mounted" / "digits.tar"
  moved.parent.mkdir(parents=True)
  shutil.copy(tar, moved)
  again = _teacher(_tar_config(store, moved, tmp_path / "cache2"), tmp_path / "w2")
  assert not again.trained_now and again.entry == first.entry
  for a, b in zip(jax.tree.leaves(first.final), jax.tree.leaves(again.final)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  _write_tar(tar, 400, 800)  # same path, other images
  other = _teacher(_tar_config(store, tar, tmp_path / "cache1"), tmp_path / "w3")
  assert other.trained_now and other.entry != first.entry
  assert sorted(p.name for p in store.iterdir() if p.is_dir()) == sorted(
      [first.entry.name, other.entry.name])


def test_teacher_reused_from_a_moved_clone_retrained_for_other_content(tmp_path, monkeypatch):
  """The embedded MNIST at another clone's path: reused; changed bytes there: retrained."""
  store = tmp_path / "store"
  first = _teacher(tiny_config(store), tmp_path / "w1")
  assert first.trained_now
  asset = tmp_path / "clone" / "kd_jax" / "data" / "assets" / sources.MNIST_EMBEDDED.name
  asset.parent.mkdir(parents=True)
  shutil.copy(sources.MNIST_EMBEDDED, asset)
  monkeypatch.setattr(sources, "MNIST_EMBEDDED", asset)
  again = _teacher(tiny_config(store), tmp_path / "w2")
  assert not again.trained_now and again.entry == first.entry
  with np.load(asset) as z:
    arrays = {k: z[k] for k in z.files}
  arrays["images"] = np.ascontiguousarray(arrays["images"][:, ::-1])  # other images, same path
  with open(asset, "wb") as f:
    np.savez(f, **arrays)
  other = _teacher(tiny_config(store), tmp_path / "w3")
  assert other.trained_now and other.entry != first.entry


def test_entries_stored_under_the_path_based_key_are_still_found(tmp_path):
  c = tiny_config(tmp_path / "store", members=2)
  old = checkpoints.teacher_entry(tmp_path / "store", identity.legacy_teacher_key(c.data, c.teacher), 3)
  old.mkdir(parents=True)
  (old / "teacher.json").write_text(json.dumps({"members": 3}))
  assert identity.find_teacher(tmp_path / "store", c.data, c.teacher, 2) == old
  assert identity.find_teacher(tmp_path / "store", c.data, c.teacher, 4) is None
  g = config_lib.base_config()
  g.gan.store = str(tmp_path / "gans")
  legacy_gan = tmp_path / "gans" / f"gan-{gans.gan_key(g.gan, g.data, legacy=True)}"
  assert gans.stored_entry(g.gan, gans.store_keys(g.gan, g.data), tmp_path) is None
  legacy_gan.mkdir(parents=True)
  (legacy_gan / "gan.json").write_text("{}")
  assert gans.stored_entry(g.gan, gans.store_keys(g.gan, g.data), tmp_path) == legacy_gan
