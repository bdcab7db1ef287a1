"""Synthetic rows in distillation batches, as the official ``DistillLoader`` builds them.

With ``distill.synth_ratio = r`` and ``distill.batch_size = B`` every step trains on
``B − ⌊r·B⌋`` real rows from the distillation pipeline plus ``⌊r·B⌋`` fresh samples of the stored
SN-GAN (its generator function and variables, from the GAN store), drawn inside the step on the device (the generator's weights ride
with the teacher's; no sample crosses the host). An epoch still covers every real row once, so
it grows by ``⌊r·B⌋ / (B − ⌊r·B⌋)`` synthetic rows per real one: r = 0.2, 1/3, 3/7, 0.5 add
12.5k, 25k, 37.5k, 50k samples to a 50k-image epoch (docs/paper.md, Fig 1).

Synthetic rows have no label (−1, and ``is_real`` False: the hard-label term skips them), their
own temperature ``distill.synth_temp`` (official default 1.0), and no augmentation (the
official loader appends them after the real rows' transforms and MixUp). The generator samples
with train-mode BatchNorm, as the official sampler does (it is never put in eval mode).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
from ml_collections import ConfigDict

from kd_jax.train import gan_steps
from kd_jax.core import parallel
from kd_jax.core.errors import ConfigError

#: Key stream of the synthetic rows (kd_jax.train.steps uses 1, 2 and 7).
SYNTH_STREAM = 11
#: Seed of the fixed evaluation samples (``synth`` split), apart from every training draw.
EVAL_SEED = 1_000_003


@dataclasses.dataclass(frozen=True)
class SynthSpec:
  """Static part of the synthetic rows of a step (hashable, part of ``steps.StepSpec``)."""
  generator: Any
  count: int              # synthetic rows per device per step
  temperature: float      # distill.synth_temp
  z_dim: int
  normalize: Callable[[jax.Array], jax.Array]   # [0, 1] images → model inputs


def synth_count(distill: ConfigDict) -> int:
  """⌊r·B⌋ synthetic rows of a global batch (``distill`` = ``config.distill``), as the official
  loader rounds."""
  return int(float(distill.synth_ratio) * int(distill.batch_size))


def real_batch_size(distill: ConfigDict) -> int:
  return int(distill.batch_size) - synth_count(distill)


def check(distill: ConfigDict) -> None:
  """Values the synthetic rows need (``config.distill``); ConfigError naming the key otherwise."""
  d = distill
  r = float(d.synth_ratio)
  if not 0.0 <= r < 1.0:
    raise ConfigError(f"distill.synth_ratio={r} must be in [0, 1) (the GAN share of each batch; "
                      "0.2 = the paper's Fig 3 GAN arm)")
  if r > 0 and synth_count(d) < 1:
    raise ConfigError(f"distill.synth_ratio={r} × distill.batch_size={d.batch_size} is under one "
                      "synthetic row per batch; raise either")
  if not (float(d.synth_temp) > 0):
    raise ConfigError(f"distill.synth_temp={d.synth_temp} must be a float > 0 (official: 1.0)")


def make_spec(distill: ConfigDict, generator, z_dim: int, normalize, n_dev: int) -> SynthSpec:
  total = synth_count(distill)
  if total % n_dev:
    raise ConfigError(f"{total} synthetic rows per batch (distill.synth_ratio × batch_size) do "
                      f"not split over {n_dev} devices; pick a ratio giving a multiple of {n_dev}")
  return SynthSpec(generator, total // n_dev, float(distill.synth_temp), int(z_dim),
                   normalize)


def append_rows(spec: SynthSpec, gen_vars: dict, key: jax.Array, x: jax.Array,
                is_real: jax.Array, labels: jax.Array, mask: jax.Array,
                temperature: float) -> tuple[jax.Array, ...]:
  """The step's real rows followed by ``spec.count`` fresh samples of this device.

  Returns ``(x, is_real, labels, mask, temperatures)``: samples are unlabelled (−1), not real,
  counted (mask 1), at ``spec.temperature``; real rows keep ``temperature``.
  """
  key = jax.random.fold_in(jax.random.fold_in(key, SYNTH_STREAM), lax.axis_index(parallel.AXIS))
  fake, _ = gan_steps.sample(spec.generator, gen_vars["params"], gen_vars["batch_stats"], key,
                             spec.count, spec.z_dim)
  fake = spec.normalize((lax.stop_gradient(fake) + 1.0) / 2.0).astype(x.dtype)
  n = spec.count
  temps = jnp.concatenate([jnp.full(labels.shape, temperature, jnp.float32),
                           jnp.full((n,), spec.temperature, jnp.float32)])
  return (jnp.concatenate([x, fake]),
          jnp.concatenate([is_real, jnp.zeros((n,), bool)]),
          jnp.concatenate([labels, jnp.full((n,), -1, labels.dtype)]),
          jnp.concatenate([mask, jnp.ones((n,), mask.dtype)]),
          temps)
