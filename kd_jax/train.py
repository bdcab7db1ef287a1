"""Training loops: teacher ensembles, distillation, and the whole experiment.

``run(config, workdir)`` is what ``kd_jax.main`` and ``kd_jax.sweep`` call: load the splits,
get a teacher ensemble from the store (or train it), distill a student, evaluate everything
exactly, and write ``results.json``. Each loop is a thin host loop around jitted, device-mapped
chunks of steps; the host only touches metrics once per epoch.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P
from ml_collections import ConfigDict

from kd_jax import checkpoints, ensemble, interpolate, metrics, optim, parallel, report, steps
from kd_jax.config import teacher_key, to_json, validate
from kd_jax.data import augment as augment_lib
from kd_jax.data import pipeline, sources, splits as splits_lib
from kd_jax.errors import ConfigError
from kd_jax.models import get_model

TEACHER_STREAM, STUDENT_STREAM = 1, 2
Hook = Callable[[str, int], None]


class TrainingDiverged(ConfigError):
  """The loss became NaN/inf; the last good checkpoint is kept."""


# ------------------------------------------------------------------------------------ data


@dataclasses.dataclass
class Data:
  """The experiment's splits, on the host and resident on the mesh."""
  host: splits_lib.Splits
  teacher: pipeline.DeviceSplit
  distill: pipeline.DeviceSplit
  test: pipeline.DeviceSplit
  num_classes: int
  image_shape: tuple[int, ...]
  normalize: Callable[[jax.Array], jax.Array]


def load_splits(config: ConfigDict) -> splits_lib.Splits:
  ds = sources.load_source(config.data)
  return splits_lib.make_splits(ds, config.data, sources.load_ood(config.data))


def put_data(host: splits_lib.Splits, config: ConfigDict, mesh: Mesh) -> Data:
  mode = config.data.normalization
  mean = std = None
  if mode == "zscore":  # statistics of the teacher's training images
    x = host.teacher_x.astype(np.float64) / 255.0
    mean = tuple(x.mean(axis=(0, 1, 2)).tolist())
    std = tuple(x.std(axis=(0, 1, 2)).tolist())
  augment_lib.normalize(jnp.zeros((1, 1, 1, host.teacher_x.shape[-1])), mode, mean, std)  # validate
  return Data(
      host=host,
      teacher=pipeline.put_split(host.teacher_x, host.teacher_y, mesh),
      distill=pipeline.put_split(host.distill_x, host.distill_y, mesh),
      test=pipeline.put_split(host.test_x, host.test_y, mesh),
      num_classes=int(host.num_classes),
      image_shape=tuple(host.teacher_x.shape[1:]),
      normalize=functools.partial(augment_lib.normalize, mode=mode, mean=mean, std=std))


# ---------------------------------------------------------------------------------- models


def build_model(model_cfg: ConfigDict, num_classes: int, config: ConfigDict):
  opts = {k: v for k, v in model_cfg.items() if k != "name"}
  dtype = jnp.bfloat16 if config.run.dtype == "bfloat16" else jnp.float32
  model = get_model(model_cfg.name, num_classes, bn_axis_name=parallel.AXIS, **opts)
  if hasattr(model, "dtype") and dtype != jnp.float32:
    model = model.clone(dtype=dtype)
  return model


