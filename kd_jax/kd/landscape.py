"""Loss and agreement on lines and planes through parameter space (Fig 6c).

The paper shows the distillation loss on the plane through the teacher, the student's init and
the final student: a student started far from the teacher ends in a different basin. Here a
plane is an origin plus an orthonormal basis of flattened parameter vectors; points are
evaluated on the accelerator in vmapped chunks so a whole grid costs a few compiled calls.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from kd_jax.kd.interpolate import first_mismatch
from kd_jax.core.types import PyTree

MetricFn = Callable[[PyTree], Mapping[str, jax.Array]]

# Relative size below which a direction counts as zero (float32 parameters carry ~1e-7 noise).
_DEGENERATE_RTOL = 1e-5


@dataclasses.dataclass(frozen=True)
class Plane:
  """The plane origin + x·u + y·v in flattened parameter space.

  ``origin``, ``u`` and ``v`` are float64 host vectors (u, v orthonormal); ``coords[i]`` holds
  the (x, y) of the i-th anchor (a, b, c), so ``coords[0]`` is (0, 0); ``unravel`` maps a flat
  vector of dtype ``dtype`` back to the anchors' pytree structure.
  """
  origin: np.ndarray
  u: np.ndarray
  v: np.ndarray
  coords: np.ndarray
  unravel: Callable[[jax.Array], PyTree]
  dtype: np.dtype


def _flatten_same(trees: Sequence[PyTree]) -> tuple[list[jax.Array], Callable[[jax.Array], PyTree]]:
  """Flattens pytrees that must share one structure; the first one's unravel serves all."""
  flats = []
  unravel = None
  for i, tree in enumerate(trees):
    if i > 0:
      problem = first_mismatch(trees[0], tree)
      if problem is not None:
        raise ValueError(f"parameter trees must share one structure; tree 0 and tree {i} "
                         f"differ at {problem}")
    flat, unr = ravel_pytree(tree)
    flats.append(flat)
    if unravel is None:
      unravel = unr
  return flats, unravel


def plane_basis(a: PyTree, b: PyTree, c: PyTree) -> Plane:
  """Orthonormal basis of the plane through a, b, c (Gram–Schmidt in float64), origin a.

  u points from a to b, so the anchors sit at (0, 0), (|b−a|, 0) and (⟨c−a, u⟩, ⟨c−a, v⟩) with
  a positive last coordinate. Collinear or coincident anchors raise ValueError.
  """
  flats, unravel = _flatten_same([a, b, c])
  dtype = np.dtype(flats[0].dtype)
  fa, fb, fc = (np.asarray(f, dtype=np.float64) for f in flats)
  d1, d2 = fb - fa, fc - fa
  n1, n2 = np.linalg.norm(d1), np.linalg.norm(d2)
  scale = max(n1, n2, np.finfo(np.float64).tiny)
  if n1 <= _DEGENERATE_RTOL * scale:
    raise ValueError("plane_basis: the first two points coincide; a plane needs three "
                     "non-collinear points")
  u = d1 / n1
  w = d2 - np.dot(d2, u) * u
  w = w - np.dot(w, u) * u  # second pass keeps u ⟂ v to float64 precision
  nw = np.linalg.norm(w)
  if nw <= _DEGENERATE_RTOL * scale:
    raise ValueError("plane_basis: the three points are collinear (or coincide); a plane "
                     "needs three non-collinear points")
  v = w / nw
  coords = np.array([[0.0, 0.0], [n1, 0.0], [np.dot(d2, u), np.dot(d2, v)]])
  return Plane(origin=fa, u=u, v=v, coords=coords, unravel=unravel, dtype=dtype)


def plane_point(plane: Plane, x: float, y: float) -> PyTree:
  """The pytree at plane coordinates (x, y), computed in float64 and cast to the params dtype."""
  flat = plane.origin + x * plane.u + y * plane.v
  return plane.unravel(jnp.asarray(flat.astype(plane.dtype)))


