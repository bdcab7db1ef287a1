"""The training loop shared by teachers and students: resumable epochs of jitted step chunks.

``fit(phase, state, ...)`` runs (or resumes) a phase to its last epoch and returns
``(state, final_eval)``. The host touches metrics once per epoch; checkpoints are written every
``checkpoint_every`` epochs and at the end, so a killed run resumes from the last one and —
because data order and keys are pure functions of (seed, member, epoch, step) — ends with the
same numbers as a run straight through.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from kd_jax.core import budget, checkpoints, parallel
from kd_jax.kd import ensemble
from kd_jax.train import writer as report, steps
from kd_jax.core.batch import sharded_specs
from kd_jax.data import pipelines
from kd_jax.core.errors import Interrupted, OutOfTime, TrainingDiverged
from kd_jax.core.types import Results

Hook = Callable[[str, int], None]
#: ``evaluate(state, {"running": ...}, epoch)``: the evaluations due after ``epoch``; with
#: ``epoch`` None, every one (the phase's final evaluation). kd_jax.train.evaluators.build.
Evaluate = Callable[..., Results]

#: (split, metric) pairs shown on the progress line when an evaluation produced them.
SHOWN = (("test", "student_acc"), ("test", "agreement"), ("test", "kl"), ("test", "teacher_acc"))


@dataclasses.dataclass(frozen=True)
class Phase:
  """One training run of stacked members: teachers (m) or the student (1)."""
  name: str
  spec: steps.StepSpec
  pipeline: pipelines.Pipeline
  epochs: int
  batch_size: int
  seed: int
  stream: int
  checkpoint_dir: Path
  checkpoint_every: int
  log_every: int
  steps_per_call: int
  eval_every: int
  evaluate: Evaluate
  teacher_vars: Any = None
  keep_every: int = 0      # also keep every checkpoint at a multiple of this epoch (trajectory)
  record: Optional[Results] = None  # written with every epoch's metrics (e.g. which teacher)


@functools.lru_cache(maxsize=32)
def _chunk_fn(spec: steps.StepSpec, stream: int, mesh: Mesh, feed_structure: Any):
  fn = functools.partial(steps.train_chunk, spec=spec, stream=stream)
  feed_specs = sharded_specs(jax.tree.unflatten(feed_structure,
                                                [0] * feed_structure.num_leaves), 2, parallel.AXIS)
  return parallel.device_map(
      fn, mesh, in_specs=(P(), P(), feed_specs, P(), P(), P(), P()),
      out_specs=(P(), P()), donate_argnums=(0,))


def run_epoch(phase: Phase, state: steps.TrainState, mesh: Mesh, epoch: int,
              members: int) -> tuple[steps.TrainState, dict[str, np.ndarray]]:
  """One epoch; returns the state and per-member sums (loss_sum, count, match)."""
  resident = phase.pipeline.resident()
  totals, s = None, 0
  for feed in phase.pipeline.epoch_feeds(phase.seed, phase.stream, members, epoch,
                                         phase.batch_size, phase.steps_per_call):
    fn = _chunk_fn(phase.spec, phase.stream, mesh, jax.tree.structure(feed))
    state, sums = fn(state, resident, feed, jnp.int32(phase.seed), jnp.int32(epoch),
                     jnp.int32(s), phase.teacher_vars)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    s += jax.tree.leaves(feed)[0].shape[0]
  return state, parallel.host(totals)


def running(phase: Phase, totals: dict[str, np.ndarray]) -> dict[str, float]:
  """The epoch's running metrics, in train mode on the batches as trained (mean over members)."""
  count = np.maximum(totals["count"], 1)
  match = "agreement" if phase.spec.teacher_apply is not None else "acc"
  out = {"loss": float((totals["loss_sum"] / count).mean()),
         match: float(100 * (totals["match"] / count).mean())}
  if "kl_sum" in totals:
    out["kl"] = float((totals["kl_sum"] / count).mean())
  return out