def init_variables(model, seed: int, stream: int, members: int, image_shape) -> Any:
  """Stacked initial variables of ``members`` models; member i is initialized from seed + i."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)

  def one(i):
    key = jax.random.fold_in(jax.random.key(seed + i), stream)
    return model.init({"params": key, "dropout": key}, x, train=False)

  # Initialization runs once: compile it cheaply (XLA's full optimization costs ~20 s on a CPU).
  init = jax.jit(jax.vmap(one), compiler_options={"xla_backend_optimization_level": 0})
  variables = init(jnp.arange(members))
  return {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}


def _strong(tree: Any) -> Any:
  """Drops weak types so the state keeps one signature across steps (no second compile)."""
  return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def make_state(variables: dict, tx) -> steps.TrainState:
  params = variables["params"]
  opt_state = _strong(jax.vmap(tx.init)(params))
  members = ensemble.num_members(params)
  return steps.TrainState(step=jnp.zeros((members,), jnp.int32), params=params,
                          batch_stats=variables["batch_stats"], opt_state=opt_state)


def state_variables(state: steps.TrainState) -> dict:
  return {"params": state.params, "batch_stats": state.batch_stats}


def as_flax(variables: dict) -> dict:
  return steps.variables(variables["params"], variables["batch_stats"])


# ------------------------------------------------------------------------------ prediction


def predict(applies: tuple, var_list: tuple, split: pipeline.DeviceSplit, mesh: Mesh,
            spec: steps.StepSpec, batch_size: int, augmented: bool = False, seed: int = 0,
            limit: int = 0) -> tuple[jax.Array, ...]:
  """Logits ``[members, N, C]`` of each stacked model over a whole split (or its first ``limit``)."""
  size = min(limit, split.size) if limit else split.size
  n_dev = parallel.num_shards(mesh)
  batch = max(n_dev, min(batch_size, size) // n_dev * n_dev)
  idx, _ = pipeline.eval_plan(size, batch, mesh)
  fn = _predict_fn(applies, mesh, spec, augmented, len(var_list))
  outs = [fn(var_list, split.images, idx[s], jnp.int32(seed), jnp.int32(s))
          for s in range(idx.shape[0])]
  return tuple(jnp.concatenate([o[j] for o in outs], axis=1)[:, :size]
               for j in range(len(var_list)))


@functools.lru_cache(maxsize=64)
def _predict_fn(applies: tuple, mesh: Mesh, spec: steps.StepSpec, augmented: bool, n: int):
  fn = functools.partial(steps.predict_chunk, applies=applies, spec=spec, augmented=augmented)
  return parallel.device_map(fn, mesh, in_specs=(P(), P(), P(parallel.AXIS), P(), P()),
                             out_specs=tuple(P(None, parallel.AXIS) for _ in range(n)))


@jax.jit
def _split_metrics(teacher_logprobs, student_logits, labels):
  return metrics.split_sums(teacher_logprobs, student_logits, labels,
                            jnp.ones(labels.shape[0], jnp.float32))


def split_metrics(teacher_logprobs, student_logits, labels) -> dict[str, float]:
  return metrics.finalize(jax.device_get(_split_metrics(teacher_logprobs, student_logits, labels)))


# ------------------------------------------------------------------------------ train loop


@dataclasses.dataclass
class Phase:
  """One training run of stacked members: teachers (m) or the student (1)."""
  name: str
  spec: steps.StepSpec
  split: pipeline.DeviceSplit
  epochs: int
  batch_size: int
  seed: int
  stream: int
  checkpoint_dir: Path
  checkpoint_every: int
  log_every: int
  steps_per_call: int
  eval_every: int
  evaluate: Callable[[steps.TrainState], dict[str, float]]
  teacher_vars: Any = dataclasses.field(default_factory=dict)
  last_eval: Optional[dict[str, float]] = None  # evaluation after the final epoch, if run here


def _chunk_fn(phase: Phase, mesh: Mesh, num_steps: int):
  fn = functools.partial(steps.train_chunk, spec=phase.spec, num_steps=num_steps,
                         stream=phase.stream)
  batch = P(None, None, parallel.AXIS)
  return parallel.device_map(
      fn, mesh, in_specs=(P(), P(), P(), batch, batch, P(), P(), P(), P()),
      out_specs=(P(), P()), donate_argnums=(0,))


def fit(phase: Phase, state: steps.TrainState, mesh: Mesh, writer: report.MetricWriter,
        hook: Optional[Hook] = None) -> steps.TrainState:
  """Runs (or resumes) a phase to its last epoch; checkpoints every ``checkpoint_every`` epochs."""
  members = ensemble.num_members(state.params)
  ckpt = checkpoints.Checkpointer(phase.checkpoint_dir)
  start = ckpt.latest() or 0
  if start:
    state = ckpt.restore(start, state)
    writer.forget_after(phase.name, start)
    print(f"[{phase.name}] resumed from the checkpoint after epoch {start}", flush=True)
  if start >= phase.epochs:
    ckpt.close()
    return state
  parallel.check_batch(phase.batch_size, mesh, f"{phase.name}.batch_size")
  steps_per_epoch = pipeline.steps_per_epoch(phase.split.size, phase.batch_size)
  fns: dict[int, Any] = {}
  progress = report.Progress(phase.name, phase.epochs, start, phase.split.size * members)
  last_saved = start
  for epoch in range(start, phase.epochs):
    idx, mask = pipeline.epoch_plan(phase.seed, members, epoch, phase.split.size,
                                    phase.batch_size, mesh, phase.stream)
    totals = None
    s = 0
    while s < steps_per_epoch:
      k = min(phase.steps_per_call, steps_per_epoch - s)
      if k not in fns:
        fns[k] = _chunk_fn(phase, mesh, k)
      state, sums = fns[k](state, phase.split.images, phase.split.labels, idx, mask,
                           jnp.int32(phase.seed), jnp.int32(epoch), jnp.int32(s),
                           phase.teacher_vars)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
      s += k
    totals = jax.device_get(totals)
    count = np.maximum(totals["count"], 1)
    loss = totals["loss_sum"] / count
    if not np.all(np.isfinite(loss)):
      ckpt.close()
      raise TrainingDiverged(
          f"[{phase.name}] non-finite loss in epoch {epoch + 1} (members {np.flatnonzero(~np.isfinite(loss)).tolist()}); "
          f"the last good checkpoint (epoch {last_saved}) is kept in {phase.checkpoint_dir}; "
          f"lower {phase.name}.optim.lr or add {phase.name}.optim.grad_clip")
    done = epoch + 1
    stats = {"loss": float(loss.mean()),
             ("train_agree" if phase.spec.teacher_apply else "train_acc"):
                 float(100 * (totals["match"] / count).mean())}
    record = dict(stats)
    if done % phase.eval_every == 0 or done == phase.epochs:
      evals = phase.evaluate(state)
      if done == phase.epochs:
        phase.last_eval = evals
      record.update(evals)
      stats.update({k: v for k, v in evals.items() if k in _SHOWN})
    writer.write(phase.name, done, record)
    if done % phase.log_every == 0 or done == phase.epochs or done == start + 1:
      progress.log(epoch, stats)
    if done % phase.checkpoint_every == 0 or done == phase.epochs:
      ckpt.save(done, state)
      last_saved = done
      if hook is not None:
        hook(phase.name, done)
  ckpt.close()
  return state


_SHOWN = ("test_acc", "test_agreement", "test_kl", "teacher_test_acc")


# -------------------------------------------------------------------------------- teachers


@dataclasses.dataclass
class Teacher:
  model: Any
  final: dict      # stacked variables {"params", "batch_stats"} of the members in use
  initial: dict    # their initial variables (for "init from the teacher's initial weights")
  entry: Path
  trained_now: bool


def _teacher_spec(config: ConfigDict, model, data: Data, tx) -> steps.StepSpec:
  return steps.StepSpec(apply_fn=model.apply, tx=tx,
                        augment=augment_lib.make_augment(config.teacher.augment),
                        normalize=data.normalize, objective="ce")


def teacher_store(config: ConfigDict, workdir: Path) -> Path:
  return Path(config.teacher.store) if config.teacher.store else Path(workdir) / "teachers"


def get_teacher(config: ConfigDict, workdir: Path, data: Data, mesh: Mesh,
                writer: report.MetricWriter, hook: Optional[Hook] = None) -> Teacher:
  """Loads the teacher ensemble from the store, or trains it (resumably) and stores it."""
  t = config.teacher
  members = int(t.ensemble_size)
  key = teacher_key(config)
  store = teacher_store(config, workdir)
  model = build_model(t.model, data.num_classes, config)
  found = checkpoints.find_teacher(store, key, members)
  if found is not None:
    stored_m = int(json.loads((found / "teacher.json").read_text())["members"])
    like = init_variables(model, t.seed, TEACHER_STREAM, stored_m, data.image_shape)
    final, initial, _ = checkpoints.load_teacher(found, {"final": like, "initial": like})
    print(f"[teacher] reusing {stored_m}-member ensemble from {found} (first {members} used)",
          flush=True)
    take = lambda tree: ensemble.take_members(tree, members)
    return Teacher(model, take(final), take(initial), found, trained_now=False)

  entry = checkpoints.teacher_entry(store, key, members)
  entry.mkdir(parents=True, exist_ok=True)
  (entry / "config.json").write_text(to_json(config.teacher))
  initial = jax.device_get(init_variables(model, t.seed, TEACHER_STREAM, members,
                                          data.image_shape))
  spe = pipeline.steps_per_epoch(data.teacher.size, t.batch_size)
  tx = optim.make_optimizer(t.optim, spe * t.epochs, spe)
  spec = _teacher_spec(config, model, data, tx)
  eval_spec = spec
  labels = data.test.labels[: data.test.size]

  def evaluate(state: steps.TrainState) -> dict[str, float]:
    (logits,) = predict((model.apply,), (as_flax(state_variables(state)),), data.test, mesh,
                        eval_spec, config.run.eval_batch_size)
    lp = ensemble.ensemble_logprobs(logits)
    m = split_metrics(lp, lp, labels)
    member_acc = jnp.mean(jnp.argmax(logits, -1) == labels[None], axis=1) * 100
    return {"teacher_test_acc": m["teacher_acc"], "teacher_test_nll": m["teacher_nll"],
            "teacher_test_ece": m["teacher_ece"],
            "member_test_acc_mean": float(member_acc.mean())}

  phase = Phase(name="teacher", spec=spec, split=data.teacher, epochs=t.epochs,
                batch_size=t.batch_size, seed=t.seed, stream=TEACHER_STREAM,
                checkpoint_dir=entry / "ckpt", checkpoint_every=config.run.checkpoint_every,
                log_every=config.run.log_every, steps_per_call=config.run.steps_per_call,
                eval_every=t.eval_every, evaluate=evaluate)
  state = parallel.replicate(make_state(initial, tx), mesh)
  print(f"[teacher] training {members} × {t.model.name} on {data.teacher.size} images "
        f"for {t.epochs} epochs → {entry}", flush=True)
  state = fit(phase, state, mesh, writer, hook)
  final = jax.device_get(state_variables(state))
  checkpoints.save_teacher(entry, final, initial,
                           {"key": key, "members": members,
                            "final_eval": phase.last_eval or evaluate(state)})
  return Teacher(model, final, initial, entry, trained_now=True)


# --------------------------------------------------------------------------------- student


def student_init(config: ConfigDict, model, teacher: Teacher, data: Data) -> tuple[dict, float]:
  """Initial student variables and the learning rate to start from (PAPER.md, interpolated init)."""
  d = config.distill
  random = init_variables(model, config.seed, STUDENT_STREAM, 1, data.image_shape)
  lr = float(d.optim.lr)
  if d.init.mode == "random":
    return random, lr
  pick = lambda tree: jax.tree.map(lambda a: a[d.init.member: d.init.member + 1], tree)
  if d.init.member >= ensemble.num_members(teacher.final["params"]):
    raise ConfigError(f"distill.init.member={d.init.member} but the teacher has "
                      f"{ensemble.num_members(teacher.final['params'])} members")
  if d.init.mode == "teacher_initial":
    source = pick(teacher.initial)
    interpolate.interpolate(source, random, 1.0)  # same-architecture check with a clear error
    return jax.tree.map(jnp.asarray, source), lr
  mixed = interpolate.interpolate(pick(teacher.final), random, d.init.lam)
  if d.init.refresh_bn and jax.tree.leaves(mixed["batch_stats"]):
    mixed = refresh_bn(model, mixed, data, config)
  if d.init.scale_lr:
    lr = interpolate.scaled_lr(lr, d.init.lam, d.optim.lr_min)
  return mixed, lr


def refresh_bn(model, variables: dict, data: Data, config: ConfigDict) -> dict:
  """One train-mode pass over the (clean) distillation data to refit BatchNorm statistics."""
  local = model.clone(bn_axis_name=None)
  single = jax.tree.map(lambda a: a[0], variables)
  bs = config.distill.batch_size
  x = data.host.distill_x
  batches = (data.normalize(jnp.asarray(x[i:i + bs], jnp.float32) / 255.0)
             for i in range(0, len(x), bs))
  new = interpolate.refresh_batch_stats(local.apply, as_flax(single), batches)
  return jax.tree.map(lambda a: jnp.asarray(a)[None],
                      {"params": new["params"], "batch_stats": new["batch_stats"]})


def distill(config: ConfigDict, workdir: Path, data: Data, teacher: Teacher, mesh: Mesh,
            writer: report.MetricWriter, hook: Optional[Hook] = None) -> dict[str, Any]:
  """Distills one student from the (first k members of the) teacher; returns final metrics."""
  d = config.distill
  k = int(d.teacher_members) or ensemble.num_members(teacher.final["params"])
  t_vars = parallel.replicate(as_flax(ensemble.take_members(teacher.final, k)), mesh)
  model = build_model(d.model, data.num_classes, config)
  init_vars, lr = student_init(config, model, teacher, data)
  init_vars = jax.device_get(init_vars)  # host copy: the device state is donated to the steps
  line_search = optim.needs_value_fn(d.optim)
  batch_size = int(d.batch_size)
  if line_search:  # full batch, rounded up to the device count
    n_dev = parallel.num_shards(mesh)
    batch_size = -(-data.distill.size // n_dev) * n_dev
  spe = pipeline.steps_per_epoch(data.distill.size, batch_size)
  opt_cfg = d.optim
  if line_search:
    opt_cfg = ConfigDict(d.optim.to_dict())
    opt_cfg.weight_decay = 0.0  # put in the loss so the line search sees it
  tx = optim.make_optimizer(opt_cfg, spe * d.epochs, spe, lr=lr)
  spec = steps.StepSpec(apply_fn=model.apply, tx=tx, augment=augment_lib.make_augment(d.augment),
                        normalize=data.normalize, objective=d.loss, temperature=float(d.temperature),
                        alpha=float(d.alpha), teacher_apply=teacher.model.apply,
                        line_search=line_search,
                        l2=float(d.optim.weight_decay) if line_search else 0.0)
  clean = dataclasses.replace(spec, augment=augment_lib.make_augment(""))
  eb = config.run.eval_batch_size
  # The teacher is frozen: its test and clean-train predictions are computed once.
  (t_test,) = predict((teacher.model.apply,), (t_vars,), data.test, mesh, clean, eb)
  t_test_lp = ensemble.ensemble_logprobs(t_test)
  train_limit = int(d.train_eval_size)
  (t_train,) = predict((teacher.model.apply,), (t_vars,), data.distill, mesh, clean, eb,
                       limit=train_limit)
  t_train_lp = ensemble.ensemble_logprobs(t_train)
  test_labels = data.test.labels[: data.test.size]
  n_train = t_train_lp.shape[0]
  train_labels = data.distill.labels[:n_train]

  def evaluate(state: steps.TrainState, final: bool = False) -> dict[str, float]:
    s_vars = as_flax(state_variables(state))
    (s_test,) = predict((model.apply,), (s_vars,), data.test, mesh, clean, eb)
    (s_train,) = predict((model.apply,), (s_vars,), data.distill, mesh, clean, eb,
                         limit=train_limit)
    out = {}
    for prefix, m in (("test", split_metrics(t_test_lp, s_test[0], test_labels)),
                      ("train", split_metrics(t_train_lp, s_train[0], train_labels))):
      out.update({f"{prefix}_{key}": v for key, v in m.items()})
    if d.augment:
      t_aug, s_aug = predict((teacher.model.apply, model.apply), (t_vars, s_vars), data.distill,
                             mesh, spec, eb, augmented=True, seed=config.seed, limit=train_limit)
      m = split_metrics(ensemble.ensemble_logprobs(t_aug), s_aug[0], train_labels)
      out.update({f"train_aug_{key}": v for key, v in m.items()})
    return out

  phase = Phase(name="distill", spec=spec, split=data.distill, epochs=d.epochs,
                batch_size=batch_size, seed=config.seed, stream=STUDENT_STREAM,
                checkpoint_dir=Path(workdir) / "checkpoints" / "student",
                checkpoint_every=config.run.checkpoint_every, log_every=config.run.log_every,
                steps_per_call=config.run.steps_per_call, eval_every=d.eval_every,
                evaluate=evaluate, teacher_vars=t_vars)
  state = parallel.replicate(make_state(init_vars, tx), mesh)
  print(f"[distill] {k}-member {teacher.model.__class__.__name__} teacher → "
        f"{d.model.name} student on {data.distill.size} images for {d.epochs} epochs "
        f"(τ={d.temperature}, α={d.alpha}, augment={d.augment or 'none'!r}, init={d.init.mode})",
        flush=True)
  state = fit(phase, state, mesh, writer, hook)
  final = dict(phase.last_eval) if phase.last_eval is not None else evaluate(state)
  final.update(_analyses(config, workdir, data, teacher, model, init_vars, state))
  return final


def _analyses(config: ConfigDict, workdir: Path, data: Data, teacher: Teacher, model,
              init_vars: dict, state: steps.TrainState) -> dict[str, Any]:
  """CKA and the loss plane, when the config asks for them (kd_jax/analysis.py)."""
  a, d = config.analysis, config.distill
  out: dict[str, Any] = {}
  if not (a.cka or a.plane):
    return out
  from kd_jax import analysis  # matplotlib only when needed
  member = int(d.init.member)
  t_single = as_flax(jax.tree.map(lambda x: jnp.asarray(x)[member], teacher.final))
  final = jax.device_get(state_variables(state))
  s_single = as_flax(jax.tree.map(lambda x: jnp.asarray(x)[0], final))
  if a.cka:
    x = analysis.inputs(data.host.test_x, int(a.cka_examples), data.normalize)
    out["cka"] = analysis.cka(teacher.model, t_single, model, s_single, x, a.cka_kernel)
    print(f"[analysis] CKA per stage: {out['cka']}", flush=True)
  if a.plane:
    x = analysis.inputs(data.host.distill_x, int(a.plane_examples), data.normalize)
    k = int(d.teacher_members) or ensemble.num_members(teacher.final["params"])
    t_vars = as_flax(ensemble.take_members(teacher.final, k))
    t_lp = teacher_logprobs_of(teacher.model, t_vars, x)
    anchors = (jax.tree.map(lambda v: jnp.asarray(v)[member], teacher.final["params"]),
               jax.tree.map(lambda v: jnp.asarray(v)[0], init_vars["params"]),
               jax.tree.map(lambda v: jnp.asarray(v)[0], final["params"]))
    local = model.clone(bn_axis_name=None) if hasattr(model, "bn_axis_name") else model
    bs = jax.tree.map(lambda v: jnp.asarray(v)[0], final["batch_stats"])
    out["plane"] = analysis.plane(local, bs, anchors, x, t_lp, float(d.temperature), a,
                                  Path(workdir) / "plane")
    print(f"[analysis] plane written to {Path(workdir) / 'plane'}", flush=True)
  return out


def teacher_logprobs_of(teacher_model, stacked_vars: dict, x: jax.Array,
                        batch: int = 500) -> jax.Array:
  """Ensemble log-probabilities on host-side inputs (outside the device mesh)."""
  local = teacher_model.clone(bn_axis_name=None) if hasattr(teacher_model, "bn_axis_name") \
      else teacher_model
  fn = jax.jit(lambda v, xb: steps.teacher_logprobs(local.apply, v, xb))
  return jnp.concatenate([fn(stacked_vars, x[i:i + batch]) for i in range(0, x.shape[0], batch)])


# ------------------------------------------------------------------------------ experiment


def _check_workdir(workdir: Path) -> None:
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    probe = workdir / ".write_test"
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise ConfigError(f"--workdir={workdir} is not writable ({e.strerror}); "
                      "pass a folder you can write to") from None


def run(config: ConfigDict, workdir: str | Path, hook: Optional[Hook] = None) -> dict[str, Any]:
  """The whole experiment; returns (and writes) the results dict."""
  t0 = time.time()
  workdir = Path(workdir)
  validate(config)
  _check_workdir(workdir)
  (workdir / "config.json").write_text(to_json(config))
  mesh = parallel.make_mesh(config.run.num_devices)
  host = load_splits(config)
  print(f"[data] {splits_lib.describe(host)}", flush=True)
  data = put_data(host, config, mesh)
  writer = report.MetricWriter(workdir, tensorboard=config.run.tensorboard)
  try:
    teacher = get_teacher(config, workdir, data, mesh, writer, hook)
    final = distill(config, workdir, data, teacher, mesh, writer, hook)
  finally:
    writer.close()
  results = {
      "name": config.name,
      "test": _split_of(final, "test"),
      "train": _split_of(final, "train"),
      "train_aug": _split_of(final, "train_aug") or None,
      "cka": final.get("cka"),
      "plane": final.get("plane"),
      "teacher_entry": str(teacher.entry),
      "teacher_members_used": int(config.distill.teacher_members or config.teacher.ensemble_size),
      "sizes": host.info,
      "devices": [str(d) for d in mesh.devices.flat],
      "wall_time_s": round(time.time() - t0, 1),
  }
  (workdir / "results.json").write_text(json.dumps(results, indent=2, default=_json_default))
  rows = [("test", results["test"]), ("distill data", results["train"])]
  if results["train_aug"]:
    rows.append(("distill data (augmented)", results["train_aug"]))
  print(report.table(rows), flush=True)
  print(f"wrote {workdir / 'results.json'} ({results['wall_time_s']:.0f} s)", flush=True)
  return results


def _split_of(final: dict[str, float], prefix: str) -> dict[str, float]:
  p = prefix + "_"
  return {k[len(p):]: v for k, v in final.items()
          if k.startswith(p) and not (prefix == "train" and k.startswith("train_aug_"))
          and not isinstance(v, dict)}


def _json_default(o: Any) -> Any:
  if isinstance(o, (np.integer,)):
    return int(o)
  if isinstance(o, (np.floating,)):
    return float(o)
  if isinstance(o, np.ndarray):
    return o.tolist()
  return str(o)
