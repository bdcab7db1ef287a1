"""Shared tiny settings for tests that run the real training code on embedded MNIST."""
from __future__ import annotations

import numpy as np

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


def tiny_gan_config(store, gen_steps=2):
  """An SN-GAN of width 8 on 32×32 images, a generator update per chunk, checkpointed after
  each."""
  c = config_lib.base_config()
  c.gan.model.z_dim = 8
  c.gan.model.gen_width = 8
  c.gan.model.disc_width = 8
  c.gan.batch_size = 4
  c.gan.disc_steps = 2
  c.gan.gen_steps = gen_steps
  c.gan.steps_per_call = 1
  c.gan.eval_every = 2
  c.gan.checkpoint_every = 1
  c.gan.store = str(store)
  c.run.tensorboard = False
  return c


def tiny_sweep(store):
  """Two trials (arms a and b, one seed) that share one 1-member teacher."""
  c = tiny_config(store, teacher_epochs=1, distill_epochs=2)
  with c.unlocked():
    c.name = "tiny_sweep"
  s = config_lib.sweep_config()
  s.arms = (("a", {"distill.temperature": 1.0}), ("b", {"distill.temperature": 4.0}))
  return c, s


def tiny_kill_config(store):
  """The kill tests' run (tests/kill_child.py): tiny_config with 2 teachers × 2 epochs, 2
  distillation epochs, a checkpoint every epoch, on one device, evaluated once at the end of
  each phase on the test split alone: every evaluator, and every program sharded over the
  session's 4 CPU devices, is more to trace and lower in every forked run, and what a chain
  compares bitwise (the trained variables, results.json) is a function of the config, whatever
  it is (several devices and their equivalence: tests/test_train.py, tests/test_multihost.py)."""
  c = tiny_config(store, members=2)
  with c.unlocked():
    c.teacher.eval_every = c.teacher.epochs
    c.distill.eval_every = c.distill.epochs
    c.teacher.evals = c.distill.evals = ("test",)
    c.run.num_devices = 1
  return c


def small_gan_config(store, gen_steps: int = 2):
  """tiny_gan_config on the ``small_sngan`` pair (:func:`register_small_gan`), for
  :func:`small_gan_images`: 2 generator updates, each checkpointed and evaluated (so a rerun
  resumes from a checkpoint that an evaluation record precedes, and may find a record past
  it)."""
  register_small_gan()
  c = tiny_gan_config(store, gen_steps=gen_steps)
  with c.unlocked():
    c.gan.model.name = "small_sngan"
    c.gan.eval_every = 1
  return c


def register_small_gan() -> None:
  """Registers ``small_sngan`` (once per process): the SN-GAN's own blocks, one of each
  (z → 4×4 → one upsampling GenBlock → 8×8 images; one downsampling spectrally normalized
  DiscBlock → logit), so that a GAN run keeps every kind of state it saves and resumes (Adam,
  BatchNorm statistics, spectral-norm ``u``) at a fraction of what the 32×32 SN-GAN costs to
  trace and compile (tests/kill_child.py's forked runs, tests/test_time_budget.py)."""
  import flax.linen as nn
  import jax.numpy as jnp
  from kd_jax.models import sngan as s
  if "small_sngan" in s.GAN_MODELS:
    return

  class Generator(nn.Module):
    z_dim: int
    k: int
    channels: int = 3

    @nn.compact
    def __call__(self, z, train: bool = False):
      h = s.dense(4 * 4 * self.k, self.z_dim)(z).reshape(z.shape[0], 4, 4, self.k)
      h = s.GenBlock(self.k)(h, train)
      h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)(h))
      return jnp.tanh(s.conv(self.channels, 3, self.k)(h))

  class Discriminator(nn.Module):
    k: int
    channels: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
      h = s.DiscBlock(self.k, self.channels, down=True, first=True)(x, train)
      return s.sn(s.dense(1, self.k), jnp.mean(nn.relu(h), axis=(1, 2)), train)[:, 0]

  @s.GAN_MODELS.register("small_sngan")
  def small_sngan(z_dim: int, gen_width: int, disc_width: int, channels: int = 3):
    return (Generator(z_dim=z_dim, k=gen_width, channels=channels),
            Discriminator(k=disc_width, channels=channels))


def small_gan_images() -> np.ndarray:
  """The 8×8 training images of a ``small_sngan`` GAN."""
  return np.random.RandomState(0).randint(0, 256, (10, 8, 8, 3)).astype(np.uint8)


class FakeClock:
  """A clock for ``kd_jax.core.budget``: each reading is ``step`` seconds after the last, so
  where a budgeted run stops depends on its checkpoint boundaries, never on this machine's
  speed."""

  def __init__(self, step: float):
    self.t, self.step = 0.0, step

  def __call__(self) -> float:
    self.t += self.step
    return self.t
