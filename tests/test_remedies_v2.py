"""SAM steps, the temperature curriculum and the held-out validation split, each against a
reference written here: numpy gradients of a linear softmax model, the closed-form schedule,
brute-force split checks."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P
from ml_collections import ConfigDict

from kd_jax import config as config_lib
from kd_jax.core import parallel
from kd_jax.core.batch import Batch
from kd_jax.core.errors import ConfigError
from kd_jax.data import splits
from kd_jax.data.core import ArrayDataset
from kd_jax.runner import remedies
from kd_jax.train import steps

N, D, C = 24, 5, 3


class _Linear(nn.Module):
  """logits = x·W: its gradients have a closed form the test writes in numpy."""
  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(C, use_bias=False)(x)


def _np_softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _np_ce_grad(w, x, y):
  """∇_W of the mean cross-entropy of softmax(x·W) against one-hot y."""
  return x.T @ (_np_softmax(x @ w) - np.eye(C)[y]) / len(x)


def _problem(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, D)).astype(np.float32)
  y = rng.integers(0, C, size=N)
  w = rng.normal(size=(D, C)).astype(np.float32)
  return x, y, w


def _one_step(spec, w, x, y, teacher_vars=None, step=0):
  """One train_step of the linear model from W inside the one-device map the trainer uses."""
  params = {"Dense_0": {"kernel": jnp.asarray(w)}}
  state = steps.TrainState(step=jnp.int32(step), params=params, batch_stats={},
                           opt_state=spec.tx.init(params))
  batch = Batch(inputs=jnp.asarray(x), labels=jnp.asarray(y, jnp.int32),
                mask=jnp.ones(len(x), bool))
  run = parallel.device_map(
      lambda: steps.train_step(state, batch, jax.random.key(0), spec, teacher_vars),
      parallel.make_mesh(1), in_specs=(), out_specs=(P(), P()))
  new, sums = run()
  return np.asarray(new.params["Dense_0"]["kernel"]), sums


def _spec(**kw):
  model = _Linear()
  base = dict(apply_fn=model.apply, tx=optax.sgd(0.5), materialize=None,
              prepare=lambda b, k: (b.inputs, jnp.ones(b.inputs.shape[0], bool)))
  return steps.StepSpec(**{**base, **kw})


@pytest.mark.parametrize("rho", [0.0, 0.05, 0.5])
def test_sam_step_is_the_gradient_at_the_perturbed_point(rho):
  x, y, w = _problem()
  got, _ = _one_step(_spec(sam_rho=rho), w, x, y)
  g = _np_ce_grad(w.astype(np.float64), x, y)
  if rho:
    g = _np_ce_grad(w + rho * g / np.linalg.norm(g), x, y)
  np.testing.assert_allclose(got, w - 0.5 * g, rtol=1e-4, atol=1e-5)


def test_sam_moves_elsewhere_than_the_plain_step():
  # A guard that the radius reaches the update at all: ρ = 0.5 on this problem moves W by more
  # than float noise away from the plain step.
  x, y, w = _problem(1)
  plain, _ = _one_step(_spec(), w, x, y)
  sam, _ = _one_step(_spec(sam_rho=0.5), w, x, y)
  assert np.abs(plain - sam).max() > 1e-3


def test_temperature_schedule_is_linear_then_held():
  d = ConfigDict(dict(temperature=8.0, temperature_end=2.0))
  fn = remedies.temperature_schedule(d, total_steps=100)
  for step in (0, 1, 37, 50, 99, 100, 250):
    want = 8.0 + (2.0 - 8.0) * min(1.0, step / 100)
    assert float(fn(jnp.int32(step))) == pytest.approx(want, rel=1e-6)
  assert remedies.temperature_schedule(ConfigDict(dict(temperature=4.0, temperature_end=0.0)),
                                       10) is None


@pytest.mark.parametrize("step", [0, 30, 60])
def test_curriculum_step_uses_the_temperature_of_its_step(step):
  """The KD loss the step reports at step s is numpy's τ(s)²·CE(softmax(t/τ), softmax(z/τ))."""
  x, y, w = _problem(2)
  wt = np.random.default_rng(3).normal(size=(D, C)).astype(np.float32)
  teacher = _Linear()
  t_vars = {"params": {"Dense_0": {"kernel": jnp.asarray(wt)[None]}}}  # one stacked member
  d = ConfigDict(dict(temperature=6.0, temperature_end=1.0))
  spec = _spec(objective="kd", teacher_apply=teacher.apply,
               temperature_at=remedies.temperature_schedule(d, total_steps=60))
  _, sums = _one_step(spec, w, x, y, teacher_vars=t_vars, step=step)
  tau = 6.0 + (1.0 - 6.0) * step / 60
  zt, zs = x.astype(np.float64) @ wt, x.astype(np.float64) @ w
  log_pt = np.log(_np_softmax(zt))                        # the teacher's log-probabilities
  p = _np_softmax(log_pt / tau)
  log_q = np.log(_np_softmax(zs / tau))
  want = float(np.sum(-(tau ** 2) * (p * log_q).sum(-1)))
  assert float(sums["loss_sum"]) == pytest.approx(want, rel=1e-4)