def _check_finite(phase: Phase, totals: dict, epoch: int, last_saved: int,
                  state: Optional[steps.TrainState] = None) -> None:
  """Stops at a non-finite loss, or (``state`` given, before a checkpoint) non-finite
  variables, with one line naming the phase, epoch, members and the last good checkpoint."""
  loss = totals["loss_sum"] / np.maximum(totals["count"], 1)
  bad, what = np.flatnonzero(~np.isfinite(loss)).tolist(), "loss"
  if not bad and state is not None:
    bad, what = checkpoints.nonfinite_members({"params": state.params,
                                               "batch_stats": state.batch_stats}), "variables"
  if bad:
    kept = (f"the last good checkpoint (epoch {last_saved}) is kept in {phase.checkpoint_dir}"
            if last_saved else f"no checkpoint of it was saved ({phase.checkpoint_dir})")
    raise TrainingDiverged(
        f"[{phase.name}] non-finite {what} in epoch {epoch + 1} (member"
        f"{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}); {kept}; lower "
        f"{phase.name}.optim.lr or add {phase.name}.optim.grad_clip")


def _shown(run_stats: dict[str, float], evals: Results) -> dict[str, float]:
  out = dict(run_stats)
  out.update({f"{split} {metric}": evals[split][metric] for split, metric in SHOWN
              if metric in evals.get(split, {})})
  return out


def fit(phase: Phase, state: steps.TrainState, mesh: Mesh, writer: report.MetricWriter,
        hook: Optional[Hook] = None) -> tuple[steps.TrainState, Optional[Results]]:
  """Runs (or resumes) a phase to its last epoch.

  Returns the final state and the evaluation after the last epoch, or ``None`` when the phase
  had finished before (the caller evaluates the restored state if it needs numbers).
  """
  members = ensemble.num_members(state.params)
  ckpt, done, last_saved = None, 0, 0
  try:
    ckpt = checkpoints.Checkpointer(phase.checkpoint_dir, keep_every=phase.keep_every)
    start, state = ckpt.resume(state, what="epoch")
    done = last_saved = start
    writer.forget_after(phase.name, start)  # records past the checkpoint (a kill's leftovers)
    if start:
      print(f"[{phase.name}] resumed from the checkpoint after epoch {start}", flush=True)
    if start >= phase.epochs:
      return state, None
    parallel.check_batch(phase.batch_size, mesh, f"{phase.name}.batch_size")
    progress = report.Progress(phase.name, phase.epochs, start, phase.pipeline.size * members)
    final = None
    for epoch in range(start, phase.epochs):
      state, totals = run_epoch(phase, state, mesh, epoch, members)
      _check_finite(phase, totals, epoch, last_saved)
      done = epoch + 1
      run_stats = running(phase, totals)
      evals: Results = {}
      if done % phase.eval_every == 0 or done == phase.epochs:
        evals = phase.evaluate(state, {"running": run_stats},
                               None if done == phase.epochs else done)
        final = evals if done == phase.epochs else None
      writer.write(phase.name, done, {"running": run_stats, **evals, **(phase.record or {})})
      if done % phase.log_every == 0 or done == phase.epochs or done == start + 1:
        progress.log(epoch, _shown(run_stats, evals))
      keep = phase.keep_every and done % phase.keep_every == 0
      if done % phase.checkpoint_every == 0 or done == phase.epochs or keep:
        _check_finite(phase, totals, epoch, last_saved, state)
        ckpt.save(done, state)
        last_saved = done
        if hook is not None:
          hook(phase.name, done)
        if done < phase.epochs:
          budget.at_checkpoint()
    return state, final
  except budget.TimeUp:  # --time_budget: stopped right after a checkpoint
    raise OutOfTime(phase.name, done, phase.epochs, last_saved) from None
  except KeyboardInterrupt:  # Ctrl-C: say where it stopped and how to go on, not a traceback
    raise Interrupted(phase.name, done, phase.epochs, last_saved) from None
  finally:
    if ckpt is not None:
      ckpt.close()
