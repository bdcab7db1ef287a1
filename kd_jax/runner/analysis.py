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

from kd_jax.kd import cka as cka_lib
from kd_jax.kd import cka_official
from kd_jax.kd import ensemble, landscape, losses, metrics
from kd_jax.train import modeling, steps
from kd_jax.core.distributed import is_primary

Array = jax.Array


def stage_features(model, variables: dict, x: Array, batch: int = 250,
                   reduce=None) -> list[np.ndarray]:
  """The stage outputs of a model on ``x``, each reduced per batch (default: flattened per
  example; the official CKA keeps only column profiles)."""
  reduce = reduce or cka_lib.flatten_features
  apply = jax.jit(lambda v, xb: [reduce(f) for f in
                                 model.apply(v, xb, train=False, return_features=True)[1]])
  chunks = [apply(variables, x[i:i + batch]) for i in range(0, x.shape[0], batch)]
  return [np.concatenate([np.asarray(c[s]) for c in chunks]) for s in range(len(chunks[0]))]


#: analysis.cka_kernel → (per-batch reduction of a stage output, CKA of two reduced arrays).
CKA_KERNELS = {
    "linear": (None, lambda a, b: float(cka_lib.linear_cka(jnp.asarray(a), jnp.asarray(b)))),
    "rbf": (None, lambda a, b: float(cka_lib.rbf_cka(jnp.asarray(a), jnp.asarray(b)))),
    # The paper's Table 1 numbers: W×W column-profile CKA per batch of 128 (kd_jax/kd/cka_official.py).
    "official": (cka_official.column_profiles,
                 lambda a, b: cka_official.official_cka(a, b, batch_size=128)),
}


def cka(teacher_model, teacher_vars: dict, student_model, student_vars: dict, x: Array,
        kernel: str = "linear") -> dict[str, float]:
  """CKA between teacher and student stage outputs on the same inputs (per stage)."""
  reduce, fn = CKA_KERNELS[kernel]
  ft = stage_features(teacher_model, teacher_vars, x, reduce=reduce)
  fs = stage_features(student_model, student_vars, x, reduce=reduce)
  return {f"stage{i + 1}": fn(a, b) for i, (a, b) in enumerate(zip(ft, fs))}


_TITLES = {"distill_loss": "distillation loss", "agreement": "top-1 agreement with the teacher (%)",
           "kl": "KL(teacher ‖ student)"}


def _fit_to_teacher(student_model, batch_stats: Any, x: Array, teacher_logprobs: Array,
                    temperature: float):
  """params → distillation loss, agreement and KL on ``x``: what the plane and line draw."""
  def fn(params):
    logits = student_model.apply(steps.variables(params, batch_stats), x, train=False)
    return {"distill_loss": jnp.mean(losses.kd_loss(logits, teacher_logprobs, temperature)),
            "agreement": metrics.agreement(teacher_logprobs, logits),
            "kl": metrics.kl_divergence(teacher_logprobs, logits)}
  return fn


def line(student_model, batch_stats: Any, student: Any, teacher: Any, x: Array,
         teacher_logprobs: Array, temperature: float, points: int,
         out_dir: Path) -> dict[str, Any]:
  """The same quantities on the straight path θ(t) = (1−t)·student + t·teacher.

  A loss that rises between the ends (a barrier) says the final student sits in another basin
  than the teacher; ``barrier`` is max over t of the loss minus the larger end value.
  """
  fn = _fit_to_teacher(student_model, batch_stats, x, teacher_logprobs, temperature)
  ts = np.linspace(0.0, 1.0, int(points))
  values = landscape.evaluate_line(fn, student, teacher, ts, chunk=8)
  if is_primary():  # on many hosts process 0 alone writes files and plots
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "line.npz", ts=ts, **values)
    for key, arr in values.items():
      landscape.plot_line({key: arr}, ts, path=out_dir / f"line_{key}.png",
                          labels=("student final", "teacher"), title=_TITLES[key], ylabel=key)
  loss = values["distill_loss"]
  return {"barrier": float(loss.max() - max(loss[0], loss[-1])),
          "agreement_min": float(values["agreement"].min()), "points": int(points)}


def plane(student_model, batch_stats: Any, anchors: tuple[Any, Any, Any], x: Array,
          teacher_logprobs: Array, temperature: float, cfg: ConfigDict,
          out_dir: Path) -> dict[str, Any]:
  """Distillation loss, agreement and KL on the plane through (teacher, student init, final).

  ``anchors`` are three ``params`` pytrees of the student architecture; BatchNorm statistics
  (if any) are held at ``batch_stats`` of the final student. Writes ``plane.npz`` and one
  contour plot per quantity.
  """
  fn = _fit_to_teacher(student_model, batch_stats, x, teacher_logprobs, temperature)
  pl = landscape.plane_basis(*anchors)
  xs, ys = landscape.grid_around(pl, n=int(cfg.plane_points), margin=float(cfg.plane_margin))
  values = landscape.evaluate_plane(fn, pl, xs, ys, chunk=int(cfg.plane_chunk))
  if is_primary():  # on many hosts process 0 alone writes files and plots
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "plane.npz", xs=xs, ys=ys, anchors=pl.coords,
             **{k: np.asarray(v) for k, v in values.items()})
  # Each anchor as the plane's coordinates place it (the grid's own parameterization).
  anchor_values = {name: {k: float(v) for k, v in fn(landscape.plane_point(pl, *xy)).items()}
                   for name, xy in zip(_ANCHORS, pl.coords)}
  if is_primary():
    draw_plane(out_dir, pl.coords, anchor_values, temperature)
  return {"anchor_coords": pl.coords.tolist(), "anchors": anchor_values,
          "grid": [len(ys), len(xs)], "files": sorted(p.name for p in out_dir.glob("plane*"))}


