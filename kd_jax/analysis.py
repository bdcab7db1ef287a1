"""Post-training instruments for the optimization study: CKA (Table 1) and the loss plane (Fig 6c).

Both run after distillation when the config asks (``analysis.cka``, ``analysis.plane``) and
write into the run's workdir; their summaries join ``results.json``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from kd_jax import landscape, losses, metrics

Array = jax.Array


def inputs(images_u8: np.ndarray, n: int, normalize) -> Array:
  """The first ``n`` images of a host split, scaled and normalized like the training inputs."""
  return normalize(jnp.asarray(images_u8[:n], jnp.float32) / 255.0)


def stage_features(model, variables: dict, x: Array, batch: int = 250) -> list[np.ndarray]:
  """The three stage outputs of a model on ``x``, flattened per example."""
  apply = jax.jit(lambda v, xb: model.apply(v, xb, train=False, return_features=True)[1])
  chunks = [apply(variables, x[i:i + batch]) for i in range(0, x.shape[0], batch)]
  return [np.concatenate([np.asarray(metrics.flatten_features(c[s])) for c in chunks])
          for s in range(len(chunks[0]))]


def cka(teacher_model, teacher_vars: dict, student_model, student_vars: dict, x: Array,
        kernel: str = "linear") -> dict[str, float]:
  """CKA between teacher and student stage outputs on the same inputs (per stage)."""
  fn = metrics.linear_cka if kernel == "linear" else metrics.rbf_cka
  ft = stage_features(teacher_model, teacher_vars, x)
  fs = stage_features(student_model, student_vars, x)
  return {f"stage{i + 1}": float(fn(jnp.asarray(a), jnp.asarray(b)))
          for i, (a, b) in enumerate(zip(ft, fs))}


def plane(student_model, batch_stats: Any, anchors: tuple[Any, Any, Any], x: Array,
          teacher_logprobs: Array, temperature: float, cfg: ConfigDict,
          out_dir: Path) -> dict[str, Any]:
  """Distillation loss, agreement and KL on the plane through (teacher, student init, final).

  ``anchors`` are three ``params`` pytrees of the student architecture; BatchNorm statistics
  (if any) are held at ``batch_stats`` of the final student. Writes ``plane.npz`` and one
  contour plot per quantity.
  """
  t_pred = jnp.argmax(teacher_logprobs, -1)
  t_lp1 = jax.nn.log_softmax(teacher_logprobs)

  def fn(params):
    v = {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
    logits = student_model.apply(v, x, train=False)
    s_lp = jax.nn.log_softmax(logits)
    return {
        "distill_loss": jnp.mean(losses.kd_loss(logits, teacher_logprobs, temperature)),
        "agreement": 100.0 * jnp.mean(jnp.argmax(logits, -1) == t_pred),
        "kl": jnp.mean(jnp.sum(jnp.exp(t_lp1) * (t_lp1 - s_lp), -1)),
    }

  pl = landscape.plane_basis(*anchors)
  xs, ys = landscape.grid_around(pl, n=int(cfg.plane_points), margin=float(cfg.plane_margin))
  values = landscape.evaluate_plane(fn, pl, xs, ys, chunk=int(cfg.plane_chunk))
  out_dir.mkdir(parents=True, exist_ok=True)
  np.savez(out_dir / "plane.npz", xs=xs, ys=ys, anchors=pl.coords,
           **{k: np.asarray(v) for k, v in values.items()})
  labels = ("teacher", "student init", "student final")
  titles = {"distill_loss": f"distillation loss (τ={temperature:g})",
            "agreement": "top-1 agreement with the teacher (%)", "kl": "KL(teacher ‖ student)"}
  for key, arr in values.items():
    landscape.plot_plane(np.asarray(arr), xs, ys, pl, path=out_dir / f"plane_{key}.png",
                         labels=labels, title=titles[key], colorbar_label=key)
  anchor_values = {name: {k: float(v) for k, v in fn(a).items()}
                   for name, a in zip(("teacher", "student_init", "student_final"), anchors)}
  return {"anchor_coords": pl.coords.tolist(), "anchors": anchor_values,
          "grid": [len(ys), len(xs)], "files": sorted(p.name for p in out_dir.glob("plane*"))}