def _evaluate_combinations(fn: MetricFn, unravel: Callable[[jax.Array], PyTree],
                           basis: np.ndarray, coeffs: np.ndarray, dtype: np.dtype,
                           chunk: int) -> dict[str, np.ndarray]:
  """fn at every Σ_k coeffs[i, k]·basis[k], ``chunk`` points per vmapped, compiled call.

  The combination is formed on device with elementwise products (not a matmul, whose default
  precision on some accelerators is reduced). The last chunk is padded by repeating its last
  point; padded results are dropped.
  """
  if int(chunk) < 1:
    raise ValueError(f"chunk={chunk!r} must be a positive integer")
  chunk = int(chunk)
  n = coeffs.shape[0]
  if n == 0:
    raise ValueError("no points to evaluate; pass at least one coordinate")
  compute = np.promote_types(dtype, np.float32)  # never combine directions in bf16/f16
  basis_dev = jnp.asarray(basis.astype(compute))

  def one(cs: jax.Array) -> Mapping[str, jax.Array]:
    flat = jnp.sum(cs[:, None] * basis_dev, axis=0)
    return fn(unravel(flat.astype(dtype)))

  batched = jax.jit(jax.vmap(one))
  pad = (-n) % chunk
  padded = np.concatenate([coeffs, np.repeat(coeffs[-1:], pad, axis=0)], axis=0)
  pieces: dict[str, list[np.ndarray]] = {}
  for start in range(0, n + pad, chunk):
    cs = jnp.asarray(padded[start:start + chunk].astype(compute))
    out = jax.device_get(batched(cs))
    for name, val in out.items():
      pieces.setdefault(name, []).append(np.asarray(val))
  return {name: np.concatenate(vals, axis=0)[:n] for name, vals in pieces.items()}


def evaluate_plane(fn: MetricFn, plane: Plane, xs: Sequence[float], ys: Sequence[float],
                   chunk: int = 16) -> dict[str, np.ndarray]:
  """fn(θ(x, y)) on the grid xs × ys; each metric comes back as an array [len(ys), len(xs)].

  ``fn(tree) -> {name: scalar}`` must be traceable (it is vmapped and jitted); close over the
  data batch it needs.
  """
  xs = np.asarray(xs, dtype=np.float64).reshape(-1)
  ys = np.asarray(ys, dtype=np.float64).reshape(-1)
  gx, gy = np.meshgrid(xs, ys)  # [ny, nx], row = y
  coeffs = np.stack([np.ones(gx.size), gx.reshape(-1), gy.reshape(-1)], axis=1)
  basis = np.stack([plane.origin, plane.u, plane.v])
  flat = _evaluate_combinations(fn, plane.unravel, basis, coeffs, plane.dtype, chunk)
  return {name: val.reshape(len(ys), len(xs)) for name, val in flat.items()}


