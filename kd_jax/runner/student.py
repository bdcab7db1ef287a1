"""Distillation: initialize a student (random, interpolated, teacher-initial) and fit it to the
frozen teacher ensemble (the first k members of it)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from ml_collections import ConfigDict

from kd_jax.kd import ensemble, interpolate
from kd_jax.train import evaluators, modeling, optim, writer as report, steps, synthetic
from kd_jax.core import parallel
from kd_jax.runner import gans, remedies
from kd_jax.data import pipelines
from kd_jax.data.inputs import ExperimentData
from kd_jax.core.errors import ConfigError
from kd_jax.models import fold
from kd_jax.runner.teachers import Teacher
from kd_jax.train.trainer import Hook, Phase, Results, fit


@dataclasses.dataclass
class Student:
  model: Any
  initial: dict        # stacked (1 member) initial variables, on the host
  final: dict          # stacked (1 member) final variables, on the host
  results: Results     # the final evaluation, {split: {metric: value}}


def student_init(d: ConfigDict, seed: int, model, teacher: Teacher,
                 data: ExperimentData) -> tuple[dict, float]:
  """Initial student variables and the learning rate to start from (docs/paper.md, interpolated
  init); ``d`` = ``config.distill``, ``seed`` = ``config.seed``."""
  random = modeling.init_variables(model, seed, steps.STUDENT_STREAM, 1, data.input_shape)
  lr = float(d.optim.lr)
  if d.init.mode in ("random", remedies.ANNEAL_MODE):  # anneal: θ starts random, λ moves it
    return random, lr
  _check_member(d.init.member, teacher)
  pick = lambda tree: jax.tree.map(lambda a: a[d.init.member: d.init.member + 1], tree)
  if d.init.mode == "teacher_initial":
    source = pick(teacher.initial)
    interpolate.check_same_architecture(source, random)
    return jax.tree.map(jnp.asarray, source), lr
  mixed = interpolate.interpolate(pick(teacher.final), random, d.init.lam)
  if d.init.refresh_bn and jax.tree.leaves(mixed["batch_stats"]):
    mixed = refresh_bn(model, mixed, data, int(d.batch_size))
  if d.init.scale_lr:
    lr = interpolate.scaled_lr(lr, d.init.lam, d.optim.lr_min)
  return mixed, lr


def refresh_bn(model, variables: dict, data: ExperimentData, bs: int) -> dict:
  """One train-mode pass over the (clean) distillation data, in batches of ``bs``, to refit
  BatchNorm statistics."""
  x = data.host.distill_x
  batches = (data.host_inputs(x[i:i + bs]) for i in range(0, len(x), bs))
  new = interpolate.refresh_batch_stats(modeling.local(model).apply,
                                        modeling.as_flax(modeling.member(variables, 0)), batches)
  return jax.tree.map(lambda a: jnp.asarray(a)[None],
                      {"params": new["params"], "batch_stats": new["batch_stats"]})


def _optimizer(d: ConfigDict, data: ExperimentData, mesh: Mesh, lr: float, batch_size: int):
  """(tx, batch size, line search?, l2 in the loss): L-BFGS runs full batch with L2 in the loss
  so its line search sees the objective it minimizes. ``batch_size``: real rows per step."""
  line_search = optim.needs_value_fn(d.optim)
  opt_cfg = d.optim
  if line_search:  # full batch, rounded up to the device count
    n_dev = parallel.num_shards(mesh)
    batch_size = -(-data.distill.size // n_dev) * n_dev
    opt_cfg = ConfigDict(d.optim.to_dict())
    opt_cfg.weight_decay = 0.0
  spe = pipelines.steps_per_epoch(data.distill.size, batch_size)
  tx = optim.make_optimizer(opt_cfg, spe * d.epochs, spe, lr=lr)
  return tx, batch_size, line_search, float(d.optim.weight_decay) if line_search else 0.0


def _stages(d: ConfigDict, teacher: Teacher, k: int, final_vars: Any,
            to_device: Callable[[dict], Any]) -> list[remedies.Stage]:
  """The teachers the student distils from, in order: the final one, or checkpoints along the
  teacher's training (``distill.trajectory`` of ``d`` = ``config.distill``). ``to_device`` turns
  host variables into what the step's teacher takes (folded if so configured, replicated)."""
  stages = int(d.trajectory)
  if not stages:
    return [remedies.Stage(int(d.epochs), -1, final_vars)]
  final_epoch = remedies.stored_epochs(teacher.entry)
  epochs = remedies.trajectory_epochs(remedies.kept_epochs(teacher.entry), stages, final_epoch)
  ends = remedies.stage_ends(int(d.epochs), stages)
  print(f"[distill] trajectory: teacher epochs {epochs} for student epochs up to {ends}",
        flush=True)
  return [remedies.Stage(end, e, final_vars if e == final_epoch else to_device(
              remedies.teacher_at(teacher.entry, e, k, final_epoch, teacher.final)))
          for end, e in zip(ends, epochs)]


