"""Data sources: embedded MNIST, tfds (mocked), image folders / tars, and the real CIFAR-10 tar."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kd_jax import recipes
from kd_jax.data import sources
from kd_jax.core.errors import ConfigError

# The real CIFAR-10 JPEG tarball, where the CIFAR mini configs look for it.
CIFAR_TAR = Path(os.environ.get(recipes.CIFAR10_ENV, "") or recipes.SIBLING_CIFAR10)


# ------------------------------------------------------------------ registry / mnist_embedded


def test_unknown_source_names_key_and_choices():
  with pytest.raises(ConfigError, match=r"data\.source='nope'.*image_folder, mnist1d, mnist_embedded, rotten_tomatoes, "
                     r"text_folder, tfds, tfds_text"):
    sources.load_source({"source": "nope"})
  with pytest.raises(ConfigError, match=r"data\.ood\.source='nope'"):
    sources.load_source({"source": "nope"}, prefix="data.ood")


def test_mnist_embedded_is_5000_images_500_per_class():
  ds = sources.load_source({"source": "mnist_embedded"})
  assert ds.train_images.shape == (5000, 28, 28, 1) and ds.train_images.dtype == np.uint8
  assert ds.train_labels.dtype == np.int32
  np.testing.assert_array_equal(np.bincount(ds.train_labels, minlength=10), [500] * 10)
  assert ds.test_images is None and ds.test_labels is None and not ds.has_test
  assert ds.num_classes == 10 and ds.class_names == [str(i) for i in range(10)]
  assert ds.meta["sha256"] == hashlib.sha256(sources.MNIST_EMBEDDED.read_bytes()).hexdigest()
  # Real digits: ink on a black background, not noise or a constant.
  assert ds.train_images.max() == 255 and 0.08 < ds.train_images.mean() / 255 < 0.2


def test_array_dataset_rejects_wrong_layout():
  img = np.zeros((3, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match="uint8 NHWC"):
    sources.ArrayDataset(img[..., 0], np.zeros(3, np.int32), None, None, 1, ["a"])
  with pytest.raises(ValueError, match="int32"):
    sources.ArrayDataset(img, np.zeros(3, np.int64), None, None, 1, ["a"])


# ------------------------------------------------------------------ tfds


@pytest.fixture(scope="module")
def tfds_mod():
  return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("name,shape,classes", [("cifar10", (32, 32, 3), 10),
                                                ("mnist", (28, 28, 1), 10)])
def test_tfds_mock_shapes_dtypes_splits(tfds_mod, tmp_path, name, shape, classes):
  with tfds_mod.testing.mock_data(num_examples=12, policy=tfds_mod.testing.MockPolicy.USE_CODE):
    ds = sources.load_source({"source": "tfds", "name": name, "data_dir": str(tmp_path)})
  assert ds.train_images.shape == (12,) + shape and ds.train_images.dtype == np.uint8
  assert ds.test_images.shape == (12,) + shape and ds.test_images.dtype == np.uint8
  assert ds.train_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
  assert ds.num_classes == classes and len(ds.class_names) == classes
  assert ds.train_labels.min() >= 0 and ds.train_labels.max() < classes
  assert ds.meta["source"] == "tfds" and ds.meta["name"].startswith(name + "/")
  assert ds.meta["version"] == ds.meta["name"].split("/")[-1]


def test_tfds_reads_every_record_and_transposes_emnist(tfds_mod, tmp_path):
  policy = tfds_mod.testing.MockPolicy.USE_CODE
  with tfds_mod.testing.mock_data(num_examples=5, policy=policy):
    raw = tfds_mod.data_source("emnist", split="train", data_dir=str(tmp_path), download=False)
    want_x = np.stack([np.asarray(raw[i]["image"]) for i in range(5)])
    want_y = np.array([int(raw[i]["label"]) for i in range(5)])
    ds = sources.load_source({"source": "tfds", "name": "emnist", "data_dir": str(tmp_path)})
  assert ds.num_classes == 62
  np.testing.assert_array_equal(ds.train_labels, want_y)
  # TFDS keeps EMNIST transposed against MNIST; the source swaps H and W back.
  np.testing.assert_array_equal(ds.train_images, np.swapaxes(want_x, 1, 2))
  assert not np.array_equal(ds.train_images, want_x)


def test_tfds_emnist_transposed_flag_keeps_the_official_orientation(tfds_mod, tmp_path):
  # data.emnist_transposed=True feeds EMNIST as the official code did (torchvision, no
  # transpose): each image is the transpose of the default (MNIST-oriented) one, on both
  # routes Fig 2 can take (data.* and data.ood.*).
  cfg = {"source": "tfds", "name": "emnist", "data_dir": str(tmp_path)}
  ood_cfg = {"data_dir": str(tmp_path), "ood": {"source": "tfds", "name": "emnist", "num": 5}}
  with tfds_mod.testing.mock_data(num_examples=5, policy=tfds_mod.testing.MockPolicy.USE_CODE):
    default = sources.load_source(cfg)
    flagged = sources.load_source({**cfg, "emnist_transposed": True})
    ood = sources.load_ood({**ood_cfg, "emnist_transposed": True})
    ood_default = sources.load_ood(ood_cfg)
  assert flagged.train_images.shape == default.train_images.shape == (5, 28, 28, 1)
  for got, ref in zip(flagged.train_images, default.train_images):
    np.testing.assert_array_equal(got, np.transpose(ref, (1, 0, 2)))
  for got, ref in zip(flagged.test_images, default.test_images):
    np.testing.assert_array_equal(got, np.transpose(ref, (1, 0, 2)))
  assert not np.array_equal(flagged.train_images, default.train_images)
  np.testing.assert_array_equal(flagged.train_labels, default.train_labels)
  np.testing.assert_array_equal(ood.train_images, flagged.train_images)
  np.testing.assert_array_equal(ood_default.train_images, default.train_images)
  assert flagged.meta["orientation"] != default.meta["orientation"]


def test_tfds_not_prepared_gives_the_build_command(tfds_mod, tmp_path):
  with pytest.raises(ConfigError) as err:
    sources.load_source({"source": "tfds", "name": "cifar10", "data_dir": str(tmp_path)})
  msg = str(err.value)
  assert "\n" not in msg and "data.name='cifar10'" in msg
  assert (f'pip install -e ".[prepare]" && tfds build cifar10 --data_dir={tmp_path} '
          "--file_format=array_record") in msg
  with pytest.raises(ConfigError, match=r"tfds build emnist/byclass "):
    sources.load_source({"source": "tfds", "name": "emnist", "data_dir": str(tmp_path)})


def test_tfds_bad_names(tfds_mod, tmp_path):
  # An unknown name may be a custom set prepared elsewhere: say it is not in this data_dir.
  with pytest.raises(ConfigError, match=r"data\.name='no_such_set_xyz' is neither a tfds catalog "
                     rf"dataset nor a dataset prepared in {tmp_path}; point data\.data_dir"):
    sources.load_source({"source": "tfds", "name": "no_such_set_xyz", "data_dir": str(tmp_path)})
  with pytest.raises(ConfigError, match=r"data\.ood\.name is empty"):
    sources.load_source({"source": "tfds", "name": ""}, prefix="data.ood")


# ------------------------------------------------------------------ image_folder

# Written in a non-sorted order on purpose: labels must follow the sorted class names.
CLASSES = ("cat", "ant", "bee")


def _png(arr: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, format="PNG")
  return buf.getvalue()


def _write_folder(root: Path, channels: int = 3, n_train: int = 3, n_test: int = 2) -> dict:
  """Images whose pixel values encode (split, class, index): the test's own ground truth."""
  truth: dict[str, dict[bytes, int]] = {"train": {}, "test": {}}
  for split, n in (("train", n_train), ("test", n_test)):
    for ci, cls in enumerate(CLASSES):
      d = root / split / cls
      d.mkdir(parents=True, exist_ok=True)
      for k in range(n):
        value = 10 + 40 * ci + 5 * k + (2 if split == "test" else 0)
        img = np.full((6, 5, channels), value, np.uint8)
        img[0, 0] = 255 - value  # Not a constant image.
        (d / f"{k:03d}.png").write_bytes(_png(img))
        truth[split][img.tobytes()] = sorted(CLASSES).index(cls)
  (root / "train" / "README.txt").write_text("not an image")
  (root / "train" / "ant" / "._000.png").write_bytes(b"resource fork, not an image")
  return truth


