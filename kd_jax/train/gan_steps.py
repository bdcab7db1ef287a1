"""Pure SN-GAN training steps: hinge losses, one generator update + ``disc_steps`` discriminator
updates, fused over several generator updates in a ``lax.scan``.

As the official trainer (gnosis/boilerplate/gan_epoch.py): of every ``disc_steps`` minibatches
of real images the first also makes a generator update (before its discriminator update), and
both Adam learning rates follow the generator update count. The generator's BatchNorm runs in
train mode whenever it samples (batch statistics; running averages updated); the
discriminator's spectral-norm ``u`` vectors advance once per discriminator forward in training
(real and fake rows go through it together: it has no BatchNorm, so this equals two calls).

Every random draw is a pure function of (seed, generator update, minibatch), and the real
images of minibatch t are slice t of a per-epoch permutation, so a run resumed from a
checkpoint ends with the same parameters as one straight through.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from kd_jax.core.cache import CHEAP_COMPILE

Array = jax.Array
#: Key streams of a GAN run (distinct purposes never share a draw).
NOISE, DATA, FLIP = 1, 2, 3


@flax.struct.dataclass
class GanState:
  step: Array           # generator updates done
  gen_params: Any
  gen_stats: Any        # BatchNorm running statistics
  disc_params: Any
  disc_stats: Any       # spectral-norm power-iteration vectors (u) and σ
  gen_opt: Any
  disc_opt: Any


@dataclasses.dataclass(frozen=True)
class GanSpec:
  """Static description of a GAN step (hashable: jit compiles once per spec)."""
  generator: Any
  discriminator: Any
  gen_tx: optax.GradientTransformation
  disc_tx: optax.GradientTransformation
  batch_size: int
  disc_steps: int
  z_dim: int
  hflip: bool
  num_real: int         # size of the real image set (for the per-epoch permutation)


def disc_hinge(real_logits: Array, fake_logits: Array) -> Array:
  """E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]."""
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def gen_hinge(fake_logits: Array) -> Array:
  """−E[D(G(z))]."""
  return -jnp.mean(fake_logits)


@functools.lru_cache(maxsize=16)
def make_optimizers(lr: float, lr_min: float, b1: float, b2: float, gen_steps: int,
                    disc_steps: int) -> tuple[optax.GradientTransformation, ...]:
  """Adam(β = (b1, b2)) for both networks; lr linear lr → lr_min over the generator updates
  (the discriminator's schedule counts its own updates ÷ disc_steps). Cached: equal recipes
  give equal GanSpecs, so a resumed run in the same process reuses the compiled step."""
  sched = optax.linear_schedule(lr, lr_min, max(1, gen_steps))
  gen = optax.adam(sched, b1=b1, b2=b2)
  disc = optax.adam(lambda c: sched(c // disc_steps), b1=b1, b2=b2)
  return gen, disc


def sample(generator: Any, params: Any, stats: Any, key: Array, n: int,
           z_dim: int) -> tuple[Array, Any]:
  """``n`` samples in [−1, 1] (train-mode BatchNorm, as the official sampler) and the updated
  running statistics."""
  z = jax.random.normal(key, (n, z_dim), jnp.float32)
  x, mut = generator.apply({"params": params, "batch_stats": stats}, z, train=True,
                           mutable=["batch_stats"])
  return x, mut["batch_stats"]


def real_batch(data: Array, t: Array, seed: Array, spec: GanSpec) -> Array:
  """Minibatch ``t`` of the real uint8 images in [−1, 1]: slice t of its epoch's permutation
  (the last slice of an epoch wraps around), each image flipped with probability ½."""
  n, b = spec.num_real, spec.batch_size
  per_epoch = -(-n // b)
  base = jax.random.key(seed)
  perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(base, DATA), t // per_epoch),
                                n)
  idx = perm[((t % per_epoch) * b + jnp.arange(b)) % n]
  x = data[idx].astype(jnp.float32) / 127.5 - 1.0
  if spec.hflip:
    flip = jax.random.bernoulli(jax.random.fold_in(jax.random.fold_in(base, FLIP), t), 0.5, (b,))
    x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
  return x


def _disc_update(state: GanState, data: Array, t: Array, seed: Array, spec: GanSpec):
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), NOISE), 2 * t + 1)
  fake, gen_stats = sample(spec.generator, state.gen_params, state.gen_stats, key,
                           spec.batch_size, spec.z_dim)
  fake = lax.stop_gradient(fake)
  both = jnp.concatenate([real_batch(data, t, seed, spec), fake])

  def loss_fn(p):
    logits, mut = spec.discriminator.apply({"params": p, "batch_stats": state.disc_stats}, both,
                                           train=True, mutable=["batch_stats"])
    b = spec.batch_size
    return disc_hinge(logits[:b], logits[b:]), mut["batch_stats"]

  (loss, disc_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.disc_params)
  updates, disc_opt = spec.disc_tx.update(grads, state.disc_opt, state.disc_params)
  return state.replace(disc_params=optax.apply_updates(state.disc_params, updates),
                       disc_stats=disc_stats, disc_opt=disc_opt, gen_stats=gen_stats), loss


def _gen_update(state: GanState, t: Array, seed: Array, spec: GanSpec):
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), NOISE), 2 * t)

  def loss_fn(p):
    fake, gen_stats = sample(spec.generator, p, state.gen_stats, key, spec.batch_size,
                             spec.z_dim)
    logits, mut = spec.discriminator.apply({"params": state.disc_params,
                                            "batch_stats": state.disc_stats}, fake,
                                           train=True, mutable=["batch_stats"])
    return gen_hinge(logits), (gen_stats, mut["batch_stats"])

  (loss, (gen_stats, disc_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.gen_params)
  updates, gen_opt = spec.gen_tx.update(grads, state.gen_opt, state.gen_params)
  return state.replace(gen_params=optax.apply_updates(state.gen_params, updates),
                       gen_stats=gen_stats, disc_stats=disc_stats, gen_opt=gen_opt), loss


def gan_step(state: GanState, data: Array, seed: Array, spec: GanSpec):
  """One generator update, then ``disc_steps`` discriminator updates (minibatches
  t = step·disc_steps + i). Returns the state and (generator loss, mean discriminator loss)."""
  t0 = state.step * spec.disc_steps
  state, g_loss = _gen_update(state, t0, seed, spec)

  def disc(s, i):
    return _disc_update(s, data, t0 + i, seed, spec)

  state, d_losses = lax.scan(disc, state, jnp.arange(spec.disc_steps))
  return state.replace(step=state.step + 1), (g_loss, d_losses.mean())


@functools.partial(jax.jit, static_argnames=("spec", "num"), donate_argnums=(0,))
def gan_chunk(state: GanState, data: Array, seed: Array, *, spec: GanSpec, num: int):
  """``num`` consecutive GAN steps; returns the state and their summed losses."""
  state, (g, d) = lax.scan(lambda s, _: gan_step(s, data, seed, spec), state, None, length=num)
  return state, {"gen_loss_sum": g.sum(), "disc_loss_sum": d.sum()}


@functools.partial(jax.jit, static_argnames=("spec", "image_shape"),
                   compiler_options=CHEAP_COMPILE)
def _init_variables(key: Array, spec: GanSpec, image_shape: tuple[int, ...]) -> tuple[dict, dict]:
  """Runs once per run: compiled cheaply (as modeling.init_variables does), cached per spec."""
  kg, kd = jax.random.split(key)
  g = spec.generator.init(kg, jnp.zeros((2, spec.z_dim)), train=False)
  d = spec.discriminator.init(kd, jnp.zeros((2,) + image_shape), train=False)
  return g, d


def init_state(spec: GanSpec, seed: int, image_shape: tuple[int, ...]) -> GanState:
  """Fresh generator/discriminator variables and optimizer states from ``seed``."""
  g, d = _init_variables(jax.random.fold_in(jax.random.key(seed), 0), spec, tuple(image_shape))
  return GanState(step=jnp.int32(0), gen_params=g["params"], gen_stats=g["batch_stats"],
                  disc_params=d["params"], disc_stats=d["batch_stats"],
                  gen_opt=spec.gen_tx.init(g["params"]), disc_opt=spec.disc_tx.init(d["params"]))
