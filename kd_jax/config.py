"""The experiment schema: every knob the code reads, with its default, in one place.

Figure configs start from :func:`base_config` and change values; they never add keys, so a
misspelt override (``--config.distill.temprature=2``) is an error that names the key.
:func:`validate` checks values up front so a bad one fails in the first second, not after the
teacher has trained.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from ml_collections import ConfigDict

from kd_jax.errors import ConfigError


def lookup(cfg: Any, key: str, default: Any = None) -> Any:
  """``key`` of a ConfigDict, an object or a plain mapping; absent means ``default``. Data
  loaders take any of the three, so tests and notebooks can pass a dict."""
  if isinstance(cfg, dict):
    return cfg.get(key, default)
  return getattr(cfg, key, default)


def optim_config(**overrides: Any) -> ConfigDict:
  """optax optimizer + schedule (see kd_jax/optim.py)."""
  c = ConfigDict(dict(
      name="sgd",           # sgd | adam | lbfgs | lbfgs_backtracking (kd_jax/optim.py)
      lr=0.1,
      momentum=0.9,         # sgd
      nesterov=False,       # sgd
      b1=0.9, b2=0.999, eps=1e-8,  # adam
      weight_decay=1e-4,    # coupled L2 (added to the gradient), as torch.optim does
      schedule="cosine",    # cosine | constant
      lr_min=0.0,           # cosine floor
      warmup_epochs=0,
      grad_clip=0.0,        # global-norm clip; 0 = off
      lbfgs_memory=10,      # lbfgs history size
  ))
  c.update(overrides)
  return c


def model_config(name: str, **options: Any) -> ConfigDict:
  """A model by registry name plus its constructor options (validated by get_model)."""
  return ConfigDict(dict(name=name, **options))


def data_config() -> ConfigDict:
  """Where the examples come from and how they are split (kd_jax/data/)."""
  return ConfigDict(dict(
    source="mnist_embedded",  # mnist_embedded | tfds | image_folder; text: tfds_text |
                              # text_folder | rotten_tomatoes
    pipeline="device",        # device (split resident on the devices) | streamed (grain, host)
    name="",                  # tfds name
    path="",                  # image folder or tar
    data_dir="",              # tfds data_dir
    cache_dir="",             # decoded image-folder cache ('' = ~/.cache/kd_jax)
    image_size=0,             # > 0: images stay files, decoded per step by the streamed
                              # pipeline: random-resized crop + flip to this size (train),
                              # resize + center crop (eval). ImageNet: 224
    eval_resize=0,            # eval: shorter side resized to this first (0 = image_size·256/224)
    crop_min_scale=0.08,      # train: smallest random-resized-crop area fraction
    split_seed=0,
    test_size=1000,           # sources without a test split: stratified test carved from train
    teacher_pool="train",     # train | d0
    teacher_subset=0,         # stratified subset of the teacher pool; 0 = all
    distill_pool="rest",      # rest | teacher | train | d0 | d1
    distill_subset=0,         # stratified subset of the distill pool; 0 = all
    max_test=0,               # stratified subset of test; 0 = all
    normalization="unit_cube",  # unit_cube | zscore | imagenet (fixed ImageNet mean, std)
    emnist_transposed=False,  # tfds emnist (also as data.ood) as the official code fed it: H↔W
    ood=ConfigDict(dict(source="", name="", path="", num=0)),
    text=ConfigDict(dict(max_len=100, min_freq=10)),  # text sources: tokens kept, vocab cut
  ))


def teacher_config() -> ConfigDict:
  """The teacher ensemble and its training recipe (kd_jax/teachers.py)."""
  return ConfigDict(dict(
    model=model_config("lenet5"),
    ensemble_size=1,
    seed=0,
    epochs=100,
    batch_size=128,
    optim=optim_config(),
    augment="",
    eval_every=10,           # epochs between test evaluations
    evals=("test", "members", "running"),  # kd_jax/evaluators.py TEACHER_EVALS
    store="",                # teacher store folder ('' = <workdir>/teachers); shared across runs
    keep_every=0,            # keep the checkpoint of every k-th epoch (the teacher's trajectory,
                             # read by distill.trajectory); 0 = only the latest
  ))


def distill_config() -> ConfigDict:
  """The student, its loss, recipe and initialization (kd_jax/student.py)."""
  return ConfigDict(dict(
    model=model_config("lenet5"),
    teacher_members=0,       # use the first k members of the teacher ensemble; 0 = all
    epochs=100,
    batch_size=128,
    optim=optim_config(lr=0.05, nesterov=True, lr_min=1e-6),
    augment="",
    temperature=4.0,
    alpha=0.0,
    loss="kd",               # kd | kl | reverse_kl | symmetric_kl | logit_mse | brier (losses.py)
    eval_every=10,
    evals=("test", "train", "train_aug", "synth", "running"),  # evaluators.DISTILL_EVALS
    train_eval_size=0,       # distillation images used for train agreement; 0 = all
    synth_ratio=0.0,         # fraction of each batch that is fresh generator samples (the
                             # GAN of section gan, kd_jax/synthetic.py); 0 = real data only
    synth_temp=1.0,          # teacher/student temperature on the synthetic rows
    init=ConfigDict(dict(
        mode="random",       # random | interpolate | teacher_initial | anneal (remedies.py)
        lam=0.0,             # θ = λ·θ_teacher + (1-λ)·θ_random
        member=0,            # which teacher member to start from
        refresh_bn=True,     # train-mode pass over the distillation data after interpolating
        scale_lr=True,       # lr·(1-λ), floored at optim.lr_min (interpolate mode)
        anneal_until=0.5,    # anneal mode: fraction of training at which λ reaches 0
    )),
    trajectory=0,            # k > 0: distil from k checkpoints along the teacher's training,
                             # in order (needs teacher.keep_every); kd_jax/remedies.py
    polish=ConfigDict(dict(  # after the run: full-batch second-order polish (0 epochs = none)
        epochs=0,
        optim=optim_config(name="lbfgs", lr=1.0, schedule="constant", lr_min=0.0),
    )),
  ))


def gan_config() -> ConfigDict:
  """The SN-GAN whose samples are extra distillation data (kd_jax/gans.py); official recipe."""
  return ConfigDict(dict(
    model=model_config("sngan", z_dim=128, gen_width=256, disc_width=128),
    seed=0,
    gen_steps=100_000,       # generator updates
    disc_steps=5,            # discriminator updates per generator update
    batch_size=128,
    lr=2e-4,                 # Adam, both networks; decayed linearly to lr_min over gen_steps
    lr_min=1e-6,
    b1=0.0, b2=0.9,
    hflip=True,              # random horizontal flips of the real images
    steps_per_call=10,       # generator updates fused in one jitted lax.scan
    eval_every=1000,         # generator updates between evaluations (losses, sample grid)
    checkpoint_every=1000,   # generator updates between checkpoints
    eval_samples=1000,       # samples for the teacher-based quality numbers
    inception_path="",       # local FID Inception weights (.npz/.pth, kd_jax/inception_weights.py)
                             # for FID/IS at every evaluation; '' = skip them
    fid_samples=10_000,      # generated images for FID/IS, and the most real images for FID
    fid_batch=50,            # images per Inception forward (pytorch-fid's default; more on a GPU)
    store="",                # GAN store folder ('' = <workdir>/gans); shared across runs
  ))


def run_config() -> ConfigDict:
  """How a run executes: devices, compilation, checkpoints, logging."""
  return ConfigDict(dict(
    num_devices=0,           # 0 = all local devices
    steps_per_call=1,        # steps fused in one jitted lax.scan (1 on CPU; 10-100 on GPU/TPU)
    checkpoint_every=5,      # epochs between student checkpoints
    log_every=1,             # epochs between progress lines
    eval_batch_size=1000,
    dtype="float32",         # compute dtype: float32 | bfloat16
    member_mode="auto",      # how stacked ensemble members run: auto | vmap | unroll | map
    fold_teacher_bn=False,   # distill with the frozen teacher's BatchNorms folded into its convs
    tensorboard=True,
  ))


def analysis_config() -> ConfigDict:
  """Post-training instruments (kd_jax/analysis.py)."""
  return ConfigDict(dict(
    cka=False,               # CKA between teacher and student stage outputs (Table 1)
    cka_kernel="linear",     # linear | rbf (standard CKA) | official (the paper's Table 1 computation)
    cka_examples=1000,       # test images used
    plane=False,             # loss/agreement plane through teacher, student init, final (Fig 6c)
    plane_points=21,         # grid points per axis
    plane_margin=0.3,        # grid margin around the three anchors (fraction of their extent)
    plane_examples=1000,     # distillation images the plane is evaluated on
    plane_chunk=8,           # grid points evaluated together (vmapped)
    line=False,              # loss/agreement on the straight path final student → teacher
    line_points=21,          # points on that path (on plane_examples distillation images)
  ))


def base_config() -> ConfigDict:
  """Every key the code reads, with its default; figure configs change values, never keys."""
  c = ConfigDict()
  c.name = "experiment"
  c.seed = 0  # student seed: one trial of an arm
  c.data = data_config()
  c.teacher = teacher_config()
  c.distill = distill_config()
  c.gan = gan_config()
  c.run = run_config()
  c.analysis = analysis_config()
  return c


def sweep_config() -> ConfigDict:
  """A figure's sweep, apart from its trial config (``get_sweep(arg)`` in a figure file)."""
  return ConfigDict(dict(
      arms=(),            # ((arm_name, {dotted.key: value, ...}), ...); () = one arm "default"
      seeds=(0,),         # student seeds (config.seed) per arm; a trial = arm × seed
      x_key="",           # dotted key whose numeric value is the plot's x axis ('' = bar chart)
      x_label="",
      series_key="",      # with x_key: dotted key whose value splits the plot into lines
      metrics=("test/agreement", "test/student_acc"),  # "split/metric": plotted, shown first
      paper=(),           # ((arm_name, {"split/metric": value or "≈value"}), ...) from docs/paper.md
      paper_dataset="",   # the paper's dataset when the trials use another (labels its markers)
      title="",
  ))


