"""CIFAR models (PreResNet, VGG): shapes, parameter counts, numpy forward references, init, fitting."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kd_jax.errors import ConfigError
from kd_jax.models import get_model

NUM_CLASSES = 10


def _shapes(model, batch=2, hw=32):
  """Variable and output shapes without running the (possibly deep) model."""
  x = jax.ShapeDtypeStruct((batch, hw, hw, 3), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, return_features=True), variables, x)
  return variables, out


def _size(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _images(n=8, hw=32, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, hw, hw, 3)).astype(np.float32)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("name, channels", [
    ("preresnet20", (16, 32, 64)),
    ("preresnet56", (64, 128, 256)),  # bottleneck: 4 × (16, 32, 64)
    ("preresnet110", (64, 128, 256)),
])
def test_preresnet_shapes(name, channels):
  logits, feats = _shapes(get_model(name, NUM_CLASSES))[1]
  assert logits.shape == (2, NUM_CLASSES) and logits.dtype == jnp.float32
  assert [f.shape for f in feats] == [(2, 32, 32, channels[0]), (2, 16, 16, channels[1]),
                                      (2, 8, 8, channels[2])]


def test_vgg16_shapes():
  variables, (logits, feats) = _shapes(get_model("vgg16", NUM_CLASSES))
  assert logits.shape == (2, NUM_CLASSES)
  assert [f.shape for f in feats] == [(2, 4, 4, 256), (2, 2, 2, 512), (2, 1, 1, 512)]
  assert set(variables) == {"params"}


def test_vgg_accepts_mnist_sized_inputs():
  logits, feats = _shapes(get_model("vgg16", NUM_CLASSES, width=0.125), hw=28)[1]
  assert logits.shape == (2, NUM_CLASSES)
  assert feats[-1].shape == (2, 1, 1, 64)


# ----------------------------------------------------------------------------- parameter counts


def _preresnet_count(depth: int, classes: int) -> tuple[int, int]:
  """(params, batch-stat entries) of a PreResNet, counted from the architecture description."""
  conv = lambda k, cin, cout: k * k * cin * cout
  bottleneck = depth >= 44
  n = (depth - 2) // (9 if bottleneck else 6)
  params = conv(3, 3, 16)
  norm_channels = 0
  cin = 16
  for stage, w in enumerate((16, 32, 64)):
    for b in range(n):
      stride = 2 if (stage > 0 and b == 0) else 1
      if bottleneck:
        cout = 4 * w
        params += conv(1, cin, w) + conv(3, w, w) + conv(1, w, cout)
        norm_channels += cin + w + w
      else:
        cout = w
        params += conv(3, cin, w) + conv(3, w, w)
        norm_channels += cin + w
      if stride != 1 or cin != cout:
        params += conv(1, cin, cout)
      cin = cout
  norm_channels += cin  # final norm
  params += 2 * norm_channels + cin * classes + classes
  return params, 2 * norm_channels


@pytest.mark.parametrize("name, depth", [("preresnet20", 20), ("preresnet56", 56)])
def test_preresnet_param_counts(name, depth):
  variables = _shapes(get_model(name, 100))[0]
  params, stats = _preresnet_count(depth, 100)
  assert _size(variables["params"]) == params
  assert _size(variables["batch_stats"]) == stats


def test_preresnet_known_sizes():
  # Sanity of the formula itself: ResNet-56 (bottleneck, CIFAR-100) is ~0.61M parameters,
  # ResNet-20 ~0.28M.
  assert _preresnet_count(20, 100)[0] == 278_132
  assert _preresnet_count(56, 100)[0] == 613_556


def test_vgg16_param_count():
  cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
  cin, expected = 3, 0
  for c in cfg:
    expected += 9 * cin * c + c
    cin = c
  expected += 512 * 512 + 512 + 512 * 512 + 512 + 512 * 100 + 100
  assert _size(_shapes(get_model("vgg16", 100))[0]["params"]) == expected


# ----------------------------------------------------------------------------- numpy references


def _np_conv(x, kernel, stride=1, pad=0, bias=None):
  k = kernel.shape[0]
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  ho = (x.shape[1] + 2 * pad - k) // stride + 1
  wo = (x.shape[2] + 2 * pad - k) // stride + 1
  out = np.zeros((x.shape[0], ho, wo, kernel.shape[-1]), np.float64)
  for i in range(k):
    for j in range(k):
      out += xp[:, i:i + stride * ho:stride, j:j + stride * wo:stride, :] @ kernel[i, j]
  return out if bias is None else out + bias


def _np_layernorm(x, p, eps=1e-5):
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  var = x.var(axis=(1, 2, 3), keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _np_preresnet_ln(params, x, depth):
  """Pre-activation ResNet with one-group GroupNorm, written from the paper's description."""
  relu = lambda v: np.maximum(v, 0)
  bottleneck = depth >= 44
  n = (depth - 2) // (9 if bottleneck else 6)
  y = _np_conv(x, params["stem"]["kernel"], pad=1)
  feats = []
  for s in range(3):
    for b in range(n):
      p = params[f"stage{s + 1}_block{b + 1}"]
      stride = 2 if (s > 0 and b == 0) else 1
      pre = relu(_np_layernorm(y, p["norm1"]))
      if bottleneck:
        h = _np_conv(pre, p["conv1"]["kernel"])
        h = _np_conv(relu(_np_layernorm(h, p["norm2"])), p["conv2"]["kernel"], stride, 1)
        h = _np_conv(relu(_np_layernorm(h, p["norm3"])), p["conv3"]["kernel"])
      else:
        h = _np_conv(pre, p["conv1"]["kernel"], stride, 1)
        h = _np_conv(relu(_np_layernorm(h, p["norm2"])), p["conv2"]["kernel"], 1, 1)
      shortcut = _np_conv(pre, p["proj"]["kernel"], stride) if "proj" in p else y
      y = h + shortcut
    feats.append(y)
  y = relu(_np_layernorm(y, params["final_norm"])).mean(axis=(1, 2))
  return y @ params["head"]["kernel"] + params["head"]["bias"], feats


