"""The paper's training recipes (docs/paper.md, "Training recipes") and the CPU-sized `mini` data.

Figure configs call these so every figure starts from the same recipe and states only what it
varies. Values cite docs/paper.md; `mini` values are ours, chosen to finish in minutes on 2 CPU cores.
"""
from __future__ import annotations

import os
from pathlib import Path

from ml_collections import ConfigDict

from kd_jax.config import arm_name, base_config, model_config, optim_config, sweep_config

#: Environment variables a user sets once instead of a flag on every command.
CIFAR10_ENV = "KD_JAX_CIFAR10"      # a folder or tar of train/<class>/*.jpg, test/<class>/*.jpg
TEACHERS_ENV = "KD_JAX_TEACHERS"    # the teacher store shared by figure configs
GANS_ENV = "KD_JAX_GANS"            # the GAN store shared by figure configs
#: A CIFAR-10 JPEG tarball beside the clone (``../shared/data``), used when present: one way
#: to provide the data, after KD_JAX_CIFAR10 and a prepared tfds ``cifar10``.
SIBLING_CIFAR10 = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def tfds_prepared(name: str, data_dir: str = "") -> bool:
  """True when ``name`` is in ``data_dir`` (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)
  as array_record files; a file check, so building a config never imports tfds."""
  root = Path(data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()
  return any(any(v.glob(f"{name}-train.array_record*"))
             for v in root.glob(f"{name}/*") if (v / "dataset_info.json").exists())


def cifar10_data(c: ConfigDict) -> None:
  """Points ``c.data`` at CIFAR-10: the first of $KD_JAX_CIFAR10, a prepared tfds ``cifar10``,
  :data:`SIBLING_CIFAR10`. With none, ``data.path`` stays empty and loading stops with one line
  naming the three ways to provide it (``sources.load_image_folder``).
  ``--config.data.path=<folder or tar>`` overrides any of them (config.validate refuses it
  beside ``data.source=tfds`` rather than ignoring it)."""
  explicit = os.environ.get(CIFAR10_ENV, "")
  if not explicit and tfds_prepared("cifar10"):
    c.data.source, c.data.name, c.data.path = "tfds", "cifar10", ""
    return
  c.data.source = "image_folder"
  c.data.path = explicit or (str(SIBLING_CIFAR10) if SIBLING_CIFAR10.exists() else "")
  # An image folder needs no name (it is part of the teacher key: keep it as it was); with no
  # path the name selects the "how to get CIFAR-10" line.
  c.data.name = "" if c.data.path else "cifar10"


def teacher_store() -> str:
  """The teacher store of figure configs: $KD_JAX_TEACHERS, else ``runs/teachers`` relative to
  the folder a command runs from. ``--config.teacher.store`` overrides it per command; runs
  print the store's absolute path whenever they train or reuse a teacher there."""
  return os.environ.get(TEACHERS_ENV, "") or SHARED_TEACHERS


def cifar_teacher(c: ConfigDict, depth: int = 56) -> None:
  """200 epochs, batch 256, SGD Nesterov 0.9, wd 1e-4, cosine 0.1 → 0, crop + flip.

  Nesterov as in the official code (docs/paper.md, "Training recipes"): its teachers train with
  config/image_classification.yaml's optimizer (``nesterov: True``), and the teacher command of
  its README.md overrides only the epochs, lr, lr floor and batch size.
  """
  c.teacher.model = model_config("preresnet", depth=depth, norm="batch", width=1.0)
  c.teacher.epochs = 200
  c.teacher.batch_size = 256
  c.teacher.optim = optim_config(name="sgd", lr=0.1, momentum=0.9, nesterov=True,
                                 weight_decay=1e-4, schedule="cosine", lr_min=0.0)
  c.teacher.augment = "baseline"
  c.teacher.eval_every = 10


def cifar_student(c: ConfigDict, depth: int = 56) -> None:
  """300 epochs, batch 128, SGD Nesterov 0.9, wd 1e-4, cosine 0.05 → 1e-6, τ = 4, α = 0."""
  c.distill.model = model_config("preresnet", depth=depth, norm="batch", width=1.0)
  c.distill.epochs = 300
  c.distill.batch_size = 128
  c.distill.optim = optim_config(name="sgd", lr=0.05, momentum=0.9, nesterov=True,
                                 weight_decay=1e-4, schedule="cosine", lr_min=1e-6)
  c.distill.augment = "baseline"
  c.distill.temperature = 4.0
  c.distill.alpha = 0.0
  c.distill.eval_every = 10


def tfds_cifar(c: ConfigDict, name: str = "cifar100") -> None:
  """Teacher and student both see the whole train split (self-distillation on the same data)."""
  c.data.source = "tfds"
  c.data.name = name
  c.data.test_size = 0
  c.data.teacher_subset = 0
  c.data.distill_pool = "train"
  c.data.normalization = "unit_cube"


def paper_cifar100(name: str) -> ConfigDict:
  """PreResNet-56 → PreResNet-56 on CIFAR-100 with the paper's recipes."""
  c = base_config()
  c.name = name
  tfds_cifar(c, "cifar100")
  cifar_teacher(c)
  cifar_student(c)
  c.run.checkpoint_every = 10
  c.run.log_every = 1
  c.run.eval_batch_size = 1000
  return c


def mini_cifar10(c: ConfigDict, *, teacher_images: int = 8_000, test_images: int = 2_000,
                 teacher_epochs: int = 12, distill_epochs: int = 6, width: float = 0.5,
                 depth: int = 8) -> None:
  """Same code path on real CIFAR-10 (:func:`cifar10_data`), shrunk to minutes on a CPU.

  A PreResNet-8 (basic blocks) at the given width; the teacher trains on a stratified subset
  and the student is distilled on that same subset (self-distillation, as in the paper).
  """
  cifar10_data(c)
  c.data.test_size = 0
  c.data.teacher_subset = teacher_images
  c.data.distill_pool = "teacher"
  c.data.distill_subset = 0
  c.data.max_test = test_images
  for section in (c.teacher, c.distill):
    section.model = model_config("preresnet", depth=depth, norm="batch", width=width)
  c.teacher.epochs = teacher_epochs
  c.teacher.batch_size = 128
  c.teacher.optim.lr = 0.1
  c.teacher.eval_every = 5
  c.distill.epochs = distill_epochs
  c.distill.batch_size = 128
  c.distill.eval_every = 3
  c.distill.train_eval_size = 2_000
  c.run.checkpoint_every = 2
  c.run.log_every = 1
  c.run.eval_batch_size = 500


# ------------------------------------------------------------- figure configs (configs/fig*.py)

#: The data of the paper's CIFAR figures; a mini figure (CIFAR-10) marks its paper values so.
PAPER_DATASET = "CIFAR-100"
#: Student seeds of a paper-scale figure (docs/paper.md, "Seeds": 3 trials per arm).
PAPER_SEEDS = (0, 1, 2)
#: Student seeds of a mini whose seed takes under 10 minutes on a 2-core CPU: enough for a
#: 95% confidence interval that can tell a few points from seed noise.
MINI_SEEDS = (0, 1, 2, 3, 4)
#: The default teacher store of every figure (:func:`teacher_store`): figures whose teachers
#: share a recipe (kd_jax.runner.identity.teacher_key) reuse one trained ensemble instead of each
#: training its own.
SHARED_TEACHERS = "runs/teachers"


def figure_sweep(arg: str) -> ConfigDict:
  """A figure's sweep with its default seeds: the paper's 3 trials, or 5 for a mini."""
  s = sweep_config()
  s.seeds = MINI_SEEDS if arg == "mini" else PAPER_SEEDS
  return s


def entry_points(figure):
  """``get_config`` and ``get_sweep`` of a figure file from its ``figure(arg) -> (config,
  sweep)``: the trial and the sweep around it come from one function, so they never disagree."""

  def get_config(arg: str = ""):
    """The base trial config; each arm of get_sweep overrides some of its keys."""
    return figure(arg)[0]

  def get_sweep(arg: str = ""):
    """Arms, seeds, plot and paper values for kd_jax.sweeps.sweep."""
    return figure(arg)[1]

  return get_config, get_sweep


def check_variant(arg: str, config_file: str, variants: tuple[str, ...] = ("", "mini")) -> str:
  """Returns ``arg`` if it names a variant of ``config_file``; raises ValueError otherwise."""
  if arg not in variants:
    raise ValueError(f"unknown variant {arg!r} of {config_file}; use "
                     + " or ".join(repr(v) for v in variants))
  return arg


def paper_figure(name: str, *, teacher_depth: int = 56, student_depth: int = 56) -> ConfigDict:
  """A figure at the paper's scale: CIFAR-100 (tfds), PreResNets, 3 seeds, the shared store."""
  c = paper_cifar100(name)
  cifar_teacher(c, teacher_depth)
  cifar_student(c, student_depth)
  c.teacher.store = teacher_store()
  return c


def mini_figure(c: ConfigDict, *, members: int = 5, teacher_images: int = 2_000,
                teacher_epochs: int = 10, distill_epochs: int = 10, test_images: int = 1_000,
                width: float = 0.25, depth: int = 8) -> None:
  """The CPU-sized version of a figure: real CIFAR-10 JPEGs, PreResNet-8 at quarter width.

  The defaults describe one teacher ensemble (``members`` × PreResNet-8, 2,000 images,
  10 epochs) that every mini figure with this recipe shares through :func:`teacher_store`;
  ``members`` is the largest ensemble any of them uses, so the store trains it once. Students
  are distilled on the teacher's own images (self-distillation data, as in the paper) and
  train agreement is measured on 1,000 of them.
  """
  mini_cifar10(c, teacher_images=teacher_images, test_images=test_images,
               teacher_epochs=teacher_epochs, distill_epochs=distill_epochs, width=width,
               depth=depth)
  c.teacher.ensemble_size = members
  c.teacher.store = teacher_store()
  # Batch 32: on 2,000 images a batch of 128 leaves only 16 steps an epoch, too few for the
  # teacher or student to learn much in 10 epochs; on this CPU the cost per image is the same.
  c.teacher.batch_size = 32
  c.distill.batch_size = 32
  c.distill.eval_every = distill_epochs   # one evaluation, at the end
  c.distill.train_eval_size = min(1_000, teacher_images)
  c.run.checkpoint_every = 5


def optimization_model(c: ConfigDict, model: ConfigDict) -> None:
  """The Fig 6 / Table 1 setting: self-distillation (one teacher, the student's architecture)
  on exactly the teacher's training images with crop + flip, the official code's default
  distillation augmentation. The paper's "train agreement" is the official code's running
  agreement over the last epoch, in train mode, on each augmented batch before its update:
  kd_jax's ``running`` split. ``distill`` (eval mode, clean images) and ``distill_aug`` (eval mode,
  as augmented) are reported beside it."""
  c.teacher.model = model
  c.distill.model = ConfigDict(model.to_dict())
  c.teacher.ensemble_size = 1
  c.distill.teacher_members = 1
  c.distill.augment = "baseline"
  c.distill.train_eval_size = 0           # every distillation image


def paper_optimization(name: str) -> ConfigDict:
  """ResNet-20 with LayerNorm on CIFAR-100 (docs/paper.md, Fig 6 and Table 1), paper recipes."""
  c = paper_figure(name)
  optimization_model(c, model_config("resnet20_ln", width=1.0))
  c.data.distill_pool = "train"           # the teacher's own training set
  return c


def mini_optimization(c: ConfigDict, *, distill_epochs: int = 10) -> None:
  """CPU version of :func:`paper_optimization`: PreResNet-8 with LayerNorm at quarter width,
  a 1,000-image CIFAR-10 teacher set (30 epochs) that is also the distillation set."""
  mini_figure(c, members=1, teacher_images=1_000, teacher_epochs=30,
              distill_epochs=distill_epochs)
  optimization_model(c, model_config("preresnet", depth=8, norm="layer", width=0.25))


def mid_optimization(c: ConfigDict, *, distill_images: int = 5_000,
                     distill_epochs: int = 20) -> None:
  """The ``mid`` CPU setting of the optimization study (configs/remedies.py, fig6_init.py:mid).

  The mini's teacher (30% on 1,000 images) is nearly flat, so there is no gap to close. Here a
  LayerNorm PreResNet-8 at full width (16/32/64 channels) trains on all 50,000 CIFAR-10 train
  images (16 epochs, the paper's teacher recipe otherwise; about half an hour on 2 CPU cores)
  and keeps a checkpoint per epoch (its trajectory, for route-constrained distillation). The
  student distils the same architecture on ``distill_images`` of the teacher's own images with
  crop + flip; train agreement is measured on all of them, test on 5,000 test images.
  """
  mini_cifar10(c, teacher_images=0, test_images=5_000, teacher_epochs=16,
               distill_epochs=distill_epochs, width=1.0, depth=8)
  optimization_model(c, model_config("preresnet", depth=8, norm="layer", width=1.0))
  c.teacher.store = teacher_store()
  c.teacher.keep_every = 1
  c.teacher.eval_every = 4
  c.data.distill_pool = "teacher"
  c.data.distill_subset = distill_images
  c.distill.batch_size = 128
  c.distill.eval_every = distill_epochs
  c.run.checkpoint_every = 4


def mid_student(c: ConfigDict) -> None:
  """The students of the ``mid`` study as run on 2 CPU cores: 15 epochs (batch 64) on 1,000 of
  the teacher's images, test agreement on 2,000 test images; about a minute each on quiet
  cores. Shared by configs/fig6_init.py:mid and configs/remedies.py:mid, so their λ = 0 arm
  is the study's baseline."""
  mid_optimization(c, distill_images=1_000, distill_epochs=15)
  c.distill.batch_size = 64
  c.data.max_test = 2_000


# ------------------------------------------------------------------ SN-GAN (synthetic data)

#: The default GAN store of every figure (:func:`gan_store`), beside the teacher store.
SHARED_GANS = "runs/gans"


def gan_store() -> str:
  """$KD_JAX_GANS, else ``runs/gans`` relative to the folder a command runs from."""
  return os.environ.get(GANS_ENV, "") or SHARED_GANS


def paper_gan(c: ConfigDict) -> None:
  """docs/paper.md, SN-GAN recipe: 100k generator updates, batch 128, 5 D steps per G step,
  Adam 2e-4 (β = 0, 0.9) decayed linearly to 1e-6, horizontal flips (the config defaults)."""
  c.gan.store = gan_store()


def mini_gan(c: ConfigDict, *, gen_steps: int = 60, width: int = 16) -> None:
  """A CPU-sized SN-GAN: the official architecture and 5:1 update ratio at width 16
  (generator and discriminator) and batch 16, for 60 generator updates (≈10 min on the
  2-core CPU we measured it on, ~10 s per generator update under load). Its samples are noise
  and colour blobs, not objects: the mini runs the path end to end, not the paper's GAN."""
  paper_gan(c)
  c.gan.model.gen_width = width
  c.gan.model.disc_width = width
  c.gan.batch_size = 16
  c.gan.gen_steps = gen_steps
  c.gan.steps_per_call = 5
  c.gan.eval_every = 20
  c.gan.checkpoint_every = 20
  c.gan.eval_samples = 500


# ---------------------------------------------------------------- remedies v2 (fair comparison)

#: Each remedy's learning-rate grid around its default rate (remedies v2's tuning sweeps).
LR_FACTORS = (1 / 3, 1.0, 3.0)
SAM_RHO = 0.05                 # Foret et al. 2021's CIFAR radius
#: One L-BFGS iteration is charged as 2 epochs of gradients: its full-batch gradient plus the
#: line search's loss evaluations (forward passes, ~1/3 of a gradient each, usually 1-3).
POLISH_EPOCH_COST = 2
#: The remedies' gap: from the baseline (a random start) to the teacher's agreement with itself,
#: 100% (a student started at the teacher, λ = 1 with its rate scaled to 0, stays within 0.1
#: point of it: 100.00% distill / 99.99% test agreement in the testbed's exploratory init runs).
TEACHER_GAP = (("distill/agreement", 100.0), ("running/agreement", 100.0),
               ("test/agreement", 100.0))


def remedy_arms(epochs: int, lr: float, *, other_optim: ConfigDict, other_name: str,
                mixup_augment: str, trajectory: int, polish_iters: int,
                polish_optim: str = "lbfgs") -> tuple:
  """(name, overrides, default lr) of every remedy at the gradient budget of ``epochs`` epochs
  of the baseline (the config's own optimizer at ``lr``, KD at τ = 4, random start).

  An arm that takes two gradients a step (SAM) runs half the epochs; the L-BFGS polish's
  iterations come out of the first-order epochs at :data:`POLISH_EPOCH_COST` each. There is no
  "longer" arm: more epochs is the budget itself. ``other_optim`` is the other first-order
  optimizer tried (named ``other_name``); ``mixup_augment`` the views of consistent teaching;
  ``trajectory`` its stages (the teacher needs ``teacher.keep_every``).
  """
  return (
      ("baseline", {}, lr),
      (other_name, {"distill.optim": other_optim.to_dict()}, float(other_optim.lr)),
      ("logit_mse", {"distill.loss": "logit_mse"}, lr),
      ("reverse_kl", {"distill.loss": "reverse_kl"}, lr),
      ("symmetric_kl", {"distill.loss": "symmetric_kl"}, lr),
      ("tau_1", {"distill.temperature": 1.0}, lr),
      ("tau_10", {"distill.temperature": 10.0}, lr),
      # consistent teaching (Beyer et al. 2022): teacher and student on the same MixUp views
      ("consistent", {"distill.augment": mixup_augment}, lr),
      # the teacher's trajectory (Jin et al. 2019): stages through its kept checkpoints
      ("trajectory", {"distill.trajectory": trajectory}, lr),
      # start as the teacher, walk away linearly over the first half (kd_jax/runner/remedies.py)
      ("anneal", {"distill.init.mode": "anneal", "distill.init.lam": 1.0,
                  "distill.init.anneal_until": 0.5}, lr),
      ("polish", {"distill.epochs": epochs - POLISH_EPOCH_COST * polish_iters,
                  "distill.polish.epochs": polish_iters,
                  "distill.polish.optim.name": polish_optim}, lr),
      # from the literature, aimed at the optimization itself
      ("sam", {"distill.epochs": epochs // 2, "distill.sam_rho": SAM_RHO}, lr),  # Foret 2021
      ("tau_curriculum", {"distill.temperature": 10.0, "distill.temperature_end": 1.0},
       lr),                                        # annealed τ, after Jafari et al. 2021
  )


def at_lr(overrides: dict, lr: float) -> dict:
  """An arm's overrides with its first-order learning rate set to ``lr``."""
  out = dict(overrides)
  if "distill.optim" in out:
    out["distill.optim"] = {**out["distill.optim"], "lr": lr}
  else:
    out["distill.optim.lr"] = lr
  return out


def tuning_arms(arms: tuple, extend_below: tuple[str, ...] = ()) -> tuple:
  """Every remedy at its default rate × :data:`LR_FACTORS`, named ``<arm>_lr<rate>``; the
  remedies named in ``extend_below`` also one factor lower (a grid whose best rate is its
  smallest has not bracketed the optimum: the grid is extended there, not read at its edge)."""
  low = LR_FACTORS[0] ** 2
  return tuple((arm_name(name, lr * f), at_lr(o, round(lr * f, 8)))
               for name, o, lr in arms
               for f in ((low,) if name in extend_below else ()) + LR_FACTORS)


def tuned_arms(arms: tuple, tuned: dict, config_file: str, tune_variant: str) -> tuple:
  """The remedies at their tuned rates; a ConfigError naming the tuning sweep while any is
  missing (a remedy never runs at an untuned rate by accident)."""
  from kd_jax.core.errors import ConfigError
  missing = [name for name, _, _ in arms if name not in tuned]
  if missing:
    raise ConfigError(
        f"{config_file} needs the tuned learning rates of {', '.join(missing)}: run "
        f"{config_file.split(':')[0]}:{tune_variant}, commit its folder and fill the tuned "
        "rates from it")
  return tuple((name, at_lr(o, tuned[name])) for name, o, _ in arms)
