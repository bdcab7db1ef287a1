"""Whole-config checks before any work: a bad value fails in the first second, not after the
teacher has trained. Each check names the key, the value and what is allowed (ConfigError)."""
from __future__ import annotations

from ml_collections import ConfigDict

from kd_jax.core.errors import ConfigError
from kd_jax.data import augment
from kd_jax.data.pipelines import PIPELINES
from kd_jax.data.sources import SOURCES
from kd_jax.kd import ensemble, losses
from kd_jax.models import MODELS
from kd_jax.models.sngan import GAN_MODELS
from kd_jax.runner import fid, remedies
from kd_jax.train import evaluators, optim, synthetic


def validate(config: ConfigDict) -> None:
  """Checks values that would otherwise fail late or silently; raises ConfigError."""
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
  evaluators.entries("teacher", config.teacher.evals, config.evals)
  evaluators.entries("distill", config.distill.evals, config.evals)
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
  synthetic.check(config.distill)
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
    fid.check(config.gan)
  if config.analysis.cka_kernel not in ("linear", "rbf", "official"):
    raise ConfigError(f"analysis.cka_kernel={config.analysis.cka_kernel!r} is not known; "
                      "choose linear, rbf or official")
  if config.run.dtype not in ("float32", "bfloat16"):
    raise ConfigError(f"run.dtype={config.run.dtype!r} is not known; choose float32 or bfloat16")
  if config.run.dtype != "float32":
    from kd_jax.models.registry import supports_dtype
    for section in ("teacher", "distill"):
      name = config[section].model.name
      if not supports_dtype(name):
        able = ", ".join(n for n in MODELS.names() if supports_dtype(n))
        raise ConfigError(f"run.dtype={config.run.dtype!r} but {section}.model.name={name!r} "
                          f"computes in float32 only; use run.dtype=float32, or a model that "
                          f"takes a dtype: {able}")
  ensemble.check_member_mode(config.run.member_mode)
  if not isinstance(config.run.fold_teacher_bn, bool):
    raise ConfigError(f"run.fold_teacher_bn={config.run.fold_teacher_bn!r} must be True or False")
  if config.run.steps_per_call < 1:
    raise ConfigError(f"run.steps_per_call={config.run.steps_per_call} must be >= 1")
  if config.run.checkpoint_every < 1:
    raise ConfigError(f"run.checkpoint_every={config.run.checkpoint_every} must be >= 1")


def steps_per_call_note(steps_per_call: int, backend: str) -> str | None:
  """A line for ``run.steps_per_call`` > 1 on the CPU backend, where fusing steps into one
  ``lax.scan`` was measured far slower per image (benchmarks/results/cpu_dtype_spc_quiet.md:
  4 steps per call, LeNet-5 2.7×, PreResNet-20 40× slower than 1); None otherwise."""
  if steps_per_call <= 1 or backend != "cpu":
    return None
  return (f"[run] note: run.steps_per_call={steps_per_call} on the CPU backend: several steps "
          "per jitted call were measured 2.7x (LeNet-5) to 40x (PreResNet-20) slower per image "
          "than one on a CPU (benchmarks/README.md); --config.run.steps_per_call=1 is faster there")