@pytest.mark.parametrize("depth", [8, 47])
def test_preresnet_layernorm_matches_numpy(depth):
  model = get_model("preresnet", NUM_CLASSES, depth=depth, norm="layer", width=0.25)
  x = _images(2, hw=8)
  variables = model.init(jax.random.key(1), x)
  # Random norm affine parameters so that scale/bias placement is checked too.
  leaves, treedef = jax.tree.flatten(variables["params"])
  keys = jax.random.split(jax.random.key(2), len(leaves))
  leaves = [l + 0.1 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
  params = jax.tree.unflatten(treedef, leaves)
  logits, feats = model.apply({"params": params}, x, return_features=True)
  np_params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  ref_logits, ref_feats = _np_preresnet_ln(np_params, x.astype(np.float64), depth)
  np.testing.assert_allclose(logits, ref_logits, rtol=1e-3, atol=1e-3)
  for f, r in zip(feats, ref_feats):
    np.testing.assert_allclose(f, r, rtol=1e-3, atol=1e-3)


def test_vgg_eval_matches_numpy():
  model = get_model("vgg16", NUM_CLASSES, width=0.0625)
  x = _images(2, hw=32)
  variables = model.init(jax.random.key(3), x)
  logits, feats = model.apply(variables, x, return_features=True)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"])
  y = x.astype(np.float64)
  ref_feats, conv_i, pools = [], 0, 0
  for item in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
               512, 512, 512, "M"]:
    if item == "M":
      b, h, w, c = y.shape
      y = y.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
      pools += 1
      if pools >= 3:
        ref_feats.append(y)
    else:
      conv_i += 1
      q = p[f"conv{conv_i}"]
      assert q["kernel"].shape[-1] == item // 16
      y = np.maximum(_np_conv(y, q["kernel"], 1, 1, q["bias"]), 0)
  y = y.reshape(y.shape[0], -1)
  y = np.maximum(y @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0)
  y = np.maximum(y @ p["fc2"]["kernel"] + p["fc2"]["bias"], 0)
  y = y @ p["head"]["kernel"] + p["head"]["bias"]
  np.testing.assert_allclose(logits, y, rtol=1e-3, atol=1e-4)
  for f, r in zip(feats, ref_feats):
    np.testing.assert_allclose(f, r, rtol=1e-3, atol=1e-4)


