"""SN-GAN: spectral norm against numpy's SVD, hinge losses against their closed forms, shapes,
and exact resumption of a stored GAN training."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from tiny import small_gan_config, small_gan_images, tiny_gan_config
from kd_jax.core import checkpoints
from kd_jax.core.cache import CHEAP_COMPILE
from kd_jax.train import gan_steps
from kd_jax.runner import gans
from kd_jax.models.sngan import Discriminator, Generator, conv, dense, sn, sngan

# The models' initializers compile slowly with XLA's full optimization (Discriminator.init:
# ~10 s on 2 cores, ~1 s without); kd_jax compiles its own inits so too
# (gan_steps._init_variables). What these tests check does not depend on how a function is
# optimized.
_jit_o0 = functools.partial(jax.jit, compiler_options=CHEAP_COMPILE)


class _TwoLayers(nn.Module):
  """A spectrally normalized 3×3 conv and Dense, wrapped as the discriminator wraps its layers."""

  @nn.compact
  def __call__(self, x, train: bool):
    h = sn(conv(8, 3, x.shape[-1]), x, train)
    return sn(dense(4, 8), h.mean(axis=(1, 2)), train)


def test_spectral_norm_sigma_matches_svd_after_power_iterations():
  m = _TwoLayers()
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  v = _jit_o0(lambda k: m.init(k, x, train=False))(jax.random.key(1))
  step = lambda _, s: m.apply({"params": v["params"], "batch_stats": s}, x, train=True,
                              mutable=["batch_stats"])[1]["batch_stats"]
  # one power iteration per training forward
  stats = _jit_o0(lambda s: jax.lax.fori_loop(0, 60, step, s))(v["batch_stats"])
  for i, layer in enumerate(("Conv_0", "Dense_0")):
    kernel = np.asarray(v["params"][layer]["kernel"])
    w = kernel.reshape(-1, kernel.shape[-1])        # HWIO → (H·W·I, O)
    sigma = float(stats[f"SpectralNorm_{i}"][f"{layer}/kernel/sigma"])
    np.testing.assert_allclose(sigma, np.linalg.svd(w, compute_uv=False)[0], rtol=1e-3)
    # the kernel the layer uses, W/σ, has top singular value 1
    np.testing.assert_allclose(np.linalg.svd(w / sigma, compute_uv=False)[0], 1.0, rtol=1e-3)


def test_discriminator_normalizes_every_layer():
  d = Discriminator(k=8)
  v = jax.eval_shape(lambda: d.init(jax.random.key(1), jnp.zeros((1, 32, 32, 3)), train=False))
  sigmas = [p for p, _ in jax.tree_util.tree_flatten_with_path(v["batch_stats"])[0]
            if jax.tree_util.keystr(p).endswith("/sigma']")]
  kernels = [p for p, _ in jax.tree_util.tree_flatten_with_path(v["params"])[0]
             if jax.tree_util.keystr(p).endswith("['kernel']")]
  # 3 + 2 + 2 + 2 convs (only the first block has a 1×1 bypass) and the Dense: all normalized
  assert len(kernels) == len(sigmas) == 10


def test_spectral_norm_layer_output_uses_normalized_kernel():
  layer = nn.SpectralNorm(nn.Dense(6, use_bias=False), n_steps=100)
  eye = jnp.eye(4)
  v = layer.init(jax.random.key(0), eye, update_stats=False)
  out, _ = layer.apply(v, eye, update_stats=True, mutable=["batch_stats"])  # = W / σ
  w = np.asarray(v["params"]["layer_instance"]["kernel"])
  np.testing.assert_allclose(np.asarray(out), w / np.linalg.svd(w, compute_uv=False)[0],
                             rtol=1e-4, atol=1e-6)


def test_u_vector_is_state_and_updates_only_in_training():
  d = Discriminator(k=8)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  v = _jit_o0(lambda k: d.init(k, x, train=False))(jax.random.key(1))
  flat_params = jax.tree_util.tree_flatten_with_path(v["params"])[0]
  assert not any("/u" in jax.tree_util.keystr(p) for p, _ in flat_params)
  assert any(k.endswith("/u") for k in v["batch_stats"]["DiscBlock_0"]["SpectralNorm_0"])
  run = _jit_o0(lambda v, train: d.apply(v, x, train=train, mutable=["batch_stats"])[1],
                 static_argnums=1)
  ev, tr = run(v, False), run(v, True)
  same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), v["batch_stats"],
                      ev["batch_stats"])
  assert all(jax.tree.leaves(same))
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), v["batch_stats"],
                         tr["batch_stats"])
  assert any(jax.tree.leaves(changed))


def test_hinge_losses_closed_form():
  real = jnp.array([2.0, 0.5, -1.0])
  fake = jnp.array([-2.0, 0.0, 1.5])
  # real: max(0, 1 − r) = 0, 0.5, 2; fake: max(0, 1 + f) = 0, 1, 2.5
  np.testing.assert_allclose(gan_steps.disc_hinge(real, fake), 2.5 / 3 + 3.5 / 3, rtol=1e-6)
  np.testing.assert_allclose(gan_steps.gen_hinge(jnp.array([1.0, 2.0, 3.0])), -2.0, rtol=1e-6)


def test_generator_range_and_shapes():
  g, d = sngan(z_dim=16, gen_width=8, disc_width=8)
  z = 5.0 * jax.random.normal(jax.random.key(0), (3, 16))  # large z: saturate the tanh
  vg = _jit_o0(lambda k: g.init(k, z, train=False))(jax.random.key(1))
  x, _ = jax.jit(lambda v: g.apply(v, z, train=True, mutable=["batch_stats"]))(vg)
  assert x.shape == (3, 32, 32, 3)
  assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
  logits = jax.eval_shape(lambda: d.apply(d.init(jax.random.key(2), x, train=False), x,
                                          train=False))
  assert logits.shape == (3,)
  assert isinstance(g, Generator)
  # no spectral norm (no u vectors) in the generator: its state is BatchNorm only
  assert all(k.startswith(("BatchNorm", "GenBlock")) for k in vg["batch_stats"])


def _tiny_config(store, gen_steps=2) -> ConfigDict:
  return tiny_gan_config(store, gen_steps=gen_steps)


def _get_gan(c: ConfigDict, workdir, images):
  """The GAN of config ``c``, as a run gets it."""
  return gans.get_gan(c.gan, gans.gan_key(c.gan, c.data), workdir, images,
                      tensorboard=c.run.tensorboard)


def _final(gan):
  return jax.tree.leaves(gan.variables)


def _small_config(store) -> ConfigDict:
  """The SN-GAN's own blocks at 8×8 (tests/tiny.py): what training, checkpoints and resume do
  does not depend on the 32×32 network's depth, and it compiles in a fraction of the time."""
  c = small_gan_config(store, gen_steps=2)
  with c.unlocked():
    c.gan.eval_every = 2
  return c


