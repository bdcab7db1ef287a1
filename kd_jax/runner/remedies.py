"""Optimization remedies for distillation (configs/remedies.py): ways of reaching the teacher
that plain SGD from a random start does not take.

* **annealed interpolation** (``distill.init.mode="anneal"``): the student the loss sees is
  λ(t)·θ_teacher + (1−λ(t))·θ, with θ trained from a random start and λ decaying linearly from
  ``init.lam`` to 0 by the fraction ``init.anneal_until`` of training. It starts where the
  interpolated init starts (near the teacher, whose basin the paper says SGD cannot find) and
  ends as an ordinary student θ: does the path keep it in the teacher's basin?
* **the teacher's trajectory** (``distill.trajectory=k``; Jin et al. 2019, route-constrained
  optimization): the student's epochs are split into k stages that distil from k checkpoints
  along the teacher's training, in order, ending with the final teacher. Needs a teacher
  trained with ``teacher.keep_every``.
* **second-order polish** (``distill.polish.epochs``): after the first-order run, full-batch
  L-BFGS on the same distillation loss, from where SGD stopped.
* **sharpness-aware steps** (``distill.sam_rho``; Foret et al. 2021, SAM): each step's gradient
  is taken at θ + ρ·g/‖g‖, the worst point of a ρ-ball to first order, which seeks flat regions
  of the loss. Two gradient evaluations per step (kd_jax/train/steps.py).
* **a temperature curriculum** (``distill.temperature_end``; after Jafari et al. 2021,
  annealing KD): τ moves linearly from ``distill.temperature`` to ``temperature_end`` over
  training, so the student first fits the teacher's smoothed function, then its sharp one.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from kd_jax.core import checkpoints
from kd_jax.kd import ensemble
from kd_jax.core.errors import ConfigError

ANNEAL_MODE = "anneal"


def anneal_lambda(step: jax.Array, lam0: float, until_step: float) -> jax.Array:
  """λ(step) = λ₀·max(0, 1 − step / until_step): linear to exactly 0 at ``until_step``."""
  if until_step <= 0:
    return jnp.zeros((), jnp.float32)
  frac = jnp.asarray(step, jnp.float32) / jnp.float32(until_step)
  return jnp.float32(lam0) * jnp.maximum(0.0, 1.0 - frac)


def anneal_schedule(d: ConfigDict, total_steps: int):
  """The step → λ function of ``distill.init`` in anneal mode (hashable: a partial)."""
  return functools.partial(anneal_lambda, lam0=float(d.init.lam),
                           until_step=float(d.init.anneal_until) * total_steps)


def temperature_at(step: jax.Array, start: float, end: float, total_steps: float) -> jax.Array:
  """τ(step) = start + (end − start)·min(1, step / total_steps): linear, then held at ``end``."""
  frac = jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / jnp.float32(max(total_steps, 1)))
  return jnp.float32(start) + (jnp.float32(end) - jnp.float32(start)) * frac


def temperature_schedule(d: ConfigDict, total_steps: int):
  """The step → τ function of ``distill.temperature_end`` (None: τ stays
  ``distill.temperature``); hashable (a partial), as StepSpec must be."""
  if not float(d.temperature_end):
    return None
  return functools.partial(temperature_at, start=float(d.temperature),
                           end=float(d.temperature_end), total_steps=float(total_steps))


def check(d: ConfigDict) -> None:
  """Config checks for the remedies' keys; raises ConfigError with the fix."""
  if not 0.0 <= float(d.init.anneal_until) <= 1.0:
    raise ConfigError(f"distill.init.anneal_until={d.init.anneal_until} must be in [0, 1] "
                      "(the fraction of training after which λ is 0 and the student is θ alone)")
  if int(d.trajectory) < 0:
    raise ConfigError(f"distill.trajectory={d.trajectory} must be >= 0 (0 = distil from the "
                      "final teacher only; k = k checkpoints along the teacher's training)")
  if int(d.trajectory) > int(d.epochs):
    raise ConfigError(f"distill.trajectory={d.trajectory} stages need at least as many "
                      f"distill.epochs (now {d.epochs})")
  if int(d.polish.epochs) < 0:
    raise ConfigError(f"distill.polish.epochs={d.polish.epochs} must be >= 0")
  if not float(d.sam_rho) >= 0:
    raise ConfigError(f"distill.sam_rho={d.sam_rho} must be >= 0 (0 = plain steps; SAM's "
                      "radius, e.g. 0.05)")
  if float(d.sam_rho) and d.optim.name.startswith("lbfgs"):
    raise ConfigError(f"distill.sam_rho={d.sam_rho} perturbs minibatch gradients; "
                      f"distill.optim.name={d.optim.name!r} searches its own steps: set one "
                      "of them back (sam_rho=0 or optim.name='sgd'/'adam')")
  if not float(d.temperature_end) >= 0:
    raise ConfigError(f"distill.temperature_end={d.temperature_end} must be >= 0 (0 = τ stays "
                      "distill.temperature; > 0 = the τ reached at the end of training)")
  if float(d.temperature_end) and float(d.synth_ratio) > 0:
    raise ConfigError("distill.temperature_end > 0 and distill.synth_ratio > 0 both set a "
                      "per-step temperature; set distill.temperature_end=0 for GAN rows")


