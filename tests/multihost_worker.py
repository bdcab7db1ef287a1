"""One process of the 2-process test (tests/test_multihost.py): 2 CPU devices, a tiny teacher.

Usage: python multihost_worker.py <port> <process_id> <workdir> <store>. Records, for every
training step it fed, which columns of the global batch it read (file taken_<id>.npz).
"""
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["JAX_PLATFORMS"] = "cpu"

import numpy as np  # noqa: E402

from kd_jax.core import distributed, parallel  # noqa: E402
from kd_jax.train import writer as report
from kd_jax.runner import teachers  # noqa: E402
from kd_jax.runner.identity import teacher_key  # noqa: E402
from kd_jax.data import inputs  # noqa: E402
from kd_jax.data import pipelines  # noqa: E402
from tiny import multihost_config  # noqa: E402

port, pid, workdir, store = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
distributed.initialize(f"127.0.0.1:{port}", 2, pid)

taken = []
_take_train = pipelines.ArraySource.take_train


def recording(self, idx, seeds):
  # seeds rows: (seed, stream, epoch, step, member, global position)
  taken.append(np.concatenate([seeds, np.asarray(idx)[..., None]], axis=-1).reshape(-1, 7))
  return _take_train(self, idx, seeds)


pipelines.ArraySource.take_train = recording
config = multihost_config(store)
mesh = parallel.make_mesh(0)
writer = report.MetricWriter(workdir, tensorboard=False)
teachers.get_teacher(config.teacher, teacher_key(config.data, config.teacher), config.run,
                     workdir, inputs.load(config.data, mesh), mesh, writer)
writer.close()
np.savez(os.path.join(workdir, f"taken_{pid}.npz"), taken=np.concatenate(taken))