def test_gan_training_resumes_exactly(tmp_path, monkeypatch):
  images = small_gan_images()
  straight = _get_gan(_small_config(tmp_path / "a"), tmp_path, images)
  assert (straight.entry / "gan.json").exists()
  assert [p.name for p in (straight.entry / "samples").iterdir()] == ["step0000002.png"]

  original = checkpoints.Checkpointer.save

  def save_then_die(self, step, tree):
    original(self, step, tree)
    raise KeyboardInterrupt  # killed right after the first checkpoint

  monkeypatch.setattr(checkpoints.Checkpointer, "save", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    _get_gan(_small_config(tmp_path / "b"), tmp_path, images)
  monkeypatch.setattr(checkpoints.Checkpointer, "save", original)
  resumed = _get_gan(_small_config(tmp_path / "b"), tmp_path, images)
  assert resumed.trained_now
  for a, b in zip(_final(straight), _final(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # and the store is reused, not retrained
  again = _get_gan(_small_config(tmp_path / "b"), tmp_path, images)
  assert not again.trained_now


def test_gan_key_ignores_reporting_knobs_not_recipe(tmp_path):
  a, b = _tiny_config(tmp_path), _tiny_config(tmp_path)
  b.gan.eval_every = 7
  b.gan.store = "elsewhere"
  assert gans.gan_key(a.gan, a.data) == gans.gan_key(b.gan, b.data)
  b.gan.lr = 1e-3
  assert gans.gan_key(a.gan, a.data) != gans.gan_key(b.gan, b.data)
  b = _tiny_config(tmp_path)
  b.teacher.epochs = 3          # the teacher's recipe is not the GAN's identity …
  assert gans.gan_key(a.gan, a.data) == gans.gan_key(b.gan, b.data)
  b.data.teacher_subset = 100   # … its data is
  assert gans.gan_key(a.gan, a.data) != gans.gan_key(b.gan, b.data)