# ----------------------------------------------------------------------------- norms and state


def test_layernorm_variant_has_no_batch_stats():
  for model in (get_model("resnet20_ln", NUM_CLASSES, width=0.25),
                get_model("preresnet", NUM_CLASSES, depth=8, norm="layer", width=0.25)):
    variables = model.init(jax.random.key(0), _images(2, hw=8))
    assert set(variables) == {"params"}


def test_batchnorm_stats_update_only_in_train_mode():
  model = get_model("preresnet", NUM_CLASSES, depth=8, width=0.25)
  x = _images(4, hw=8)
  variables = model.init(jax.random.key(0), x)
  old = variables["batch_stats"]
  _, upd = model.apply(variables, x, train=True, mutable=["batch_stats"])
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         old, upd["batch_stats"])
  assert all(jax.tree.leaves(changed))
  # Momentum 0.9 from mean 0: the first norm's running mean becomes 0.1 × batch mean of the
  # stem output (computed in numpy).
  stem = _np_conv(x.astype(np.float64), np.asarray(variables["params"]["stem"]["kernel"]), 1, 1)
  np.testing.assert_allclose(upd["batch_stats"]["stage1_block1"]["norm1"]["mean"],
                             0.1 * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["stage1_block1"]["norm1"]["var"],
                             0.9 + 0.1 * stem.var(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
  _, same = model.apply(variables, x, train=False, mutable=["batch_stats"])
  jax.tree.map(np.testing.assert_array_equal, old, same["batch_stats"])


def test_bn_axis_name_averages_statistics_across_shards():
  x = _images(8, hw=8)
  full = get_model("preresnet", NUM_CLASSES, depth=8, width=0.25)
  sharded = get_model("preresnet", NUM_CLASSES, depth=8, width=0.25, bn_axis_name="data")
  variables = full.init(jax.random.key(0), x)
  logits, upd = full.apply(variables, x, train=True, mutable=["batch_stats"])
  apply = jax.vmap(lambda v, xs: sharded.apply(v, xs, train=True, mutable=["batch_stats"]),
                   in_axes=(None, 0), axis_name="data")
  s_logits, s_upd = apply(variables, x.reshape(4, 2, 8, 8, 3))
  np.testing.assert_allclose(s_logits.reshape(8, -1), logits, rtol=1e-4, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-4, atol=1e-6),
               s_upd["batch_stats"], upd["batch_stats"])


# ----------------------------------------------------------------------------- init


def test_conv_kernel_init_is_he_fan_out_normal():
  for name in ("preresnet20", "vgg16"):
    model = get_model(name, NUM_CLASSES)
    params = model.init(jax.random.key(0), _images(1, hw=32 if name == "vgg16" else 8))["params"]
    checked = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
      names = [p.key for p in path]
      if names[-1] != "kernel" or leaf.ndim != 4 or leaf.size < 4096:
        continue
      k, _, _, cout = leaf.shape
      std = np.sqrt(2.0 / (k * k * cout))
      w = np.asarray(leaf, np.float64).ravel() / std
      assert abs(w.mean()) < 5 / np.sqrt(w.size), names
      assert abs(w.std() - 1) < 0.05, (names, w.std())
      # Untruncated normal: ≈4.55% of draws lie beyond 2 standard deviations.
      assert 0.03 < np.mean(np.abs(w) > 2) < 0.065, names
      checked += 1
    assert checked >= 5


def test_convs_have_no_bias_in_preresnet():
  params = _shapes(get_model("preresnet20", NUM_CLASSES))[0]["params"]
  for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [p.key for p in path]
    if names[-1] == "bias":
      assert "norm" in names[-2] or names[-2] == "head", names


# ----------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("name, kwargs, key", [
    ("preresnet", {"depth": 44}, "model.depth"),
    ("preresnet", {"depth": 21}, "model.depth"),
    ("preresnet", {"depth": 2}, "model.depth"),
    ("preresnet", {"norm": "instance"}, "model.norm"),
    ("preresnet", {"width": 0}, "model.width"),
    ("preresnet20", {"depth": 56}, "model.depth"),  # alias fixes depth: not an option
    ("vgg", {"depth": 11}, "model.depth"),
    ("vgg", {"dropout": 1.0}, "model.dropout"),
    ("vgg16", {"norm": "batch"}, "model.norm"),
    ("preresnet", {"blocks": 3}, "model.blocks"),
])
def test_bad_options_raise_config_error(name, kwargs, key):
  with pytest.raises(ConfigError, match=key):
    get_model(name, NUM_CLASSES, **kwargs)


