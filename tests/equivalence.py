"""Equivalence of two trainings that differ only in how the work was laid out.

Two programs that compute the same training (vmapped members vs members alone, 1 vs 4 devices)
add floats in different orders, so their parameters differ by rounding that grows over the
steps. An elementwise tolerance on a leaf whose values sit near zero passes or fails by luck.
Here each leaf's disagreement is measured against how far training moved that leaf:

    gap(leaf) = ‖a − b‖ / ‖b − init‖

Reordered sums leave the gap orders of magnitude below 1; a real mismatch (another seed, data
order or key) makes the two trainings move differently and the gap is of order 1.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np


def _paths_and_leaves(tree: Any) -> list[tuple[str, np.ndarray]]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return [(jax.tree_util.keystr(p), np.asarray(x, np.float64)) for p, x in flat]


def update_gaps(a: Any, b: Any, init: Any) -> dict[str, float]:
  """Per leaf ‖a − b‖ / ‖b − init‖ (leaves that training did not move use ‖b‖ instead)."""
  la, lb, li = (_paths_and_leaves(t) for t in (a, b, init))
  assert [p for p, _ in la] == [p for p, _ in lb] == [p for p, _ in li], "different structures"
  gaps = {}
  for (path, x), (_, y), (_, y0) in zip(la, lb, li):
    assert x.shape == y.shape == y0.shape, f"{path}: shapes {x.shape} {y.shape} {y0.shape}"
    moved = np.linalg.norm(y - y0)
    scale = moved if moved > 1e-6 * (np.linalg.norm(y) + 1e-12) else np.linalg.norm(y) + 1e-12
    gaps[path] = float(np.linalg.norm(x - y) / scale)
  return gaps


def assert_same_training(a: Any, b: Any, init: Any, rtol: float = 1e-2) -> None:
  """Fails if any leaf of ``a`` differs from ``b`` by more than ``rtol`` of b's training update."""
  gaps = update_gaps(a, b, init)
  worst = max(gaps, key=gaps.get)
  assert gaps[worst] <= rtol, (f"{worst}: ‖a − b‖ is {gaps[worst]:.3g} of the training update "
                               f"(allowed {rtol:g}); all gaps above: "
                               f"{ {k: round(v, 4) for k, v in gaps.items() if v > rtol} }")
