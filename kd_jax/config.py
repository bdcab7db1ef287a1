"""The experiment schema: every knob the code reads, with its default, in one place.

Figure configs start from :func:`base_config` and change values; they never add keys, so a
misspelt override (``--config.distill.temprature=2``) is an error that names the key.
``NOT_IDENTITY`` says, next to the keys, which of them do not change a run's numbers: the run
directory check, the teacher key and a sweep's trial identity all read it
(``kd_jax.runner.identity``); ``kd_jax.runner.validate`` checks values up front.
"""
from __future__ import annotations

import json
from typing import Any

from ml_collections import ConfigDict

#: Keys that change how a run goes or where it writes, not what it computes: a finished run (or
#: a stored teacher) stays valid when they change (a bigger shared ensemble, another machine's
#: device count, another evaluation cadence). Every identity in kd_jax reads this one list.
NOT_IDENTITY = ("data.pipeline", "data.cache_dir",
                "teacher.store", "teacher.evals", "teacher.ensemble_size", "teacher.eval_every",
                "teacher.keep_every",
                "distill.evals", "distill.eval_every",
                "run.num_devices", "run.steps_per_call", "run.checkpoint_every", "run.log_every",
                "run.eval_batch_size", "run.tensorboard",
                "gan.store", "gan.eval_every", "gan.checkpoint_every", "gan.steps_per_call",
                "gan.eval_samples", "gan.inception_path", "gan.fid_samples", "gan.fid_batch",
                "evals")

def optim_config(**overrides: Any) -> ConfigDict:
  """optax optimizer + schedule (see kd_jax/train/optim.py)."""
  c = ConfigDict(dict(
      name="sgd",           # sgd | adam | lbfgs | lbfgs_backtracking (kd_jax/train/optim.py)
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
    source="mnist_embedded",  # mnist_embedded | tfds | image_folder | mnist1d; text:
                              # tfds_text | text_folder | rotten_tomatoes
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
    distill_val=0,            # stratified examples of that set held out of distillation as the
                              # "val" split (tuning without the test set); 0 = none
    max_test=0,               # stratified subset of test; 0 = all
    normalization="unit_cube",  # unit_cube | zscore | imagenet (fixed ImageNet mean, std)
    emnist_transposed=False,  # tfds emnist (also as data.ood) as the official code fed it: H↔W
    ood=ConfigDict(dict(source="", name="", path="", num=0)),
    text=ConfigDict(dict(max_len=100, min_freq=10)),  # text sources: tokens kept, vocab cut
    # source mnist1d: the generator's options (kd_jax/data/mnist1d_source.py; package
    # defaults): 5,000 signals, 80% train, the rest test; noise scales; generator seed
    mnist1d=ConfigDict(dict(num_samples=5000, train_split=0.8, iid_noise_scale=0.02,
                            corr_noise_scale=0.25, seed=42)),
  ))


def teacher_config() -> ConfigDict:
  """The teacher ensemble and its training recipe (kd_jax/runner/teachers.py)."""
  return ConfigDict(dict(
    model=model_config("lenet5"),
    ensemble_size=1,
    seed=0,
    epochs=100,
    batch_size=128,
    optim=optim_config(),
    augment="",
    eval_every=10,           # epochs between test evaluations
    evals=("test", "members", "running"),  # kd_jax/train/evaluators.py TEACHER_DEFAULTS
    store="",                # teacher store folder ('' = <workdir>/teachers); shared across runs
    keep_every=0,            # keep the checkpoint of every k-th epoch (the teacher's trajectory,
                             # read by distill.trajectory); 0 = only the latest
  ))


