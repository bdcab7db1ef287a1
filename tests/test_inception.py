"""The FID Inception: a conv unit, the pools and the resize against numpy written here, the
parameter count against torchvision's documented one, one-line errors for wrong weight files,
and (with torch installed) the whole network against a pytorch-fid-style PyTorch reference."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.runner import fid, inception_weights as W
from kd_jax.core.errors import ConfigError
from kd_jax.models import inception
from random_inception import random_state_dict
from torch_inception import REFERENCE, reference_inputs, torch_reference


def _np_conv(x, w_oihw, stride, pad):
  """NHWC cross-correlation (PyTorch's conv) by summing kernel offsets."""
  ph, pw = pad
  x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  _, _, kh, kw = w_oihw.shape
  ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  out = np.zeros((x.shape[0], ho, wo, w_oihw.shape[0]))
  for a in range(kh):
    for b in range(kw):
      patch = x[:, a:a + stride * ho:stride, b:b + stride * wo:stride, :]
      out += patch @ w_oihw[:, :, a, b].T
  return out


@pytest.mark.parametrize("kernel,stride,pad", [((3, 3), 2, (1, 1)), ((1, 7), 1, (0, 3)),
                                               ((3, 1), 1, (1, 0))])
def test_conv_bn_relu_unit_from_torch_names_matches_numpy(kernel, stride, pad):
  rng = np.random.default_rng(0)
  o, i = 5, 3
  sd = {"conv.weight": rng.normal(size=(o, i, *kernel)),
        "bn.weight": rng.uniform(0.5, 1.5, o), "bn.bias": rng.normal(size=o),
        "bn.running_mean": rng.normal(size=o),
        "bn.running_var": rng.uniform(0.005, 0.02, o)}   # small: ε = 1e-3 vs 1e-5 shows
  variables = W.nest(dict(W.convert(k, v) for k, v in sd.items()))
  x = rng.normal(size=(2, 9, 11, i)).astype(np.float32)
  got = inception.BasicConv(o, kernel, stride, pad).apply(variables, jnp.asarray(x))
  y = _np_conv(x.astype(np.float64), sd["conv.weight"], stride, pad)
  want = np.maximum((y - sd["bn.running_mean"]) / np.sqrt(sd["bn.running_var"] + 1e-3)
                    * sd["bn.weight"] + sd["bn.bias"], 0)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


def test_pools_match_tensorflow_same_pooling():
  x = -np.random.default_rng(1).uniform(1, 2, (1, 5, 6, 2)).astype(np.float32)  # all < 0
  pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=np.nan)
  avg = np.zeros_like(x)
  mx = np.zeros_like(x)
  for r in range(5):
    for c in range(6):
      win = pad[:, r:r + 3, c:c + 3, :]
      avg[:, r, c] = np.nanmean(win, axis=(1, 2))   # padding left out of the mean
      mx[:, r, c] = np.nanmax(win, axis=(1, 2))     # padding never wins (inputs < 0)
  np.testing.assert_allclose(np.asarray(inception._avg3(jnp.asarray(x))), avg, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(inception._max3(jnp.asarray(x))), mx, rtol=1e-6)


def _np_bilinear(x, size):
  """torch's interpolate(mode='bilinear', align_corners=False), written out along each axis."""
  def axis(n_in):
    src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0
  r0, r1, fr = axis(x.shape[1])
  c0, c1, fc = axis(x.shape[2])
  rows = x[:, r0] * (1 - fr)[None, :, None, None] + x[:, r1] * fr[None, :, None, None]
  return rows[:, :, c0] * (1 - fc)[None, None, :, None] + rows[:, :, c1] * fc[None, None, :, None]


@pytest.mark.parametrize("side,size", [(32, 299), (40, 13)])
def test_resize_is_torch_bilinear_without_antialias(side, size):
  x = np.random.default_rng(2).normal(size=(2, side, side, 3)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(inception.resize(jnp.asarray(x), size)),
                             _np_bilinear(x.astype(np.float64), size), rtol=1e-5, atol=1e-5)