_ANCHORS = ("teacher", "student_init", "student_final")


def draw_plane(out_dir: Path, coords: Any, anchor_values: dict[str, dict[str, float]],
               temperature: float) -> None:
  """One plot per quantity of ``out_dir/plane.npz``, each anchor with its measured value."""
  import types
  z = np.load(Path(out_dir) / "plane.npz")
  plane = types.SimpleNamespace(coords=np.asarray(coords))  # plot_plane reads only coords
  titles = dict(_TITLES, distill_loss=f"distillation loss (τ={temperature:g})")
  for key in _TITLES:
    landscape.plot_plane(z[key], z["xs"], z["ys"], plane, path=Path(out_dir) / f"plane_{key}.png",
                         labels=("teacher", "student init", "student final"),
                         title=titles[key], colorbar_label=key,
                         anchor_values=[anchor_values[a][key] for a in _ANCHORS],
                         value_format=metrics.metric(key).fmt)


def redraw_plane(trial_dir: Path) -> None:
  """Redraws a finished trial's plane plots from its plane.npz and results.json (no model)."""
  import json
  trial_dir = Path(trial_dir)
  res = json.loads((trial_dir / "results.json").read_text())["plane"]
  tau = json.loads((trial_dir / "config.json").read_text())["distill"]["temperature"]
  draw_plane(trial_dir / "plane", res["anchor_coords"], res["anchors"], float(tau))


def teacher_logprobs_of(teacher_model, stacked_vars: dict, x: Array,
                        batch: int = 500) -> Array:
  """Ensemble log-probabilities on host-side inputs (outside the device mesh)."""
  apply = modeling.local(teacher_model).apply
  fn = jax.jit(lambda v, xb: steps.teacher_logprobs(apply, v, xb))
  return jnp.concatenate([fn(stacked_vars, x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def run_analyses(a: ConfigDict, d: ConfigDict, workdir: Path, data, teacher,
                 student) -> dict[str, Any]:
  """CKA (``{"cka": {"stage1": ...}}``), the loss plane and the student → teacher line, when
  ``a`` (``config.analysis``) asks for them; ``d`` = ``config.distill`` (the teacher member
  and members used, the temperature)."""
  out: dict[str, Any] = {}
  member = int(d.init.member)
  t_single = modeling.as_flax(modeling.member(teacher.final, member))
  s_single = modeling.as_flax(modeling.member(student.final, 0))
  if a.cka:
    x = data.host_inputs(data.host.test_x, int(a.cka_examples))
    out["cka"] = cka(teacher.model, t_single, student.model, s_single, x, a.cka_kernel)
    print(f"[analysis] CKA per stage: {out['cka']}", flush=True)
  if a.plane:
    x = data.host_inputs(data.host.distill_x, int(a.plane_examples))
    k = int(d.teacher_members) or ensemble.num_members(teacher.final["params"])
    t_lp = teacher_logprobs_of(teacher.model, modeling.as_flax(ensemble.take_members(teacher.final, k)), x)
    anchors = (modeling.member(teacher.final["params"], member),
               modeling.member(student.initial["params"], 0),
               modeling.member(student.final["params"], 0))
    bs = modeling.member(student.final["batch_stats"], 0)
    out["plane"] = plane(modeling.local(student.model), bs, anchors, x, t_lp,
                         float(d.temperature), a, Path(workdir) / "plane")
    print(f"[analysis] plane written to {Path(workdir) / 'plane'}", flush=True)
  if a.line:
    x = data.host_inputs(data.host.distill_x, int(a.plane_examples))
    k = int(d.teacher_members) or ensemble.num_members(teacher.final["params"])
    t_lp = teacher_logprobs_of(teacher.model,
                               modeling.as_flax(ensemble.take_members(teacher.final, k)), x)
    out["line"] = line(modeling.local(student.model),
                       modeling.member(student.final["batch_stats"], 0),
                       modeling.member(student.final["params"], 0),
                       modeling.member(teacher.final["params"], member), x, t_lp,
                       float(d.temperature), int(a.line_points), Path(workdir) / "line")
    print(f"[analysis] line student → teacher: {out['line']}", flush=True)
  return out