def distill_config() -> ConfigDict:
  """The student, its loss, recipe and initialization (kd_jax/runner/student.py)."""
  return ConfigDict(dict(
    model=model_config("lenet5"),
    teacher_members=0,       # use the first k members of the teacher ensemble; 0 = all
    epochs=100,
    batch_size=128,
    optim=optim_config(lr=0.05, nesterov=True, lr_min=1e-6),
    augment="",
    temperature=4.0,
    temperature_end=0.0,     # > 0: τ moves linearly from temperature to this over training
                             # (a temperature curriculum, kd_jax/runner/remedies.py); 0 = fixed
    alpha=0.0,
    loss="kd",               # kd | kl | reverse_kl | symmetric_kl | logit_mse | brier (losses.py)
    eval_every=10,
    evals=("test", "distill", "val", "distill_aug", "synth", "running"),  # evaluators.DISTILL_DEFAULTS
    train_eval_size=0,       # distillation images used for train agreement; 0 = all
    synth_ratio=0.0,         # fraction of each batch that is fresh generator samples (the
                             # GAN of section gan, kd_jax/train/synthetic.py); 0 = real data only
    synth_temp=1.0,          # teacher/student temperature on the synthetic rows
    init=ConfigDict(dict(
        mode="random",       # random | interpolate | teacher_initial | anneal (remedies.py)
        lam=0.0,             # θ = λ·θ_teacher + (1-λ)·θ_random
        member=0,            # which teacher member to start from
        refresh_bn=True,     # train-mode pass over the distillation data after interpolating
        scale_lr=True,       # lr·(1-λ), floored at optim.lr_min (interpolate mode)
        anneal_until=0.5,    # anneal mode: fraction of training at which λ reaches 0
    )),
    sam_rho=0.0,             # > 0: sharpness-aware steps of radius ρ (SAM, two gradients a step;
                             # kd_jax/runner/remedies.py); 0 = plain steps
    trajectory=0,            # k > 0: distil from k checkpoints along the teacher's training,
                             # in order (needs teacher.keep_every); kd_jax/runner/remedies.py
    polish=ConfigDict(dict(  # after the run: full-batch second-order polish (0 epochs = none)
        epochs=0,
        optim=optim_config(name="lbfgs", lr=1.0, schedule="constant", lr_min=0.0),
    )),
  ))


def gan_config() -> ConfigDict:
  """The SN-GAN whose samples are extra distillation data (kd_jax/runner/gans.py); official recipe."""
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
    inception_path="",       # local FID Inception weights (.npz/.pth, kd_jax/runner/inception_weights.py)
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
  """Post-training instruments (kd_jax/runner/analysis.py)."""
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
  # Evaluations besides the teacher.evals/distill.evals names, one entry each (results key →
  # dict(phase="teacher"|"distill", type=..., split=..., pred="clean"|"augmented", every=0));
  # kd_jax/train/evaluators.py. A figure config adds entries here (the one section that takes
  # new keys): c.evals.test_aug = dict(phase="distill", type="fidelity", split="test",
  # pred="augmented", every=5).
  c.evals = ConfigDict()
  return c


def sweep_config() -> ConfigDict:
  """A figure's sweep, apart from its trial config (``get_sweep(arg)`` in a figure file)."""
  return ConfigDict(dict(
      arms=(),            # ((arm_name, {dotted.key: value, ...}), ...); () = one arm "default"
      seeds=(0,),         # student seeds (config.seed) per arm; a trial = arm × seed
      seed_also=(),       # other integer keys set to the trial's seed (e.g. "teacher.seed":
                          # a teacher per seed, when the teachers themselves are studied)
      x_key="",           # dotted key whose numeric value is the plot's x axis ('' = bar chart)
      x_label="",
      series_key="",      # with x_key: dotted key whose value splits the plot into lines
      metrics=("test/agreement", "test/student_acc"),  # "split/metric": plotted, shown first
      table="all",        # results.md columns: "all" (metrics, then the usual fidelity columns
                          # measured) or "metrics" (only those; e.g. a study of the teachers)
      paper=(),           # ((arm_name, {"split/metric": value or "≈value"}), ...) from docs/paper.md
      paper_dataset="",   # the paper's dataset when the trials use another (labels its markers)
      paper_setting="",   # the paper's setting of its values, e.g. "CIFAR-100, 5×ResNet-56"
      reference_arm="",   # the arm results.md subtracts from the others ('' = the first arm)
      gap=(),             # (("split/metric", top), ...): results.md adds the fraction of the gap
                          # from the reference arm to that fixed top each arm closes (Fieller CI)
      reached=(),         # (("split/metric", level), ...): results.md counts per arm the seeds
                          # at or above that level, with an exact CI (e.g. in the teacher's basin)
      diverged="stop",    # a trial whose loss turns non-finite: stop the sweep, or "record" it
                          # (results.json without numbers, named in results.md) and go on, as
                          # a learning-rate grid must
      title="",
  ))


def lock(config: ConfigDict) -> ConfigDict:
  config.lock()
  return config


def to_json(config: ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


#: A tuning grid's arms are named ``<remedy>_lr<rate>`` (sweeps.tuning parses them back).
LR_TAG = "_lr"


def arm_name(remedy: str, lr: float) -> str:
  """A tuning grid's arm name, ``<remedy>_lr<rate>``: the name ``tuning.best_rates`` parses back."""
  return f"{remedy}{LR_TAG}{lr:.3g}"
