"""One process of the 2-process test (tests/test_multihost.py): 2 CPU devices, a tiny teacher.

Usage: python multihost_worker.py <port> <process_id> <workdir> <store> [teacher|run|run_kill].
``teacher`` (default) trains the teacher alone and records, for every training step it fed,
which columns of the global batch it read (file taken_<id>.npz); ``run`` runs the whole
experiment (teacher, distillation, evaluation); ``run_kill`` does so but process 1 kills itself
(SIGKILL) after its first distillation checkpoint.
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
mode = sys.argv[5] if len(sys.argv) > 5 else "teacher"
if os.environ.get("KD_JAX_TEST_COMPILE_CACHE"):
  # The test session's compilation cache (tests/conftest.py): the rerun after the kill loads
  # what the killed pair compiled (process 0 writes it, both read it).
  from kd_jax.core import cache  # noqa: E402
  cache.use_compile_cache(os.environ["KD_JAX_TEST_COMPILE_CACHE"])
distributed.initialize(f"127.0.0.1:{port}", 2, pid)

if mode != "teacher":
  import signal  # noqa: E402

  from kd_jax.runner import experiment  # noqa: E402
  from tiny import multihost_run_config  # noqa: E402

  def die_after_first_distill_checkpoint(phase, epoch):
    if mode == "run_kill" and pid == 1 and phase == "distill" and epoch == 1:
      print("killing myself", file=sys.stderr, flush=True)  # stdout: silenced off process 0
      os.kill(os.getpid(), signal.SIGKILL)

  experiment.run(multihost_run_config(store), workdir, hook=die_after_first_distill_checkpoint)
  sys.exit(0)

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
