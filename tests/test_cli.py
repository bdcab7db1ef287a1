"""The command line as a user meets it: bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _main(*args: str, module: str = "kd_jax.main") -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra,needle", [
    (["--config.distill.temprature=2"],
     "--config.distill.temprature: the config has no key 'temprature'; did you mean 'temperature'?"),
    (["--config.distill.model.name=resnet9"], "model.name='resnet9' is not a known model"),
    (["--config.distill.temperature=-1"], "distill.temperature"),
    (["--config.teacher.optim.name=sgdd"], "optim.name='sgdd'"),
    (["--config.data.teacher_subset=9000"], "data.teacher_subset=9000"),
])
def test_bad_input_is_one_line(tmp_path, extra, needle):
  out = _main("--config=configs/mnist.py:tiny", f"--workdir={tmp_path / 'w'}", *extra)
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  assert needle in lines[0]


def test_unwritable_workdir_and_missing_config(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  out = _main("--config=configs/mnist.py:tiny", f"--workdir={blocker / 'sub'}")
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
  assert "is not writable" in out.stderr
  out = _main("--config=configs/no_such.py", f"--workdir={tmp_path}")
  assert out.returncode == 2
  assert out.stderr.strip() == "error: --config=configs/no_such.py: no such config file"


def test_paper_config_without_cifar100_says_how_to_get_it(tmp_path):
  out = _main("--config=configs/cifar100.py", f"--workdir={tmp_path / 'w'}",
              f"--config.data.data_dir={tmp_path / 'tfds'}")
  assert out.returncode == 2
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert f"tfds build cifar100 --data_dir={tmp_path / 'tfds'}" in lines[0]
  assert 'pip install "kd_jax[prepare]"' in lines[0]