# ---------------------------------------------------------------- the teacher's trajectory

def kept_epochs(entry: Path) -> list[int]:
  """Epochs whose training state the teacher store entry kept (``teacher.keep_every``)."""
  ckpt = checkpoints.Checkpointer(Path(entry) / "ckpt")
  try:
    return ckpt.all_steps()
  finally:
    ckpt.close()


def trajectory_epochs(kept: list[int], stages: int, final_epoch: int) -> list[int]:
  """``stages`` teacher epochs, evenly spaced over the kept ones, the last = the final teacher."""
  if final_epoch not in kept:
    kept = sorted(set(kept) | {final_epoch})
  if len(kept) < stages:
    raise ConfigError(f"distill.trajectory={stages} needs {stages} stored teacher checkpoints "
                      f"but the teacher kept {len(kept)} ({kept}); retrain it with "
                      "--config.teacher.keep_every=1 (a new store entry is not needed: delete "
                      "its folder) or lower distill.trajectory")
  n = len(kept)
  return [kept[-(-n * (i + 1) // stages) - 1] for i in range(stages)]   # ⌈n(i+1)/k⌉-th kept


def stage_ends(epochs: int, stages: int) -> list[int]:
  """Student epoch at which each stage ends (the last = ``epochs``)."""
  return [int(round(epochs * (i + 1) / stages)) for i in range(stages)]


def teacher_at(entry: Path, epoch: int, members: int, final_epoch: int, final: dict) -> dict:
  """Host variables {"params", "batch_stats"} of the first ``members`` members at ``epoch``."""
  if epoch == final_epoch:
    return ensemble.take_members(final, members)
  _, tree = checkpoints.read_host(Path(entry) / "ckpt", epoch)
  got = {"params": tree["params"], "batch_stats": tree.get("batch_stats", {}) or {}}
  return ensemble.take_members(got, members)


def stored_epochs(entry: Path) -> int:
  """The number of epochs the stored teacher trained (its config.json)."""
  return int(json.loads((Path(entry) / "config.json").read_text())["epochs"])


# ---------------------------------------------------------------- second-order polish

def polish_section(d: ConfigDict) -> ConfigDict:
  """The distill section the polish phase runs: the same loss and data, its own optimizer and
  epochs, starting at full learning rate (no interpolated-init scaling)."""
  p = ConfigDict(d.to_dict())
  p.optim = ConfigDict(d.polish.optim.to_dict())
  p.epochs = int(d.polish.epochs)
  return p


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stretch of student training against one teacher: epochs up to ``end``."""
  end: int
  teacher_epoch: int
  teacher_vars: Any
