"""The time estimate printed before a long run, and the devices line (kd_jax/runner/estimate.py).

Expected values are worked out here by hand from the table's rates and the config's sizes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kd_jax import config as config_lib
from kd_jax.runner import estimate

REPO = Path(__file__).resolve().parents[1]


def _mnist(teacher_subset=200, epochs=(100, 60), members=1):
  c = config_lib.base_config()
  c.data.teacher_subset = teacher_subset
  c.teacher.epochs, c.distill.epochs = epochs
  c.teacher.ensemble_size = members
  return c


def test_sizes_follow_the_pools_without_loading_data():
  c = _mnist()
  # 5,000 embedded images − 1,000 carved for test = 4,000; teacher 200, the rest distills.
  assert estimate.sizes(c.data) == (200, 3800)
  c.data.distill_pool, c.data.ood.num = "teacher", 50
  assert estimate.sizes(c.data) == (200, 250)
  c = config_lib.base_config()
  c.data.source, c.data.name, c.data.test_size = "tfds", "cifar100", 0
  c.data.teacher_pool, c.data.distill_pool = "d0", "d1"
  assert estimate.sizes(c.data) == (25_000, 25_000)
  c.data.source, c.data.name, c.data.path = "image_folder", "", "/somewhere"
  assert estimate.sizes(c.data) == (None, None)  # an image folder's size is not known
  c.data.teacher_subset, c.data.distill_subset = 8000, 2000
  assert estimate.sizes(c.data) == (8000, 2000)


def test_seconds_are_images_over_rate_and_a_teacher_forward_is_a_third_step():
  c = _mnist(members=3)
  rate = estimate.THROUGHPUT["cpu"]["lenet5"][0]
  teacher = 100 * 200 * 3           # epochs × examples × members
  student = 60 * 3800 * (3 + 3) / 3  # each step also runs 3 teacher members forward
  got = estimate.seconds(estimate.run_work(c.data, c.teacher, c.distill, teacher_stored=False), "cpu", 4)
  assert got == pytest.approx((teacher + student) / rate)  # CPU devices share the cores
  got = estimate.seconds(estimate.run_work(c.data, c.teacher, c.distill, teacher_stored=True), "gpu", 2)
  assert got == pytest.approx(student / (2 * estimate.THROUGHPUT["gpu"]["lenet5"][0]))


def test_model_size_scales_compute_down_to_the_fixed_cost():
  gpu_ref = estimate.THROUGHPUT["gpu"]["preresnet"][0]
  pr110 = config_lib.model_config("preresnet", depth=110, width=1.0)
  assert estimate.throughput("gpu", pr110) == pytest.approx(gpu_ref * 56 / 110)
  half = config_lib.model_config("preresnet56", width=0.5)
  assert estimate.throughput("gpu", half) == pytest.approx(gpu_ref * 4)
  ref, fastest = estimate.THROUGHPUT["cpu"]["preresnet"]
  assert estimate.throughput("cpu", config_lib.model_config("preresnet", depth=56)) == \
      pytest.approx(ref)
  tiny = config_lib.model_config("preresnet", depth=8, width=0.25)
  per_image = 1 / fastest + (1 / ref - 1 / fastest) * (8 / 56) * 0.25 ** 2
  assert estimate.throughput("cpu", tiny) == pytest.approx(1 / per_image)
  assert ref < estimate.throughput("cpu", tiny) < fastest
  assert estimate.throughput("cpu", config_lib.model_config("bilstm")) is None
  m = _mnist()
  assert estimate.seconds([estimate.student_work(m.data, m.teacher, m.distill)], "tpu", 1) is not None
  assert estimate.seconds([None], "cpu", 1) is None


def test_warning_only_above_two_hours_in_one_line():
  assert estimate.warning(2 * 3600, "cpu", 1) is None
  assert estimate.warning(None, "cpu", 1) is None
  line = estimate.warning(3 * 86400, "cpu", 1)
  assert "\n" not in line and line.startswith("[estimate] this run will take about 72 h (3.0 days)")
  assert "measured" in line and "GPU or TPU" in line
  line = estimate.warning(5 * 3600, "gpu", 8, what="this sweep")
  assert "about 5.0 h on 8 × gpu" in line and "not measured" in line and "GPU or TPU" not in line


def test_devices_line_names_count_kind_and_platform():
  import jax
  n = jax.local_device_count()
  assert estimate.describe_devices() == f"[devices] {n} × cpu (cpu)"


def test_paper_scale_config_on_cpu_says_how_long_before_it_starts(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TFDS_DATA_DIR=str(tmp_path / "tfds"),
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
  out = subprocess.run([sys.executable, "-m", "kd_jax.main", "--config=configs/cifar100.py",
                        f"--workdir={tmp_path / 'w'}"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
  lines = out.stdout.splitlines()
  assert lines[0].startswith("[devices] ") and lines[0].endswith("(cpu)"), out.stdout
  assert lines[1].startswith("[estimate] this run will take about ") and " days)" in lines[1]
  assert out.returncode == 2 and "tfds build cifar100" in out.stderr  # then the data is missing