def test_depth_error_lists_valid_forms():
  with pytest.raises(ConfigError, match=r"6n\+2.*9n\+2"):
    get_model("preresnet", NUM_CLASSES, depth=50)


# ----------------------------------------------------------------------------- dtype


def test_bfloat16_computation_keeps_float32_params_and_logits():
  x = _images(2, hw=8)
  m32 = get_model("preresnet", NUM_CLASSES, depth=8, width=0.25)
  m16 = get_model("preresnet", NUM_CLASSES, depth=8, width=0.25, dtype=jnp.bfloat16)
  variables = m16.init(jax.random.key(0), x)
  assert all(l.dtype == jnp.float32 for l in jax.tree.leaves(variables))
  logits, feats = m16.apply(variables, x, return_features=True)
  assert logits.dtype == jnp.float32 and all(f.dtype == jnp.float32 for f in feats)
  ref = m32.apply(variables, x)
  scale = float(np.abs(ref).max())
  np.testing.assert_allclose(logits, ref, atol=0.05 * scale + 1e-3)


# ----------------------------------------------------------------------------- dropout


def test_vgg_dropout_only_in_train_mode():
  model = get_model("vgg16", NUM_CLASSES, width=0.0625)
  x = _images(2)
  variables = model.init(jax.random.key(0), x)
  train = lambda seed: model.apply(variables, x, train=True,
                                   rngs={"dropout": jax.random.key(seed)})
  assert not np.allclose(train(1), train(2))
  np.testing.assert_array_equal(train(1), train(1))
  ev = lambda seed: model.apply(variables, x, train=False, rngs={"dropout": jax.random.key(seed)})
  np.testing.assert_array_equal(ev(1), ev(2))
  np.testing.assert_array_equal(ev(1), model.apply(variables, x))


# ----------------------------------------------------------------------------- fitting


def _fit(model, x, y, steps, lr):
  """Adam on one fixed batch; returns (initial, final) train-mode cross-entropy."""
  variables = model.init(jax.random.key(0), x)
  params = variables["params"]
  stats = variables.get("batch_stats")
  tx = optax.adam(lr)
  opt = tx.init(params)
  onehot = np.eye(NUM_CLASSES)[y]

  def loss_fn(params, stats, rng):
    v = {"params": params} if stats is None else {"params": params, "batch_stats": stats}
    if stats is None:
      logits = model.apply(v, x, train=True, rngs={"dropout": rng})
    else:
      logits, upd = model.apply(v, x, train=True, mutable=["batch_stats"])
      stats = upd["batch_stats"]
    ce = -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), axis=-1))
    return ce, stats

  @jax.jit
  def step(params, stats, opt, rng):
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, rng)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), stats, opt, loss

  losses = []
  for i in range(steps):
    params, stats, opt, loss = step(params, stats, opt, jax.random.key(i))
    losses.append(float(loss))
  final = float(jax.jit(loss_fn)(params, stats, jax.random.key(steps))[0])
  return losses[0], final


@pytest.mark.parametrize("name, kwargs, lr", [
    ("preresnet", {"depth": 8, "width": 0.25, "norm": "batch"}, 3e-3),
    ("preresnet", {"depth": 8, "width": 0.25, "norm": "layer"}, 3e-3),
    ("vgg16", {"width": 0.125, "dropout": 0.0}, 1e-3),
])
def test_adam_fits_a_tiny_batch(name, kwargs, lr):
  x = _images(8, hw=16, seed=5)
  y = np.arange(8) % NUM_CLASSES
  initial, final = _fit(get_model(name, NUM_CLASSES, **kwargs), x, y, steps=40, lr=lr)
  assert initial > 1.5, initial  # ≈ ln(10) at init
  assert final < 0.1 * initial, (initial, final)