def grid_around(plane: Plane, n: int = 21, margin: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
  """n×n grid covering the three anchors plus ``margin`` of their extent on every side."""
  if int(n) < 2:
    raise ValueError(f"n={n!r} must be at least 2 grid points per axis")
  lo = plane.coords.min(axis=0)
  hi = plane.coords.max(axis=0)
  span = hi - lo
  span = np.where(span > 0, span, span.max())  # never a zero-width axis
  lo, hi = lo - margin * span, hi + margin * span
  return np.linspace(lo[0], hi[0], int(n)), np.linspace(lo[1], hi[1], int(n))


def evaluate_line(fn: MetricFn, a: PyTree, b: PyTree, ts: Sequence[float],
                  chunk: int = 16) -> dict[str, np.ndarray]:
  """fn((1−t)·a + t·b) for each t; t = 0 and t = 1 give exactly a and b."""
  (fa, fb), unravel = _flatten_same([a, b])
  dtype = np.dtype(fa.dtype)
  ts = np.asarray(ts, dtype=np.float64).reshape(-1)
  coeffs = np.stack([1.0 - ts, ts], axis=1)
  basis = np.stack([np.asarray(fa), np.asarray(fb)])
  return _evaluate_combinations(fn, unravel, basis, coeffs, dtype, chunk)


def _new_figure(figsize: tuple[float, float]):
  """A figure on its own Agg canvas: no pyplot, so no global backend or figure registry."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def _save(fig, path: str | os.PathLike) -> str:
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  fig.savefig(path, dpi=120, bbox_inches="tight", format="png")
  return path


def plot_plane(values: np.ndarray, xs: Sequence[float], ys: Sequence[float], plane: Plane, *,
               path: str | os.PathLike,
               labels: Sequence[str] = ("teacher", "student init", "student final"),
               title: str = "", colorbar_label: str = "",
               anchor_values: Optional[Sequence[float]] = None,
               value_format: str = "{:.3g}") -> str:
  """Values [len(ys), len(xs)] as one cell per grid point, the three anchors marked; a PNG.

  Cells, not contours: contour interpolation between grid points smears a ridge narrower than
  the grid spacing (an anchor's own value can sit in a valley of the picture). So each anchor's
  label also prints its value measured at the anchor itself (``anchor_values``). Axes share
  one scale because plane coordinates are Euclidean distances in parameter space. Non-finite
  values (diverged points) are left blank.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.shape != (len(ys), len(xs)):
    raise ValueError(f"values have shape {values.shape}; expected (len(ys), len(xs)) = "
                     f"({len(ys)}, {len(xs)})")
  fig = _new_figure((6.0, 5.0))
  ax = fig.add_subplot(1, 1, 1)
  masked = np.ma.masked_invalid(values)
  cells = ax.pcolormesh(np.asarray(xs), np.asarray(ys), masked, shading="nearest",
                        cmap="viridis")
  span = (float(np.ptp(ys)) or 1.0) / (float(np.ptp(xs)) or 1.0)  # equal axes: as tall as the plane
  cbar = fig.colorbar(cells, ax=ax, shrink=float(np.clip(span * 1.2, 0.3, 1.0)))
  if colorbar_label:
    cbar.set_label(colorbar_label)
  markers = ("*", "o", "s")
  for i, (x, y) in enumerate(plane.coords):
    label = labels[i] if i < len(labels) else f"anchor {i}"
    face = "white"
    if anchor_values is not None:
      # the value measured at the anchor, as a label and as the marker's colour on the scale
      label = f"{label}: {value_format.format(anchor_values[i])}"
      face = cells.cmap(cells.norm(anchor_values[i]))
    ax.plot([x], [y], marker=markers[i % len(markers)], color=face, markeredgecolor="black",
            markeredgewidth=1.5, markersize=12, linestyle="none", label=label)
  # names (and measured values) in a legend below the plane: beside the markers they overlap
  # whenever two anchors are close
  ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.3), ncol=1, fontsize=9, frameon=False,
            handletextpad=0.4)
  ax.set_aspect("equal")
  ax.set_xlabel("u")
  ax.set_ylabel("v")
  if title:
    ax.set_title(title)
  return _save(fig, path)


def plot_line(values: Mapping[str, np.ndarray] | np.ndarray, ts: Sequence[float], *,
              path: str | os.PathLike, labels: Sequence[str] = ("teacher", "student"),
              title: str = "", ylabel: str = "") -> str:
  """Metric(s) along θ(t) = (1−t)·a + t·b, with t = 0 and t = 1 marked by ``labels``."""
  series = values if isinstance(values, Mapping) else {ylabel or "value": values}
  ts = np.asarray(ts, dtype=np.float64)
  fig = _new_figure((6.0, 4.0))
  ax = fig.add_subplot(1, 1, 1)
  for name, val in series.items():
    val = np.asarray(val, dtype=np.float64)
    if val.shape != ts.shape:
      raise ValueError(f"series {name!r} has shape {val.shape}; expected {ts.shape} like ts")
    ax.plot(ts, val, marker=".", label=name)
  for t, label in zip((0.0, 1.0), labels):
    ax.axvline(t, color="gray", linestyle="--", linewidth=0.8)
    ax.annotate(label, (t, 1.0), xycoords=("data", "axes fraction"), textcoords="offset points",
                xytext=(3, -12), fontsize=9)
  ax.set_xlabel("t")
  if ylabel:
    ax.set_ylabel(ylabel)
  if len(series) > 1:
    ax.legend()
  if title:
    ax.set_title(title)
  return _save(fig, path)