def test_parameter_count_and_names_match_torchvision():
  # torchvision documents num_params = 27,161,264 for inception_v3 (IMAGENET1K_V1 meta): with
  # the auxiliary head and 1000 classes. The FID network has no aux head and 1008 classes.
  aux = (768 * 128 + 2 * 128) + (128 * 768 * 5 * 5 + 2 * 768) + (768 * 1000 + 1000)
  expected = 27_161_264 - aux + (1008 - 1000) * (2048 + 1)
  like = inception.variables_like()
  assert sum(int(np.prod(v.shape)) for v in jax.tree.leaves(like["params"])) == expected
  names = W.torch_names()
  # conv units: stem 5, Mixed_5b-d 3 × 7, 6a 4, 6b-e 4 × 10, 7a 6, 7b-c 2 × 9 = 94, each with
  # conv.weight and bn.{weight, bias, running_mean, running_var}; fc.{weight, bias}
  assert len(names) == 94 * 5 + 2
  # shapes as torchvision's inception.py declares them (OIHW)
  assert names["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
  assert names["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
  assert names["Mixed_7a.branch7x7x3_3.conv.weight"] == (192, 192, 7, 1)
  assert names["Mixed_7c.branch_pool.conv.weight"] == (192, 2048, 1, 1)
  assert names["fc.weight"] == (1008, 2048)


def test_small_forward_shapes_and_logits_leave_out_the_bias():
  variables = W.to_variables(random_state_dict(3))
  x = jax.random.uniform(jax.random.key(0), (2, 75, 75, 3), minval=-1, maxval=1)
  pool, logits = jax.jit(inception.InceptionV3().apply)(variables, x)
  assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
  kernel = np.asarray(variables["params"]["fc"]["kernel"], np.float64)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(pool, np.float64) @ kernel,
                             rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def zeros_state():
  return {k: np.zeros(s, np.float32) for k, s in W.torch_names().items()}


def _one_line_error(fn, *args, match):
  with pytest.raises(ConfigError, match=match) as e:
    fn(*args)
  assert "\n" not in str(e.value)
  return str(e.value)


def test_weight_file_errors_are_one_line(tmp_path, zeros_state, monkeypatch):
  _one_line_error(W.load, tmp_path / "none.npz", match="no such file")
  (tmp_path / "w.bin").write_bytes(b"x")
  _one_line_error(W.load, tmp_path / "w.bin", match="expected a .npz or .pth")
  (tmp_path / "bad.npz").write_bytes(b"not a zip")
  _one_line_error(W.load, tmp_path / "bad.npz", match="could not be read as .npz")
  state = dict(zeros_state)
  del state["Mixed_6c.branch_pool.bn.running_var"]
  _one_line_error(W.to_variables, state, match="1 weights missing .*Mixed_6c.branch_pool.bn")
  state = {**zeros_state, "AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)}
  _one_line_error(W.to_variables, state, match="1 unexpected weights .*AuxLogits.fc.weight")
  state = {**zeros_state, "fc.weight": np.zeros((2048, 1008), np.float32)}
  _one_line_error(W.to_variables, state, match=r"fc.weight has shape \(2048, 1008\), expected")
  (tmp_path / "w.pth").write_bytes(b"x")
  monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
  msg = _one_line_error(W.load, tmp_path / "w.pth", match="needs torch")
  assert "numpy.savez" in msg   # the conversion one-liner


def test_batch_counters_are_ignored_and_kernels_transposed(zeros_state):
  state = {**zeros_state, "Conv2d_1a_3x3.bn.num_batches_tracked": np.array(7)}
  w = np.arange(32 * 3 * 3 * 3, dtype=np.float32).reshape(32, 3, 3, 3)
  state["Conv2d_1a_3x3.conv.weight"] = w
  v = W.to_variables(state)
  kernel = v["params"]["Conv2d_1a_3x3"]["conv"]["kernel"]
  assert kernel.shape == (3, 3, 3, 32)
  assert kernel[1, 2, 0, 5] == w[5, 0, 1, 2]     # HWIO[h, w, i, o] = OIHW[o, i, h, w]


def test_whole_network_matches_pytorch_reference(tmp_path):
  torch = pytest.importorskip("torch", reason="the reference network needs PyTorch")
  net = torch_reference(torch).eval()
  state = random_state_dict(REFERENCE['seed'])
  assert set(net.state_dict()) - {k for k in net.state_dict() if "num_batches" in k} == set(state)
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
  pth, npz = tmp_path / "w.pth", tmp_path / "w.npz"
  torch.save(net.state_dict(), pth)   # as pytorch-fid's file: a plain state_dict
  # the documented conversion one-liner, run as a user would
  cmd = W.CONVERT.replace("IN.pth", str(pth)).replace("OUT.npz", str(npz))
  # "python" as the user's shell finds it: the one running these tests, venv activated or not
  env = dict(os.environ, PATH=os.pathsep.join([os.path.dirname(sys.executable),
                                               os.environ.get("PATH", "")]))
  subprocess.run(cmd, shell=True, check=True, env=env)
  from_pth, from_npz = W.load(pth), W.load(npz)
  for a, b in zip(jax.tree.leaves(from_pth), jax.tree.leaves(from_npz)):
    np.testing.assert_array_equal(a, b)
  images = reference_inputs()
  with torch.no_grad():
    pool_t, logits_t = (t.double().numpy() for t in net.double()(torch.from_numpy(images)))
  pool_j, logits_j = jax.device_get(fid._forward(from_npz, jnp.asarray(images), 299))
  np.testing.assert_allclose(pool_j, pool_t, rtol=1e-4, atol=1e-4 * np.abs(pool_t).max())
  np.testing.assert_allclose(logits_j, logits_t, rtol=1e-4, atol=1e-4 * np.abs(logits_t).max())


def test_readme_shows_the_conversion_one_liner_the_error_names():
  from pathlib import Path
  readme = (Path(__file__).parents[1] / "README.md").read_text()
  assert W.CONVERT.replace("IN.pth", "pt_inception-2015-12-05-6726825d.pth").replace(
      "OUT.npz", "pt_inception-2015-12-05.npz") in readme


def test_whole_network_matches_stored_pytorch_outputs():
  """Runs without torch (CI): the PyTorch reference's outputs for random_state_dict(seed) on
  fixed images, made by tests/torch_inception.py and stored small beside the tests; kd_jax's
  network with the same weights must give them."""
  stored = np.load(REFERENCE["file"])
  images = reference_inputs()
  np.testing.assert_array_equal(stored["images"], images)  # the inputs the file was made from
  weights = W.to_variables(random_state_dict(int(stored["seed"])))
  pool_j, logits_j = jax.device_get(fid._forward(weights, jnp.asarray(images), 299))
  pool_t, logits_t = stored["pool"], stored["logits"]
  assert pool_t.shape == (2, 2048) and logits_t.shape == (2, 1008)
  np.testing.assert_allclose(pool_j, pool_t, rtol=1e-4, atol=1e-4 * np.abs(pool_t).max())
  np.testing.assert_allclose(logits_j, logits_t, rtol=1e-4, atol=1e-4 * np.abs(logits_t).max())
  # a control: other weights give outputs the same check rejects
  other = W.to_variables(random_state_dict(int(stored["seed"]) + 1))
  pool_o, _ = jax.device_get(fid._forward(other, jnp.asarray(images), 299))
  assert not np.allclose(pool_o, pool_t, rtol=1e-4, atol=1e-4 * np.abs(pool_t).max())