def lock(config: ConfigDict) -> ConfigDict:
  config.lock()
  return config


def teacher_key(config: ConfigDict) -> str:
  """Identity of a teacher ensemble: the data it sees and its recipe, not the ensemble size.

  Members are independent (own seed, own data order), so an ensemble of 5 holds the ensemble
  of 3; arms that differ only in distillation settings share one trained teacher.
  """
  d = config.data
  teacher = config.teacher.to_dict()
  teacher.pop("ensemble_size")
  teacher.pop("eval_every")
  teacher.pop("evals")
  teacher.pop("store")
  teacher.pop("keep_every")   # what is kept along the way, not what is trained
  ident = dict(
      data={k: d[k] for k in ("source", "name", "path", "data_dir", "split_seed", "test_size",
                              "teacher_pool", "teacher_subset", "normalization",
                              "emnist_transposed")},
      teacher=teacher)
  from kd_jax.data.text import TEXT_SOURCES  # local: keep config importable without JAX work
  if d.source in TEXT_SOURCES:  # only text keys change with the vocabulary
    ident["data"]["text"] = d.text.to_dict()
  if d.image_size:  # only images decoded per step have these keys (older keys stay the same)
    ident["data"].update({k: d[k] for k in ("image_size", "eval_resize", "crop_min_scale")})
  blob = json.dumps(ident, sort_keys=True, default=str)
  return hashlib.sha256(blob.encode()).hexdigest()[:12]


