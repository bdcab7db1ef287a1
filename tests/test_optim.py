"""optax builders against closed forms: cosine schedule with a floor, coupled weight decay, Nesterov."""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.train import optim
from kd_jax.config import optim_config
from kd_jax.core.errors import ConfigError


def test_cosine_schedule_with_floor():
  c = optim_config(lr=0.1, lr_min=1e-3, schedule="cosine")
  sched = optim.schedule(c, total_steps=100, steps_per_epoch=10)
  for t in (0, 25, 50, 99, 100):
    want = 1e-3 + 0.5 * (0.1 - 1e-3) * (1 + math.cos(math.pi * min(t, 100) / 100))
    assert float(sched(t)) == pytest.approx(want, rel=1e-5)


def test_warmup_then_cosine():
  c = optim_config(lr=0.2, lr_min=0.0, warmup_epochs=1)
  sched = optim.schedule(c, total_steps=50, steps_per_epoch=10)
  assert float(sched(0)) == pytest.approx(0.0)
  assert float(sched(5)) == pytest.approx(0.1, rel=1e-5)
  assert float(sched(10)) == pytest.approx(0.2, rel=1e-5)
  assert float(sched(50)) == pytest.approx(0.0, abs=1e-7)


def test_sgd_nesterov_coupled_weight_decay_matches_hand_update():
  lr, mu, wd = 0.1, 0.9, 0.01
  c = optim_config(name="sgd", lr=lr, momentum=mu, nesterov=True, weight_decay=wd,
                   schedule="constant")
  tx = optim.make_optimizer(c, total_steps=10, steps_per_epoch=10)
  p = np.array([1.0, -2.0, 3.0])
  grads = [np.array([0.5, 0.1, -0.3]), np.array([-0.2, 0.4, 0.1])]
  state = tx.init(jnp.asarray(p))
  params = jnp.asarray(p)
  buf = np.zeros(3)
  ref = p.copy()
  for g in grads:  # torch.optim.SGD(nesterov=True, weight_decay=wd), written out
    d = g + wd * ref
    buf = mu * buf + d
    ref = ref - lr * (d + mu * buf)
    upd, state = tx.update(jnp.asarray(g), state, params)
    params = params + upd
  np.testing.assert_allclose(np.asarray(params), ref, rtol=1e-6)


def test_adam_first_step_is_lr_sign():
  c = optim_config(name="adam", lr=0.01, weight_decay=0.0, schedule="constant")
  tx = optim.make_optimizer(c, 10, 10)
  g = jnp.asarray([3.0, -0.5])
  upd, _ = tx.update(g, tx.init(jnp.zeros(2)), jnp.zeros(2))
  np.testing.assert_allclose(np.asarray(upd), [-0.01, 0.01], rtol=1e-4)


@pytest.mark.parametrize("field,value,needle", [
    ("name", "rmsprop", "optim.name='rmsprop'"),
    ("schedule", "step", "optim.schedule='step'"),
    ("lr", 0.0, "optim.lr=0.0"),
    ("lr_min", 1.0, "optim.lr_min"),
])
def test_bad_optimizer_settings(field, value, needle):
  c = optim_config()
  c[field] = value
  with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
    optim.check(c)
