"""Preparing and reading tfds sets as the README says: the `tfds build` command line imports in
the `prepare` environment, and a tiny ArrayRecord set written here is read back exactly,
without TensorFlow, with its provenance recorded."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from kd_jax.data import sources, splits
from kd_jax.core.errors import ConfigError

tfds = pytest.importorskip("tensorflow_datasets")

TRAIN, TEST = 7, 4


def _examples(n: int, seed: int) -> list[tuple[np.ndarray, int]]:
  rng = np.random.default_rng(seed)
  return [(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), int(rng.integers(0, 3)))
          for _ in range(n)]


class KdJaxTinyImages(tfds.core.GeneratorBasedBuilder):
  """A 4×4 RGB, 3-class set; Tensor images because encoding PNG (Image) needs TensorFlow."""
  VERSION = tfds.core.Version("1.2.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
        "label": tfds.features.ClassLabel(names=["a", "b", "c"])}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(TRAIN, 0), "test": self._generate_examples(TEST, 1)}

  def _generate_examples(self, n: int, seed: int):
    for i, (image, label) in enumerate(_examples(n, seed)):
      yield i, {"image": image, "label": label}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  KdJaxTinyImages(data_dir=str(root), file_format="array_record").download_and_prepare()
  return root


def test_reads_a_tiny_array_record_set_exactly(tiny_dir):
  ds = sources.load_source({"source": "tfds", "name": "kd_jax_tiny_images",
                            "data_dir": str(tiny_dir)})
  # tfds shuffles records on write: compare as multisets keyed by the image bytes.
  for images, labels, (n, seed) in ((ds.train_images, ds.train_labels, (TRAIN, 0)),
                                    (ds.test_images, ds.test_labels, (TEST, 1))):
    want = sorted((im.tobytes(), lab) for im, lab in _examples(n, seed))
    got = sorted((im.tobytes(), int(lab)) for im, lab in zip(images, labels))
    assert got == want
  assert ds.class_names == ["a", "b", "c"] and ds.num_classes == 3
  assert ds.meta["name"] == "kd_jax_tiny_images/1.2.0" and ds.meta["version"] == "1.2.0"
  assert ds.meta["data_dir"] == str(tiny_dir / "kd_jax_tiny_images" / "1.2.0")


def test_the_run_records_tfds_provenance(tiny_dir):
  cfg = {"source": "tfds", "name": "kd_jax_tiny_images", "data_dir": str(tiny_dir)}
  ds = sources.load_source(cfg)
  info = splits.make_splits(ds, {"test_size": 0, "teacher_subset": 3, "distill_pool": "rest"}).info
  json.dumps(info)  # lands in results.json["sizes"]
  assert info["source"]["name"] == "kd_jax_tiny_images/1.2.0"
  assert info["source"]["version"] == "1.2.0" and info["source"]["data_dir"] == ds.meta["data_dir"]


def test_not_prepared_custom_name_says_not_in_this_data_dir(tmp_path):
  with pytest.raises(ConfigError) as err:
    sources.load_source({"source": "tfds", "name": "kd_jax_never_built", "data_dir": str(tmp_path)})
  msg = str(err.value)
  assert "\n" not in msg
  assert re.search(r"neither a tfds catalog dataset nor a dataset prepared in "
                   + re.escape(str(tmp_path)), msg)


def test_imagenet_not_prepared_is_one_line_naming_the_tars_and_the_command(tmp_path):
  with pytest.raises(ConfigError) as err:
    sources.load_source({"source": "tfds", "name": "imagenet2012", "data_dir": str(tmp_path),
                         "image_size": 224})
  msg = str(err.value)
  assert "\n" not in msg
  manual = f"{tmp_path}/downloads/manual"
  assert "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar" in msg
  assert msg.endswith(f"tfds build imagenet2012 --data_dir={tmp_path} "
                      f"--file_format=array_record --manual_dir={manual}")


def test_tfds_build_command_line_imports_in_the_prepare_environment():
  """`tfds build` imports apache_beam, mlcroissant and importlib_resources at start-up (tfds
  4.9.x); the prepare extra must bring them. Runs `tfds build --help` (no download)."""
  pytest.importorskip("tensorflow", reason="the prepare extra (TensorFlow) is not installed "
                      "here; run this test after pip install -e \".[prepare]\"")
  out = subprocess.run([sys.executable, "-m", "tensorflow_datasets.scripts.cli.main", "build",
                        "--help"], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "--file_format" in out.stdout
  import importlib.util
  for lazy in ("importlib_resources",):  # imported by DatasetBuilder only while it builds
    assert importlib.util.find_spec(lazy) is not None, lazy