def to_json(config: ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def validate(config: ConfigDict) -> None:
  """Checks values that would otherwise fail late or silently; raises ConfigError."""
  # local imports: keep config importable without JAX work
  from kd_jax import ensemble, evaluators, losses, optim, remedies
  from kd_jax.data import augment
  from kd_jax.data.pipelines import PIPELINES
  from kd_jax.data.sources import SOURCES
  from kd_jax.models import MODELS

  SOURCES.check(config.data.source)
  if config.data.source == "tfds" and config.data.path:
    raise ConfigError(f"data.path={config.data.path!r} is read by data.source='image_folder' "
                      "only, but data.source='tfds'; add --config.data.source=image_folder "
                      "(or drop data.path)")
  PIPELINES.check(config.data.pipeline)
  if config.data.image_size and config.data.pipeline != "streamed":
    raise ConfigError(f"data.image_size={config.data.image_size} decodes image files per step, "
                      "which only the streamed pipeline does; add "
                      "--config.data.pipeline=streamed")
  augment.check_normalization(config.data.normalization)
  for name in config.teacher.evals:
    evaluators.TEACHER_EVALS.check(name)
  for name in config.distill.evals:
    evaluators.DISTILL_EVALS.check(name)
  for section in ("teacher", "distill"):
    s = config[section]
    MODELS.check(s.model.name, f"{section}.model.name")
    optim.check(s.optim, f"{section}.optim")
    augment.parse_policy(s.augment)
    for key in ("epochs", "batch_size"):
      if int(s[key]) <= 0:
        raise ConfigError(f"{section}.{key}={s[key]} must be a positive integer")
  if config.teacher.ensemble_size < 1:
    raise ConfigError(f"teacher.ensemble_size={config.teacher.ensemble_size} must be >= 1")
  if not 0 <= config.distill.teacher_members <= config.teacher.ensemble_size:
    raise ConfigError(f"distill.teacher_members={config.distill.teacher_members} must be in "
                      f"0..teacher.ensemble_size={config.teacher.ensemble_size} (0 = all)")
  losses.check_temperature(config.distill.temperature)
  losses.check_alpha(config.distill.alpha)
  losses.DISTILL_LOSSES.check(config.distill.loss)
  remedies.check(config.distill)
  optim.check(config.distill.polish.optim, "distill.polish.optim")
  if config.distill.init.mode not in ("random", "interpolate", "teacher_initial", "anneal"):
    raise ConfigError(f"distill.init.mode={config.distill.init.mode!r} is not known; choose one of: "
                      "random, interpolate, teacher_initial, anneal")
  if not 0.0 <= config.distill.init.lam <= 1.0:
    raise ConfigError(f"distill.init.lam={config.distill.init.lam} must be in [0, 1]")
  a = config.analysis
  if (a.plane or a.line) and config.teacher.model.to_dict() != config.distill.model.to_dict():
    raise ConfigError("analysis.plane/analysis.line put the teacher into the student's weight "
                      "space; they need distill.model equal to teacher.model")
  from kd_jax import synthetic
  from kd_jax.models.sngan import GAN_MODELS
  synthetic.check(config)
  if config.distill.synth_ratio > 0:
    GAN_MODELS.check(config.gan.model.name)
    for key in ("gen_steps", "disc_steps", "batch_size", "steps_per_call", "eval_every",
                "checkpoint_every"):
      if int(config.gan[key]) <= 0:
        raise ConfigError(f"gan.{key}={config.gan[key]} must be a positive integer")
    if optim.needs_value_fn(config.distill.optim):
      raise ConfigError("distill.synth_ratio > 0 needs a minibatch optimizer; L-BFGS fits the "
                        "whole distillation set at once: set distill.synth_ratio=0")
  if config.gan.inception_path:
    from kd_jax import fid
    fid.check(config)
  if config.analysis.cka_kernel not in ("linear", "rbf", "official"):
    raise ConfigError(f"analysis.cka_kernel={config.analysis.cka_kernel!r} is not known; "
                      "choose linear, rbf or official")
  if config.run.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"run.dtype={config.run.dtype!r} is not known; choose float32 or bfloat16")
  ensemble.check_member_mode(config.run.member_mode)
  if not isinstance(config.run.fold_teacher_bn, bool):
    raise ConfigError(f"run.fold_teacher_bn={config.run.fold_teacher_bn!r} must be True or False")
  if config.run.steps_per_call < 1:
    raise ConfigError(f"run.steps_per_call={config.run.steps_per_call} must be >= 1")
  if config.run.checkpoint_every < 1:
    raise ConfigError(f"run.checkpoint_every={config.run.checkpoint_every} must be >= 1")