def _check_against_truth(ds: sources.ArrayDataset, truth: dict, channels: int) -> None:
  assert ds.class_names == sorted(CLASSES) and ds.num_classes == 3
  for split, x, y in (("train", ds.train_images, ds.train_labels),
                      ("test", ds.test_images, ds.test_labels)):
    assert x.dtype == np.uint8 and y.dtype == np.int32 and x.shape[1:] == (6, 5, channels)
    assert len(x) == len(truth[split])
    got = {img.tobytes(): int(lab) for img, lab in zip(x, y)}
    assert got == truth[split]


def _folder_cfg(path: Path, cache: Path) -> dict:
  return {"source": "image_folder", "path": str(path), "cache_dir": str(cache)}


def _fail_decode(data: bytes) -> np.ndarray:
  raise AssertionError("decoder called although the cache should have been used")


def test_image_folder_labels_are_sorted_class_indices(tmp_path):
  truth = _write_folder(tmp_path / "imgs")
  ds = sources.load_source(_folder_cfg(tmp_path / "imgs", tmp_path / "cache"))
  _check_against_truth(ds, truth, 3)
  assert ds.meta["cache_hit"] == "False"


def test_image_folder_cache_hit_and_invalidation(tmp_path, monkeypatch):
  root = tmp_path / "imgs"
  _write_folder(root)
  archive = tmp_path / "imgs.tar.gz"
  with tarfile.open(archive, "w:gz") as tf:
    tf.add(root, arcname="imgs")  # A wrapping folder inside the archive is fine.
  cfg = _folder_cfg(archive, tmp_path / "cache")
  first = sources.load_source(cfg)
  monkeypatch.setattr(sources, "_decode_image", _fail_decode)
  second = sources.load_source(cfg)
  assert second.meta["cache_hit"] == "True"
  np.testing.assert_array_equal(first.train_images, second.train_images)
  np.testing.assert_array_equal(first.test_labels, second.test_labels)
  assert second.meta["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()

  # A changed archive (new size and mtime) must be decoded again, and the stale cache dropped.
  (root / "train" / "ant" / "extra.png").write_bytes(_png(np.full((6, 5, 3), 7, np.uint8)))
  with tarfile.open(archive, "w:gz") as tf:
    tf.add(root, arcname="imgs")
  os.utime(archive, ns=(1, 1))
  with pytest.raises(AssertionError, match="decoder called"):
    sources.load_source(cfg)
  monkeypatch.undo()
  third = sources.load_source(cfg)
  assert third.meta["cache_hit"] == "False" and len(third.train_labels) == 10
  cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
  assert len(cached) == 1 and cached[0].endswith(".npz"), cached  # No temp files, no stale.


def test_image_tar_equals_folder(tmp_path):
  root = tmp_path / "imgs"
  truth = _write_folder(root)
  archive = tmp_path / "imgs.tar"
  with tarfile.open(archive, "w") as tf:
    # Reverse order: the arrays must not depend on the order of the archive members.
    for f in sorted(root.rglob("*.png"), reverse=True):
      tf.add(f, arcname=f.relative_to(root).as_posix())
  ds = sources.load_source(_folder_cfg(archive, tmp_path / "cache"))
  _check_against_truth(ds, truth, 3)
  ref = sources.load_source(_folder_cfg(root, tmp_path / "cache"))
  for field in ("train_images", "train_labels", "test_images", "test_labels"):
    np.testing.assert_array_equal(getattr(ds, field), getattr(ref, field))


def test_image_folder_grayscale_and_mixed_channels(tmp_path):
  truth = _write_folder(tmp_path / "gray", channels=1)
  ds = sources.load_source(_folder_cfg(tmp_path / "gray", tmp_path / "cache"))
  _check_against_truth(ds, truth, 1)
  # One RGB file turns the whole folder RGB; gray images get their value in all channels.
  rgb = np.zeros((6, 5, 3), np.uint8)
  rgb[..., 0] = 200
  (tmp_path / "gray" / "train" / "bee" / "zzz.png").write_bytes(_png(rgb))
  ds = sources.load_source(_folder_cfg(tmp_path / "gray", tmp_path / "cache"))
  assert ds.train_images.shape[1:] == (6, 5, 3)
  gray = [img for img in ds.train_images if not (img[..., 0] == 200).all()]
  assert len(gray) == 9 and all((img == img[..., :1]).all() for img in gray)


def test_image_folder_jpeg_and_no_test_split(tmp_path):
  d = tmp_path / "j" / "train" / "b"
  d.mkdir(parents=True)
  (tmp_path / "j" / "train" / "a").mkdir()
  for cls_dir, color in ((d, (200, 40, 90)), (tmp_path / "j" / "train" / "a", (20, 140, 60))):
    Image.new("RGB", (8, 8), color).save(cls_dir / "x.JPG", format="JPEG", quality=95)
  ds = sources.load_source(_folder_cfg(tmp_path / "j", tmp_path / "cache"))
  assert ds.test_images is None and ds.test_labels is None
  np.testing.assert_array_equal(ds.train_labels, [0, 1])
  np.testing.assert_allclose(ds.train_images[0].mean(axis=(0, 1)), (20, 140, 60), atol=3)
  np.testing.assert_allclose(ds.train_images[1].mean(axis=(0, 1)), (200, 40, 90), atol=3)


def test_image_folder_errors(tmp_path):
  with pytest.raises(ConfigError, match=r"data\.path='.*missing' does not exist"):
    sources.load_source(_folder_cfg(tmp_path / "missing", tmp_path / "cache"))
  with pytest.raises(ConfigError, match=r"data\.path is empty"):
    sources.load_source({"source": "image_folder", "path": ""})
  (tmp_path / "empty").mkdir()
  with pytest.raises(ConfigError, match=r"no train/<class>"):
    sources.load_source(_folder_cfg(tmp_path / "empty", tmp_path / "cache"))
  _write_folder(tmp_path / "sizes")
  (tmp_path / "sizes" / "train" / "ant" / "big.png").write_bytes(
      _png(np.zeros((7, 7, 3), np.uint8)))
  with pytest.raises(ConfigError, match=r"one size"):
    sources.load_source(_folder_cfg(tmp_path / "sizes", tmp_path / "cache"))


# ------------------------------------------------------------------ real CIFAR-10


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
  if not CIFAR_TAR.exists():
    pytest.skip(f"real CIFAR-10 archive not found at {CIFAR_TAR} (only in the dev checkout)")
  cache = tmp_path_factory.mktemp("cifar_cache")
  return sources.load_source(_folder_cfg(CIFAR_TAR, cache))


def test_cifar10_tar_is_the_real_dataset(cifar10):
  ds = cifar10
  assert ds.train_images.shape == (50000, 32, 32, 3) and ds.train_images.dtype == np.uint8
  assert ds.test_images.shape == (10000, 32, 32, 3) and ds.test_images.dtype == np.uint8
  assert ds.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck"]
  np.testing.assert_array_equal(np.bincount(ds.train_labels), [5000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.test_labels), [1000] * 10)
  # Sum images first (a contiguous reduction), then pixels: 10x faster than one strided mean.
  per_pixel = ds.train_images.reshape(len(ds.train_images), -1).sum(axis=0, dtype=np.int64)
  means = per_pixel.reshape(-1, 3).sum(axis=0) / (ds.train_images.size // 3) / 255.0
  np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=1e-3)


# ------------------------------------------------------------------ where CIFAR mini configs look


def _cifar_mini(monkeypatch, tmp_path, *, env: str = "", tfds_ready: bool = False,
                sibling: bool = False):
  """configs/cifar10.py:mini's data section with each place CIFAR-10 may be set up or not."""
  tfds_dir = tmp_path / "tfds"
  if tfds_ready:
    version = tfds_dir / "cifar10" / "3.0.2"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text("{}")
    (version / "cifar10-train.array_record-00000-of-00001").write_bytes(b"")
  monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_dir))
  if env:
    monkeypatch.setenv(recipes.CIFAR10_ENV, env)
  else:
    monkeypatch.delenv(recipes.CIFAR10_ENV, raising=False)
  tar = tmp_path / "shared" / "cifar10-jpeg.tar.gz"
  if sibling:
    tar.parent.mkdir(parents=True)
    tar.write_bytes(b"")
  monkeypatch.setattr(recipes, "SIBLING_CIFAR10", tar)
  from kd_jax.config import base_config
  c = base_config()
  recipes.mini_cifar10(c)
  return c.data


