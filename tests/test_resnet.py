"""ResNet-50 (ImageNet): parameter count, shapes, v1.5 stride placement, init, dtypes.

The count is checked twice: against torchvision's published 25,557,032 and against a count
written here from the architecture description (so a wrong layer cannot hide behind a number).
Shapes come from ``jax.eval_shape`` (no 25M-parameter init on the test CPU).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.core.errors import ConfigError
from kd_jax.models import get_model
from kd_jax.models.init import he_fan_out_normal
from kd_jax.models.resnet import Bottleneck


def _count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _described_count(classes: int) -> int:
  """Convs (no bias) + BN (scale, bias) + dense, from the layer list of the ResNet-50 paper."""
  total = 7 * 7 * 3 * 64 + 2 * 64                      # stem conv + BN
  cin = 64
  for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
    for b in range(blocks):
      out = 4 * planes
      total += cin * planes + 2 * planes                # 1x1
      total += 9 * planes * planes + 2 * planes         # 3x3
      total += planes * out + 2 * out                   # 1x1 expand
      if b == 0:
        total += cin * out + 2 * out                    # projection + BN
      cin = out
  return total + cin * classes + classes


def _shapes(model, size=224, batch=2):
  x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  return jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape), train=False))


def test_resnet50_parameter_count_is_torchvisions():
  variables = _shapes(get_model("resnet50", 1000))
  assert _count(variables["params"]) == 25_557_032 == _described_count(1000)
  # Running mean and variance of every BN channel: 53 BN layers.
  assert _count(variables["batch_stats"]) == 2 * (_described_count(1000) - 2048 * 1000 - 1000
                                                  - _conv_params()) // 2


def _conv_params() -> int:
  """Conv weights alone (so BN entries = params − convs − head)."""
  total, cin = 7 * 7 * 3 * 64, 64
  for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
    for b in range(blocks):
      out = 4 * planes
      total += cin * planes + 9 * planes * planes + planes * out + (cin * out if b == 0 else 0)
      cin = out
  return total


def test_resnet50_output_and_stage_shapes():
  model = get_model("resnet50", 1000)
  variables = _shapes(model)
  x = jnp.zeros((2, 224, 224, 3))
  logits, feats = jax.eval_shape(
      lambda v: model.apply(v, x, train=False, return_features=True), variables)
  assert logits.shape == (2, 1000) and logits.dtype == jnp.float32
  assert [f.shape for f in feats] == [(2, 56, 56, 256), (2, 28, 28, 512), (2, 14, 14, 1024),
                                      (2, 7, 7, 2048)]


def test_v1_5_puts_the_stride_on_the_3x3_conv():
  model = get_model("resnet50", 10, width=0.125)
  x = jnp.zeros((1, 64, 64, 3))
  variables = _shapes(model, 64, 1)
  _, inter = jax.eval_shape(
      lambda v: model.apply(v, x, train=False, capture_intermediates=True), variables)
  block = inter["intermediates"]["stage2_block1"]
  assert block["conv1"]["__call__"][0].shape[1:3] == (16, 16)   # 1x1 keeps the resolution
  assert block["conv2"]["__call__"][0].shape[1:3] == (8, 8)     # the 3x3 halves it


def _block(zero: bool):
  conv = functools.partial(nn.Conv, use_bias=False, padding=0, kernel_init=he_fan_out_normal)
  norm = functools.partial(nn.BatchNorm, use_running_average=True)
  block = Bottleneck(planes=8, stride=2, conv=conv, norm=norm, zero_init_residual=zero)
  return block.init(jax.random.key(0), jnp.ones((1, 8, 8, 16)))["params"]


def test_zero_init_residual_zeroes_only_the_last_bn_scale():
  plain, zero = _block(False), _block(True)
  assert not np.any(np.asarray(zero["bn3"]["scale"]))
  for p in (plain, zero):
    for bn in ("bn1", "bn2", "proj_bn"):
      assert np.all(np.asarray(p[bn]["scale"]) == 1) and not np.any(np.asarray(p[bn]["bias"]))
  assert np.all(np.asarray(plain["bn3"]["scale"]) == 1)
  # He fan-out normal: std √(2 / (k·k·out)) on the 1x1 expand conv (fan-out 32).
  kernel = np.asarray(plain["conv3"]["kernel"])
  assert kernel.std() == pytest.approx(np.sqrt(2 / 32), rel=0.15)


def test_bfloat16_computes_with_float32_parameters_and_statistics():
  x = jnp.ones((2, 32, 32, 3))
  bf16 = get_model("resnet50", 10, width=0.125, dtype=jnp.bfloat16)
  v = _shapes(bf16, 32, 2)
  assert {a.dtype for a in jax.tree.leaves(v)} == {jnp.dtype(jnp.float32)}
  out, mut = jax.eval_shape(lambda v: bf16.apply(v, x, train=True, mutable=["batch_stats"]), v)
  assert out.dtype == jnp.float32
  assert {a.dtype for a in jax.tree.leaves(mut)} == {jnp.dtype(jnp.float32)}
  _, inter = jax.eval_shape(
      lambda v: bf16.apply(v, x, train=False, capture_intermediates=True), v)
  assert inter["intermediates"]["stage1_block1"]["conv1"]["__call__"][0].dtype == jnp.bfloat16


def test_bad_depth_and_width_are_config_errors():
  with pytest.raises(ConfigError, match="model.depth=34"):
    get_model("resnet", 10, depth=34)
  with pytest.raises(ConfigError, match="model.width"):
    get_model("resnet50", 10, width=0)
