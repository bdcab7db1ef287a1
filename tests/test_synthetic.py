"""Synthetic (GAN) rows in distillation batches: no hard label, their own τ, real rows per epoch
unchanged; the per-row loss against a numpy reference written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.core import parallel
from kd_jax.train import steps, synthetic
from kd_jax.config import base_config
from kd_jax.runner.validate import validate
from kd_jax.data import pipelines
from kd_jax.core.errors import ConfigError
from kd_jax.models.sngan import sngan


def _np_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _reference(student, teacher_lp, labels, real, taus, alpha):
  """α·CE (real, labelled rows only) + (1 − α)·τ²·(−Σ p_t^τ log p_s^τ), row by row."""
  out = []
  for s, t, y, r, tau in zip(student, teacher_lp, labels, real, taus):
    p_t = np.exp(_np_log_softmax(t / tau))
    soft = -tau * tau * np.sum(p_t * _np_log_softmax(s / tau))
    hard = -_np_log_softmax(s)[y] if (r and y >= 0) else 0.0
    out.append(alpha * hard + (1 - alpha) * soft)
  return np.array(out)


def _append(spec, gen_vars, x, labels):
  """append_rows on one device (an axis of size 1 named as the mesh's), jitted as in a step
  (one compilation instead of every op compiled eagerly)."""
  @jax.jit
  def run(gen_vars, x, labels):
    fn = lambda x, r, y, m: synthetic.append_rows(spec, gen_vars, jax.random.key(3), x, r, y, m,
                                                  4.0)
    n = x.shape[0]
    out = jax.vmap(fn, axis_name=parallel.AXIS)(
        x[None], jnp.ones((1, n), bool), labels[None], jnp.ones((1, n), bool))
    return jax.tree.map(lambda a: a[0], out)
  return run(gen_vars, x, labels)


def _random_generator_variables(g, seed=0):
  """Random generator weights drawn in numpy (He-scaled kernels, BatchNorm scale 1 and
  statistics 0/1, small biases) in the shapes of ``g``'s variables: ``eval_shape`` traces the
  init without compiling it (eager ``g.init`` compiles each initializer op by op, seconds on 2
  cores, for weights these checks do not depend on)."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if leaf.ndim >= 2:  # conv [kh, kw, in, out] or dense [in, out] kernel
      v = rng.normal(0.0, np.sqrt(2.0 / np.prod(leaf.shape[:-1])), leaf.shape)
    elif "scale" in name or "var" in name:
      v = np.ones(leaf.shape)
    elif "mean" in name:
      v = np.zeros(leaf.shape)
    else:
      v = 0.1 * rng.normal(size=leaf.shape)
    return jnp.asarray(v, leaf.dtype)

  shapes = jax.eval_shape(lambda k: g.init(k, jnp.zeros((2, 8)), train=False), jax.random.key(0))
  return jax.tree_util.tree_map_with_path(draw, shapes)


def test_synthetic_rows_have_no_label_and_their_own_temperature():
  g, _ = sngan(z_dim=8, gen_width=8, disc_width=8)
  gv = _random_generator_variables(g)
  spec = synthetic.SynthSpec(g, count=3, temperature=1.5, z_dim=8, normalize=lambda x: 2 * x - 1)
  x = jnp.zeros((4, 32, 32, 3))
  labels = jnp.array([0, 1, 2, 3])
  x2, real, y2, mask, taus = _append(spec, gv, x, labels)
  assert x2.shape == (7, 32, 32, 3)
  np.testing.assert_array_equal(real, [1, 1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(y2, [0, 1, 2, 3, -1, -1, -1])
  np.testing.assert_array_equal(mask, [1] * 7)
  np.testing.assert_allclose(taus, [4, 4, 4, 4, 1.5, 1.5, 1.5])
  assert float(jnp.abs(x2[4:]).max()) <= 1.0 and float(jnp.abs(x2[4:]).std()) > 0

  # the step's per-example loss on such rows, against the reference: hard term on real rows
  # only (even where a synthetic row would carry a label), soft term at each row's τ
  rng = np.random.RandomState(0)
  student = rng.randn(7, 5).astype(np.float32) * 2
  teacher = _np_log_softmax(rng.randn(7, 5) * 3).astype(np.float32)
  labels7 = np.array([0, 1, 2, 3, 4, 0, 1])
  step_spec = steps.StepSpec(apply_fn=None, tx=None, prepare=None, materialize=None,
                             objective="kd", temperature=4.0, alpha=0.3)
  got = steps.per_example_loss(step_spec, jnp.asarray(student), jnp.asarray(labels7),
                               real, jnp.asarray(teacher), taus)
  want = _reference(student, teacher, labels7, np.asarray(real), np.asarray(taus), 0.3)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def _config(ratio, batch=10):
  c = base_config()
  c.distill.batch_size = batch
  c.distill.synth_ratio = ratio
  return c


def test_real_rows_per_epoch_unchanged():
  size = 23
  for ratio, synth in ((0.0, 0), (0.2, 2), (1 / 3, 3), (0.5, 5)):
    c = _config(ratio)
    assert synthetic.synth_count(c.distill) == synth
    real_bs = synthetic.real_batch_size(c.distill)
    assert real_bs + synth == 10
    idx, mask = pipelines.epoch_plan(0, 1, 0, size, real_bs, stream=2)
    # every real row exactly once per epoch, whatever the share of GAN samples
    assert mask.sum() == size
    assert sorted(idx[mask].tolist()) == list(range(size))


def test_paper_ratios_give_the_paper_image_counts():
  # docs/paper.md Fig 1: +12.5k, 25k, 37.5k, 50k GAN images on a 50k-image epoch, batch 128
  for ratio, images in ((0.2, 12_500), (1 / 3, 25_000), (3 / 7, 37_500), (0.5, 50_000)):
    assert abs(ratio / (1 - ratio) * 50_000 - images) < 1e-6


def test_bad_synthetic_settings_are_config_errors():
  with pytest.raises(ConfigError, match="distill.synth_ratio"):
    validate(_config(1.0))
  with pytest.raises(ConfigError, match="under one"):
    validate(_config(0.05))
  c = _config(0.5)
  c.distill.synth_temp = 0.0
  with pytest.raises(ConfigError, match="synth_temp"):
    validate(c)
