"""Shared tiny settings for tests that run the real training code on embedded MNIST."""
from __future__ import annotations

from kd_jax import config as config_lib


def tiny_config(store, *, devices=0, members=1, teacher_epochs=2, distill_epochs=2):
  """``members`` teachers and one student on embedded MNIST, a few seconds of training."""
  c = config_lib.base_config()
  c.data.test_size = 200
  c.data.teacher_subset = 64
  c.data.distill_subset = 128
  c.teacher.epochs = teacher_epochs
  c.teacher.batch_size = 16
  c.teacher.ensemble_size = members
  c.teacher.optim.lr = 0.05
  c.teacher.eval_every = 1
  c.teacher.store = str(store)
  c.distill.epochs = distill_epochs
  c.distill.batch_size = 32
  c.distill.eval_every = 1
  c.run.num_devices = devices
  c.run.checkpoint_every = 1
  c.run.tensorboard = False
  return config_lib.lock(c)


def multihost_config(store):
  """tests/test_multihost.py's teacher (both sides): streamed data, 2 members, 2 epochs, the
  test evaluation once (every evaluator is another compilation on each process)."""
  c = tiny_config(store, members=2, teacher_epochs=2)
  with c.unlocked():
    c.data.pipeline = "streamed"
    c.teacher.evals, c.teacher.eval_every = ("test",), 2
  return c


def multihost_run_config(store):
  """tests/test_multihost.py's whole run: one member of the teacher above, then 3 epochs of distillation on
  streamed data, evaluated on the test split at the end."""
  c = multihost_config(store)
  with c.unlocked():
    c.teacher.ensemble_size = 1
    c.distill.epochs = 3
    c.distill.evals, c.distill.eval_every = ("test",), 3
  return c