def _check_member(member: int, teacher: Teacher) -> None:
  """``distill.init.member`` names a member the stored teacher has (one message for both uses)."""
  available = ensemble.num_members(teacher.final["params"])
  if member >= available:
    raise ConfigError(f"distill.init.member={member} but the teacher has {available} "
                      f"members; use 0..{available - 1}")


def _anchor(member: int, teacher: Teacher, model_vars: dict, mesh: Mesh):
  """The teacher member (``distill.init.member``) annealed interpolation starts from
  (unstacked params, replicated)."""
  _check_member(member, teacher)
  anchor = modeling.member(teacher.final, member)["params"]
  interpolate.check_same_architecture(anchor, modeling.member(model_vars, 0)["params"])
  return parallel.replicate(anchor, mesh)


def _no_eval(state, results, epoch=None):
  """Stages before the last are not evaluated (their numbers are in metrics.jsonl)."""
  return {}


def _polish(d: ConfigDict, workdir: Path, data: ExperimentData, spec: steps.StepSpec,
            base: Phase, state, model, mesh: Mesh, writer, hook):
  """Full-batch second-order polish after the first-order run (``distill.polish`` of ``d`` =
  ``config.distill``), on the clean distillation images."""
  p = remedies.polish_section(d)
  tx, batch_size, line_search, l2 = _optimizer(p, data, mesh, float(p.optim.lr),
                                               int(p.batch_size))
  apply_fn = modeling.local(model).apply if line_search else model.apply
  # A line search needs one objective: the clean distillation images, no fresh augmentation
  # per step (its running metrics are therefore on clean images).
  # The polish fits the loss the first-order run ended on: its last τ, no SAM perturbation.
  pspec = dataclasses.replace(spec, tx=tx, line_search=line_search, l2=l2, apply_fn=apply_fn,
                              anneal=None, synth=None, prepare=data.prepare(""),
                              temperature=float(d.temperature_end or d.temperature),
                              temperature_at=None, sam_rho=0.0)
  phase = dataclasses.replace(base, name="polish", spec=pspec, epochs=p.epochs,
                              batch_size=batch_size,
                              checkpoint_dir=Path(workdir) / "checkpoints" / "polish")
  start = parallel.host(modeling.state_variables(state))
  print(f"[polish] {p.optim.name} on {data.distill.size} examples for {p.epochs} epochs "
        f"(batch {batch_size})", flush=True)
  state = parallel.replicate(modeling.make_state(start, tx), mesh)
  state, results = fit(phase, state, mesh, writer, hook)
  if results is None:
    results = base.evaluate(state, {"running": writer.last("polish").get("running", {})})
  return state, results


def _synthetic(d: ConfigDict, data: ExperimentData, mesh: Mesh, gan, t_vars):
  """(SynthSpec or None, the vars the steps read, the eval pipeline of samples or None);
  ``d`` = ``config.distill``."""
  if float(d.synth_ratio) <= 0:
    return None, t_vars, None
  if gan is None or data.modality != "image":
    raise ConfigError("distill.synth_ratio > 0 needs image data and a GAN (kd_jax.runner.gans); "
                      "set distill.synth_ratio=0")
  spec = synthetic.make_spec(d, gan.generator, gan.z_dim, data.normalize,
                             parallel.num_shards(mesh))
  step_vars = {"teacher": t_vars, "generator": parallel.replicate(gan.variables, mesh)}
  n_eval = int(d.train_eval_size) or data.distill.size
  return spec, step_vars, gans.eval_pipeline(gan, n_eval, mesh)


