"""Command line for the GAN alone: ``python -m kd_jax.gan_main --config=configs/fig1_gan.py:mini
--workdir=runs/gan``.

Trains (or resumes, or reuses) the config's SN-GAN in its store (``gan.store``, default
``<workdir>/gans``) on the teacher's training images, with progress lines, losses in
``metrics.jsonl``/TensorBoard and a PNG grid of samples at each evaluation; FID/IS too when
``gan.inception_path`` points to local Inception weights (``kd_jax/runner/fid.py``). When the config's
teacher is already in its store, each evaluation also reports the teacher's view of the
samples (``kd_jax.runner.gans.TeacherView``); a distillation run with ``distill.synth_ratio > 0``
trains the GAN itself when it is missing, so this command is optional.
"""
from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from kd_jax import cli as cli_flags
from kd_jax.core.errors import UserFacingError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/fig1_gan.py:mini.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (the GAN store defaults to "
                               "<workdir>/gans).")
flags.mark_flags_as_required(["config", "workdir"])
cli_flags.define_time_budget()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.ERROR)
  from kd_jax import cli
  from kd_jax.core import cache
  config = cli.config_value(_CONFIG)
  cache.use_compile_cache()
  try:
    cli.start_time_budget()
    train_gan(config, Path(_WORKDIR.value))
  except UserFacingError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def train_gan(config, workdir: Path):
  """The GAN of ``config`` (trained here when the store lacks it) and its teacher view."""
  from kd_jax.runner import experiment, gans, teachers
  from kd_jax.runner.identity import store_keys
  from kd_jax.runner.validate import validate
  from kd_jax.train import modeling
  validate(config)
  _, data = experiment.load_data(config.data, config.run.num_devices)
  host = data.host
  model = modeling.build_model(config.teacher.model, data.num_classes, config.run.dtype,
                               data.model_options)
  teacher = teachers.load(config.teacher, store_keys(config.data, config.teacher), workdir,
                          model, data.input_shape)
  view = None if teacher is None else gans.teacher_view(teacher, data)
  if teacher is None:
    print("[gan] no stored teacher for this config: evaluations report losses and sample "
          "grids only", flush=True)
  g = config.gan
  print(gans.fid_is_line(g), flush=True)
  gan = gans.get_gan(g, gans.store_keys(g, config.data), workdir, host.teacher_x, view,
                     config.run.tensorboard)
  if view is not None:
    samples = gans.generate(gan.generator, gan.variables, gan.z_dim, int(g.eval_samples),
                            seed=int(g.seed))
    q = view(samples)
    print(f"[gan] teacher's view of {len(samples)} samples: {q}", flush=True)
  inception = gans.inception_quality(g, gan, host.teacher_x)
  if inception is not None:
    print(f"[gan] {gans.fid.describe(inception)}", flush=True)
  return gan


def run() -> None:
  from kd_jax import cli
  cli.run_app(main)


if __name__ == "__main__":
  run()