def _dataset(n=300, classes=3, seed=0):
  """Example i is the one-token sequence [i] (the splits only index examples), so every split's
  members can be named."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(classes), n // classes).astype(np.int32)
  rng.shuffle(labels)
  ids = np.arange(n, dtype=np.int32).reshape(n, 1)
  return ArrayDataset(train_images=ids, train_labels=labels, test_images=ids[:30],
                      test_labels=labels[:30], num_classes=classes,
                      class_names=[str(k) for k in range(classes)])


def _cfg(**kw):
  d = config_lib.data_config()
  d.update(kw)
  return d


def test_val_split_is_stratified_disjoint_and_taken_from_the_distillation_set():
  ds = _dataset()
  without = splits.make_splits(ds, _cfg(teacher_subset=60, distill_pool="teacher"))
  held = splits.make_splits(ds, _cfg(teacher_subset=60, distill_pool="teacher", distill_val=15))
  ids = lambda a: set(np.asarray(a).ravel().tolist())
  # The 15 held out plus the 45 left are exactly the 60 distillation examples of the run
  # without a validation split; the teacher's set is untouched.
  assert len(held.val_y) == 15 and len(held.distill_y) == 45
  assert ids(held.val_x) | ids(held.distill_x) == ids(without.distill_x)
  assert not ids(held.val_x) & ids(held.distill_x)
  assert ids(held.teacher_x) == ids(without.teacher_x)
  np.testing.assert_array_equal(np.bincount(held.val_y, minlength=3), [5, 5, 5])
  assert held.info["val_size"] == 15 and without.info["val_size"] == 0
  # Labels travel with their examples.
  lookup = dict(zip(np.asarray(ds.train_images).ravel().tolist(), ds.train_labels.tolist()))
  assert [lookup[i] for i in np.asarray(held.val_x).ravel()] == held.val_y.tolist()


def test_val_split_too_big_is_one_clear_error():
  with pytest.raises(ConfigError, match="data.distill_val=60 leaves nothing"):
    splits.make_splits(_dataset(), _cfg(teacher_subset=60, distill_pool="teacher",
                                        distill_val=60))


@pytest.mark.parametrize("key,value,needle", [
    ("sam_rho", -0.1, "distill.sam_rho=-0.1 must be >= 0"),
    ("temperature_end", -1.0, "distill.temperature_end=-1.0 must be >= 0"),
])
def test_bad_v2_remedy_keys(key, value, needle):
  d = config_lib.distill_config()
  d[key] = value
  with pytest.raises(ConfigError, match=needle):
    remedies.check(d)


def test_sam_with_a_line_search_is_refused():
  d = config_lib.distill_config()
  d.sam_rho, d.optim.name = 0.05, "lbfgs"
  with pytest.raises(ConfigError, match="sam_rho=0.05 perturbs minibatch gradients"):
    remedies.check(d)