def distill(d: ConfigDict, run: ConfigDict, seed: int, workdir: Path, data: ExperimentData,
            teacher: Teacher, mesh: Mesh, writer: report.MetricWriter,
            hook: Optional[Hook] = None, gan: Any = None, evals: Any = None) -> Student:
  """Distills one student from the (first k members of the) teacher; with
  ``distill.synth_ratio`` > 0 each batch also holds fresh samples of ``gan``.

  ``d``, ``run``: ``config.distill`` and ``config.run``; ``seed``: ``config.seed``, the trial's
  student seed (its initialization and data order); ``evals``: ``config.evals``, evaluations
  besides those ``distill.evals`` names (kd_jax.train.evaluators).
  """
  k = int(d.teacher_members) or ensemble.num_members(teacher.final["params"])
  # The frozen teacher may run with its BatchNorms folded into its convs (models/fold.py).
  fold_bn = bool(run.fold_teacher_bn)
  t_model, t_flax = fold.teacher_for_inference(
      teacher.model, modeling.as_flax(ensemble.take_members(teacher.final, k)), fold_bn)
  t_vars = parallel.replicate(t_flax, mesh)
  to_device = lambda host: parallel.replicate(fold.teacher_for_inference(
      teacher.model, modeling.as_flax(host), fold_bn)[1], mesh)
  synth, step_vars, synth_eval = _synthetic(d, data, mesh, gan, t_vars)
  model = modeling.build_model(d.model, data.num_classes, run.dtype, data.model_options)
  init_vars, lr = student_init(d, seed, model, teacher, data)
  init_vars = jax.device_get(init_vars)  # host copy: the device state is donated to the steps
  tx, batch_size, line_search, l2 = _optimizer(d, data, mesh, lr,
                                               synthetic.real_batch_size(d))
  anneal, anchor = None, None
  total_steps = pipelines.steps_per_epoch(data.distill.size, batch_size) * int(d.epochs)
  if d.init.mode == remedies.ANNEAL_MODE:
    anneal = remedies.anneal_schedule(d, total_steps)
    anchor = _anchor(int(d.init.member), teacher, init_vars, mesh)
  # A line search fits the gathered batch on each device: BatchNorm needs no device axis there.
  apply_fn = modeling.local(model).apply if line_search else model.apply
  spec = steps.StepSpec(apply_fn=apply_fn, tx=tx, prepare=data.prepare(d.augment),
                        materialize=data.distill.materialize, objective=d.loss,
                        temperature=float(d.temperature), alpha=float(d.alpha),
                        teacher_apply=t_model.apply, line_search=line_search, l2=l2,
                        member_mode=run.member_mode, anneal=anneal, synth=synth,
                        temperature_at=remedies.temperature_schedule(d, total_steps),
                        sam_rho=float(d.sam_rho))
  clean = dataclasses.replace(spec, prepare=data.prepare(""), anneal=None)
  ctx = evaluators.DistillContext(
      student_apply=model.apply, teacher_apply=t_model.apply, teacher_vars=t_vars,
      test=data.test, distill=data.distill, mesh=mesh, clean=clean,
      augmented=dataclasses.replace(spec, anneal=None) if d.augment else None,
      batch_size=run.eval_batch_size, train_limit=int(d.train_eval_size),
      seed=seed, synthetic=synth_eval, val=data.val)
  chosen = evaluators.entries("distill", d.evals, evals)
  evaluate = evaluators.build("distill", chosen, ctx, int(d.eval_every))
  phase = Phase(name="distill", spec=spec, pipeline=data.distill, epochs=d.epochs,
                batch_size=batch_size, seed=seed, stream=steps.STUDENT_STREAM,
                checkpoint_dir=Path(workdir) / "checkpoints" / "student",
                checkpoint_every=run.checkpoint_every, log_every=run.log_every,
                steps_per_call=run.steps_per_call,
                eval_every=evaluators.cadence(chosen, int(d.eval_every)),
                evaluate=evaluate, teacher_vars=step_vars)
  state = parallel.replicate(modeling.make_state(init_vars, tx), mesh)
  print(f"[distill] {k}-member {teacher.model.__class__.__name__} teacher → "
        f"{d.model.name} student on {data.distill.size} examples for {d.epochs} epochs "
        f"(τ={d.temperature}{f' → {d.temperature_end}' if d.temperature_end else ''}, "
        f"α={d.alpha}, loss={d.loss}, augment={d.augment or 'none'!r}, init={d.init.mode}"
        f"{f', SAM ρ={d.sam_rho}' if d.sam_rho else ''})", flush=True)
  if synth is not None:
    print(f"[distill] each batch: {batch_size} real rows + {synthetic.synth_count(d)} "
          f"GAN samples at τ={d.synth_temp} (from {gan.entry})", flush=True)

  def step_teacher(stage_vars):
    """What the step reads as teacher_vars: the stage's teacher (+ generator, + anchor)."""
    v = stage_vars if synth is None else {**step_vars, "teacher": stage_vars}
    return v if anchor is None else (v, anchor)

  stages = _stages(d, teacher, k, t_vars, to_device)
  for i, stage in enumerate(stages):
    last = i == len(stages) - 1
    stage_phase = dataclasses.replace(
        phase, epochs=stage.end, teacher_vars=step_teacher(stage.teacher_vars),
        evaluate=evaluate if last else _no_eval,
        record={"trajectory": {"teacher_epoch": stage.teacher_epoch}} if d.trajectory else None)
    state, results = fit(stage_phase, state, mesh, writer, hook)
  if results is None:  # finished before this process: evaluate the restored student
    results = evaluate(state, {"running": writer.last("distill").get("running", {})})
  if int(d.polish.epochs):
    state, results = _polish(d, workdir, data, spec, dataclasses.replace(
        phase, teacher_vars=t_vars, evaluate=evaluate), state, model, mesh, writer, hook)
  final = parallel.host(modeling.state_variables(state))
  return Student(model, init_vars, final, results)
