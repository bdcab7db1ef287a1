"""optax optimizers and learning-rate schedules built from a config section.

One builder per optimizer name in a registry; the schedule is per step (cosine from ``lr`` to
``lr_min`` over the whole run, optional linear warm-up), as the paper's recipes describe.
Weight decay is *coupled* (added to the gradient before momentum), like torch.optim.SGD's
``weight_decay`` that the official code uses.
"""
from __future__ import annotations

from typing import Callable

import optax
from ml_collections import ConfigDict

from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import Registry

OPTIMIZERS: Registry[Callable[[ConfigDict, optax.Schedule], optax.GradientTransformation]] = (
    Registry("optimizer", "optim.name"))
SCHEDULES = ("cosine", "constant")


@OPTIMIZERS.register("sgd")
def _sgd(c: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
  return optax.sgd(lr, momentum=c.momentum or None, nesterov=bool(c.nesterov))


@OPTIMIZERS.register("adam")
def _adam(c: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
  return optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps)


@OPTIMIZERS.register("lbfgs")
def _lbfgs(c: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
  # Full-batch quasi-Newton; the zoom line search picks the step, so lr only scales it.
  del lr
  return optax.lbfgs(memory_size=int(c.lbfgs_memory))


@OPTIMIZERS.register("lbfgs_backtracking")
def _lbfgs_backtracking(c: ConfigDict, lr: optax.Schedule) -> optax.GradientTransformation:
  """L-BFGS with a backtracking (Armijo) line search that evaluates only the loss inside its
  loop. The zoom search evaluates gradients there, and on XLA:CPU a convolution's weight
  gradient inside a loop body runs ~100x slower than outside one (jax-ml/jax#12868), which
  makes zoom L-BFGS of a conv net unusable on CPU; the gradient is taken once per step here."""
  del lr
  search = optax.scale_by_backtracking_linesearch(max_backtracking_steps=20, store_grad=False)
  return optax.lbfgs(memory_size=int(c.lbfgs_memory), linesearch=search)


def check(c: ConfigDict, key: str = "optim") -> None:
  """Raises ConfigError for an unknown name/schedule or a non-positive rate."""
  if c.name not in OPTIMIZERS:
    raise ConfigError(f"{key}.name={c.name!r} is not a known optimizer; "
                      f"choose one of: {', '.join(OPTIMIZERS.names())}")
  if c.schedule not in SCHEDULES:
    raise ConfigError(f"{key}.schedule={c.schedule!r} is not known; choose one of: "
                      f"{', '.join(SCHEDULES)}")
  if not c.lr > 0:
    raise ConfigError(f"{key}.lr={c.lr} must be > 0")
  if c.lr_min < 0 or c.lr_min > c.lr:
    raise ConfigError(f"{key}.lr_min={c.lr_min} must be in [0, {key}.lr={c.lr}]")
  if c.weight_decay < 0:
    raise ConfigError(f"{key}.weight_decay={c.weight_decay} must be >= 0")


def schedule(c: ConfigDict, total_steps: int, steps_per_epoch: int,
             lr: float | None = None) -> optax.Schedule:
  """Per-step learning rate; ``lr`` overrides ``c.lr`` (interpolated init scales it)."""
  peak = float(c.lr if lr is None else lr)
  floor = min(float(c.lr_min), peak)
  warmup = int(c.warmup_epochs) * steps_per_epoch
  if c.schedule == "constant":
    base = optax.constant_schedule(peak)
    if warmup:
      return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), base], [warmup])
    return base
  if warmup:
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(total_steps, warmup + 1),
                                              end_value=floor)
  return optax.cosine_decay_schedule(peak, max(total_steps, 1), alpha=floor / peak if peak else 0.0)


def make_optimizer(c: ConfigDict, total_steps: int, steps_per_epoch: int,
                   lr: float | None = None) -> optax.GradientTransformation:
  """Clip → coupled weight decay → optimizer with its schedule."""
  check(c)
  parts = []
  if c.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(c.grad_clip))
  if c.weight_decay > 0:
    parts.append(optax.add_decayed_weights(c.weight_decay))
  parts.append(OPTIMIZERS.get(c.name)(c, schedule(c, total_steps, steps_per_epoch, lr)))
  return optax.chain(*parts)


def needs_value_fn(c: ConfigDict) -> bool:
  """Line-search optimizers need the loss function itself at update time."""
  return c.name in ("lbfgs", "lbfgs_backtracking")