def test_cifar_mini_finds_cifar10_in_order(monkeypatch, tmp_path):
  d = _cifar_mini(monkeypatch, tmp_path, env="/data/c10.tar", tfds_ready=True, sibling=True)
  assert (d.source, d.path) == ("image_folder", "/data/c10.tar")  # the variable wins
  d = _cifar_mini(monkeypatch, tmp_path / "b", tfds_ready=True, sibling=True)
  assert (d.source, d.name, d.path) == ("tfds", "cifar10", "")
  d = _cifar_mini(monkeypatch, tmp_path / "c", sibling=True)
  tar = str(tmp_path / "c/shared/cifar10-jpeg.tar.gz")
  assert (d.source, d.name, d.path) == ("image_folder", "", tar)


def test_cifar_mini_without_cifar10_stops_with_one_line(monkeypatch, tmp_path):
  d = _cifar_mini(monkeypatch, tmp_path)
  with pytest.raises(ConfigError) as err:
    sources.load_source(d)
  msg = str(err.value)
  assert "\n" not in msg and msg.startswith("CIFAR-10 not found")
  for way in ("tfds build cifar10 --file_format=array_record", "KD_JAX_CIFAR10",
              "--config.data.path"):
    assert way in msg


def test_data_path_beside_tfds_is_refused_not_ignored():
  from kd_jax.config import base_config
  from kd_jax.runner.validate import validate
  c = base_config()
  recipes.tfds_cifar(c, "cifar10")
  c.data.path = "/data/c10.tar"
  with pytest.raises(ConfigError, match=r"data\.path='/data/c10\.tar' is read by "
                     r"data\.source='image_folder' only.*--config\.data\.source=image_folder"):
    validate(c)


def test_teacher_store_is_set_by_one_variable_and_printed_absolute(monkeypatch, tmp_path):
  from kd_jax.runner import teachers
  monkeypatch.delenv(recipes.TEACHERS_ENV, raising=False)
  assert recipes.teacher_store() == "runs/teachers"
  monkeypatch.setenv(recipes.TEACHERS_ENV, str(tmp_path / "store"))
  c = recipes.paper_figure("x")
  assert c.teacher.store == str(tmp_path / "store")
  monkeypatch.chdir(tmp_path)
  c.teacher.store = "rel/store"
  assert teachers.store_dir(c.teacher, tmp_path / "w") == tmp_path / "rel" / "store"
