"""Planes and lines through parameter space, checked with numpy linear algebra and closed forms."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.kd.landscape import (evaluate_line, evaluate_plane, grid_around, plane_basis, plane_point, plot_line, plot_plane)


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(jnp.tanh(nn.Dense(6)(x)))


_MODEL = _MLP()
_X = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
_Y = np.arange(8) % 3


def _params(seed: int):
  return _MODEL.init(jax.random.key(seed), jnp.zeros((1, 4)))["params"]


def _ce(params):
  """Cross-entropy on a fixed batch: a nonlinear function of the parameters."""
  logits = _MODEL.apply({"params": params}, _X)
  logp = jax.nn.log_softmax(logits)
  nll = -jnp.mean(jnp.take_along_axis(logp, _Y[:, None], axis=1))
  acc = jnp.mean(jnp.argmax(logits, -1) == _Y)
  return {"ce": nll, "acc": acc}


def _flat(tree) -> np.ndarray:
  return np.concatenate([np.asarray(x, np.float64).ravel()
                         for x in jax.tree_util.tree_leaves(tree)])


@pytest.fixture(scope="module")
def anchors():
  return _params(0), _params(1), _params(2)


@pytest.fixture(scope="module")
def plane(anchors):
  return plane_basis(*anchors)


def test_basis_is_orthonormal_and_spans_anchors(anchors, plane):
  a, b, c = (_flat(t) for t in anchors)
  gram = np.array([[plane.u @ plane.u, plane.u @ plane.v], [plane.v @ plane.u, plane.v @ plane.v]])
  np.testing.assert_allclose(gram, np.eye(2), atol=1e-12)
  np.testing.assert_allclose(plane.origin, a)
  np.testing.assert_allclose(plane.coords[0], [0, 0], atol=1e-12)
  np.testing.assert_allclose(plane.coords[1], [np.linalg.norm(b - a), 0], rtol=1e-12, atol=1e-12)
  # b − a and c − a lie in span(u, v): least squares leaves no residual.
  basis = np.stack([plane.u, plane.v], axis=1)
  for d in (b - a, c - a):
    coef = np.linalg.lstsq(basis, d, rcond=None)[0]
    np.testing.assert_allclose(basis @ coef, d, atol=1e-9)


def test_plane_point_reproduces_anchors_and_stays_in_plane(anchors, plane):
  for (x, y), tree in zip(plane.coords, anchors):
    got = plane_point(plane, x, y)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(tree)
    np.testing.assert_allclose(_flat(got), _flat(tree), rtol=1e-6, atol=1e-6)
  a, b, c = (_flat(t) for t in anchors)
  p = _flat(plane_point(plane, 0.7, -1.3)) - a
  span = np.stack([b - a, c - a], axis=1)
  coef = np.linalg.lstsq(span, p, rcond=None)[0]
  np.testing.assert_allclose(span @ coef, p, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(p), np.hypot(0.7, 1.3), rtol=1e-5)


def test_evaluate_plane_at_anchors_matches_fn(anchors, plane):
  (xb, _), (xc, yc) = plane.coords[1], plane.coords[2]
  xs, ys = [0.0, xb, xc], [0.0, yc]
  out = evaluate_plane(_ce, plane, xs, ys, chunk=4)
  assert set(out) == {"ce", "acc"} and out["ce"].shape == (2, 3)
  fa, fb, fc = (jax.jit(_ce)(t) for t in anchors)
  np.testing.assert_allclose(out["ce"][0, 0], fa["ce"], rtol=1e-5)
  np.testing.assert_allclose(out["ce"][0, 1], fb["ce"], rtol=1e-5)
  np.testing.assert_allclose(out["ce"][1, 2], fc["ce"], rtol=1e-5)
  np.testing.assert_array_equal([out["acc"][0, 0], out["acc"][0, 1], out["acc"][1, 2]],
                                [fa["acc"], fb["acc"], fc["acc"]])


def test_evaluate_plane_quadratic_closed_form_and_chunking(anchors, plane):
  a = _flat(anchors[0])
  target = a + 0.3 * plane.u - 0.2 * plane.v
  weights = np.linspace(0.5, 2.0, a.size)
  t_dev, w_dev = jnp.asarray(target, jnp.float32), jnp.asarray(weights, jnp.float32)

  def quad(tree):
    flat = jnp.concatenate([x.ravel() for x in jax.tree_util.tree_leaves(tree)])
    return {"q": jnp.sum(w_dev * (flat - t_dev) ** 2)}

  xs = np.linspace(-1.0, 2.0, 5)
  ys = np.linspace(-0.5, 1.0, 3)  # 15 points: chunk 4 needs a padded last chunk
  out = evaluate_plane(quad, plane, xs, ys, chunk=4)["q"]
  ref = np.empty((3, 5))
  for i, y in enumerate(ys):
    for j, x in enumerate(xs):
      # w-weighted distance from the in-plane point to the target, in closed form.
      ref[i, j] = np.sum(weights * ((x - 0.3) * plane.u + (y + 0.2) * plane.v) ** 2)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
  one = evaluate_plane(quad, plane, xs, ys, chunk=1)["q"]
  big = evaluate_plane(quad, plane, xs, ys, chunk=16)["q"]
  np.testing.assert_allclose(one, out, rtol=1e-6)
  np.testing.assert_allclose(big, out, rtol=1e-6)


def test_chunking_matches_single_points_on_network(plane):
  xs, ys = np.linspace(-0.5, 1.5, 3), np.linspace(-0.2, 0.8, 2)
  one = evaluate_plane(_ce, plane, xs, ys, chunk=1)
  many = evaluate_plane(_ce, plane, xs, ys, chunk=4)
  np.testing.assert_allclose(many["ce"], one["ce"], rtol=1e-5)


def test_evaluate_line_endpoints_and_midpoint(anchors):
  a, b, _ = anchors
  ts = np.array([0.0, 0.5, 1.0])
  out = evaluate_line(_ce, a, b, ts, chunk=2)
  np.testing.assert_allclose(out["ce"][0], jax.jit(_ce)(a)["ce"], rtol=1e-6)
  np.testing.assert_allclose(out["ce"][2], jax.jit(_ce)(b)["ce"], rtol=1e-6)
  mid = jax.tree.map(lambda p, q: 0.5 * p + 0.5 * q, a, b)
  np.testing.assert_allclose(out["ce"][1], jax.jit(_ce)(mid)["ce"], rtol=1e-5)


def test_degenerate_planes_raise(anchors):
  a, b, _ = anchors
  mid = jax.tree.map(lambda p, q: 0.25 * p + 0.75 * q, a, b)
  with pytest.raises(ValueError, match="collinear"):
    plane_basis(a, b, mid)
  with pytest.raises(ValueError, match="coincide"):
    plane_basis(a, a, b)
  other = dict(a)
  other.pop("Dense_1")
  with pytest.raises(ValueError, match="Dense_1"):
    plane_basis(a, b, other)


def test_grid_covers_anchors_with_margin(plane):
  xs, ys = grid_around(plane, n=11, margin=0.3)
  assert xs.shape == ys.shape == (11,)
  lo, hi = plane.coords.min(0), plane.coords.max(0)
  span = hi - lo
  np.testing.assert_allclose([xs[0], xs[-1]], [lo[0] - 0.3 * span[0], hi[0] + 0.3 * span[0]])
  np.testing.assert_allclose([ys[0], ys[-1]], [lo[1] - 0.3 * span[1], hi[1] + 0.3 * span[1]])
  assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)


def test_plots_write_png(tmp_path, plane):
  xs, ys = grid_around(plane, n=4)
  values = np.arange(16, dtype=float).reshape(4, 4)
  values[0, 0] = np.nan
  p = plot_plane(values, xs, ys, plane, path=tmp_path / "sub" / "plane.png", title="loss")
  q = plot_line({"ce": np.array([1.0, 0.5, 2.0])}, [0.0, 0.5, 1.0], path=tmp_path / "line.png")
  for f in (p, q):
    with open(f, "rb") as fh:
      head = fh.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="shape"):
    plot_plane(values.T[:, :3], xs, ys, plane, path=tmp_path / "bad.png")
