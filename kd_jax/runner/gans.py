"""The SN-GAN as a stored artifact, like a teacher: trained once per (data, recipe), kept in a
store under its key, resumed exactly after a kill, reused by every run that needs samples.

``<store>/gan-<key>/`` holds ``ckpt/`` (training state, every ``gan.checkpoint_every``
generator updates), ``metrics.jsonl`` (+ TensorBoard), ``samples/step<k>.png`` (an 8×8 grid at
every evaluation), ``final/`` and ``gan.json``. It is built in ``gan-<key>.partial/`` and
renamed into place when complete (``kd_jax.core.checkpoints.publish``).
The GAN learns the teacher's training images (the data the paper's GAN was trained on).

Sample quality: FID and IS need Inception weights, which kd_jax does not ship: with
``gan.inception_path`` pointing to a local copy of pytorch-fid's weights (kd_jax/runner/fid.py), every
evaluation reports them (against the GAN's training images, statistics cached in the entry);
with none they are skipped with one line. What needs no weights is always reported when a
teacher is at hand (:func:`teacher_view`): the teacher's agreement with itself under crop + flip
on samples vs real images, and its predicted-class histogram on samples.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from kd_jax.core import atomic, budget, checkpoints, store_lock
from kd_jax.kd import ensemble
from kd_jax.runner import fid
from kd_jax.train import gan_steps, modeling, synthetic, writer as report
from kd_jax.config import NOT_IDENTITY, teacher_config
from kd_jax.runner.identity import legacy_teacher_key, teacher_key
from kd_jax.data import augment as augment_lib, pipelines
from kd_jax.core.errors import Interrupted, OutOfTime, TrainingDiverged
from kd_jax.models import sngan

PHASE = "gan"
META = "gan.json"
#: gan keys that change how training is run or reported, not the trained GAN (the schema's list).
NOT_KEY = tuple(k[len("gan."):] for k in NOT_IDENTITY if k.startswith("gan."))


@dataclasses.dataclass
class Gan:
  generator: Any
  variables: dict      # {"params", "batch_stats"} of the generator, on the host
  z_dim: int
  entry: Path
  trained_now: bool


def gan_key(gan: ConfigDict, data: ConfigDict, *, legacy: bool = False) -> str:
  """Identity of a GAN (``config.gan``) in its store: the teacher's data (teacher_key's data
  part, of ``config.data``: its content, no path) and the GAN recipe; ``legacy``: the
  path-based key of GANs stored before (still looked up)."""
  recipe = {k: v for k, v in gan.to_dict().items() if k not in NOT_KEY}
  data_key = (legacy_teacher_key if legacy else teacher_key)(data, teacher_config())
  ident = {"data": data_key, "gan": recipe}
  return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]


def store_dir(gan: ConfigDict, workdir: Path) -> Path:
  if gan.store:
    return Path(gan.store).expanduser().resolve()
  return Path(workdir) / "gans"


def entry_dir(gan: ConfigDict, key: str, workdir: Path) -> Path:
  """The store entry of the GAN ``gan`` (``config.gan``) whose ``gan_key`` is ``key``."""
  return store_dir(gan, workdir) / f"gan-{key}"


def make_spec(gan: ConfigDict, num_real: int) -> gan_steps.GanSpec:
  g = gan
  generator, discriminator = sngan.get_gan(g.model)
  gen_tx, disc_tx = gan_steps.make_optimizers(g.lr, g.lr_min, g.b1, g.b2, g.gen_steps,
                                              g.disc_steps)
  return gan_steps.GanSpec(generator, discriminator, gen_tx, disc_tx, int(g.batch_size),
                           int(g.disc_steps), int(generator.z_dim), bool(g.hflip), num_real)


def store_keys(gan: ConfigDict, data: ConfigDict) -> tuple[str, str]:
  """The keys a GAN's store entry may have: its content key, then its path-based key."""
  return gan_key(gan, data), gan_key(gan, data, legacy=True)


def _keys(key) -> tuple[str, ...]:
  return (key,) if isinstance(key, str) else tuple(key)


def stored_entry(gan: ConfigDict, key, workdir: Path) -> Optional[Path]:
  """The finished GAN's entry under its key, else under an older key (``store_keys``)."""
  return next((e for e in (entry_dir(gan, k, workdir) for k in _keys(key))
               if (e / META).exists()), None)


def load(gan: ConfigDict, key, workdir: Path) -> Optional[Gan]:
  """The finished GAN of ``gan`` (``config.gan``) with ``gan_key`` ``key`` (or
  ``store_keys``), or None."""
  entry = stored_entry(gan, key, workdir)
  if entry is None:
    return None
  checkpoints.read_meta(entry, META)  # a damaged gan.json is named, not a traceback
  generator, _ = sngan.get_gan(gan.model)
  like = jax.eval_shape(lambda: generator.init(jax.random.key(0), jnp.zeros((2, generator.z_dim)),
                                                train=False))
  variables = checkpoints.load_tree(entry / "final", {"params": like["params"],
                                                      "batch_stats": like["batch_stats"]})
  print(f"[gan] reusing the GAN in {entry}", flush=True)
  return Gan(generator, jax.device_get(variables), generator.z_dim, entry, trained_now=False)


def get_gan(gan: ConfigDict, key: str, workdir: Path, images_u8: np.ndarray,
            view: Optional["TeacherView"] = None, tensorboard: bool = True) -> Gan:
  """Loads the GAN of ``gan`` (``config.gan``; ``key``: its ``gan_key``) from its store, or
  trains it (resumably) on ``images_u8``; ``tensorboard``: ``run.tensorboard``."""
  stored = load(gan, key, workdir)
  if stored is not None:
    return stored
  lock = store_dir(gan, workdir) / f"gan-{_keys(key)[0]}.lock"
  with store_lock.hold(lock, f"GAN {_keys(key)[0]}"):
    stored = load(gan, key, workdir)
    if stored is not None:
      return stored
    return train(gan, key, workdir, images_u8, view, tensorboard)


def train(gan: ConfigDict, key: str, workdir: Path, images_u8: np.ndarray,
          view: Optional["TeacherView"] = None, tensorboard: bool = True) -> Gan:
  """Trains (or resumes) the GAN into its store entry; the caller holds the lock."""
  g = gan
  key = _keys(key)[0]
  done_entry = entry_dir(g, key, workdir)
  # a bad weights file fails before anything is written to the store
  scorer = fid.scorer_for(g, checkpoints.staging(done_entry), images_u8)
  entry = checkpoints.open_staging(done_entry, META)  # renamed to done_entry once complete
  atomic.write_text(entry / "config.json",
                    json.dumps({"gan": g.to_dict(), "key": key}, indent=2, default=str))
  spec = make_spec(g, len(images_u8))
  state = gan_steps.init_state(spec, int(g.seed), images_u8.shape[1:])
  ckpt = checkpoints.Checkpointer(entry / "ckpt")
  writer = report.MetricWriter(entry, tensorboard=tensorboard)
  at = _At()
  try:
    at.done, state = ckpt.resume(state, what="generator update")
    # A restored state comes back committed to its device, a fresh one does not; committing
    # both makes them the same program to XLA, so a resumed run does not compile the step again.
    state = jax.device_put(state, jax.devices()[0])
    at.saved = at.done
    writer.forget_after(PHASE, at.done)  # records past the checkpoint (a kill's leftovers)
    if at.done:
      print(f"[gan] resumed from the checkpoint after generator update {at.done}", flush=True)
    print(f"[gan] training {g.model.name} (G width {g.model.gen_width}, D width "
          f"{g.model.disc_width}) on {len(images_u8)} images for {g.gen_steps} generator "
          f"updates × {g.disc_steps} D updates, batch {g.batch_size} → {entry}", flush=True)
    data = jnp.asarray(images_u8)
    seed = jnp.int32(g.seed)
    state = _loop(g, spec, state, data, seed, ckpt, writer, entry, (view, scorer), at)
  except budget.TimeUp:  # --time_budget: stopped right after a checkpoint
    raise OutOfTime(PHASE, at.done, int(g.gen_steps), at.saved, "generator update") from None
  except KeyboardInterrupt:  # counted in generator updates where a classifier counts epochs
    raise Interrupted(f"{PHASE} (generator updates)", at.done, int(g.gen_steps),
                      at.saved) from None
  finally:
    ckpt.close()
    writer.close()
  variables = jax.device_get({"params": state.gen_params, "batch_stats": state.gen_stats})
  meta = {"key": key, "gen_steps": int(g.gen_steps), "images": len(images_u8)}
  checkpoints.publish(done_entry, variables, META, meta)
  return Gan(spec.generator, variables, spec.z_dim, done_entry, trained_now=True)


@dataclasses.dataclass
class _At:
  """Where training is: generator updates done and in the last checkpoint."""
  done: int = 0
  saved: int = 0


def _loop(g: ConfigDict, spec, state, data, seed, ckpt, writer, entry, judges, at: _At):
  """Chunks of generator updates to ``gan.gen_steps`` (``g`` = ``config.gan``); evaluates and
  checkpoints between them."""
  total, t0, sums, n_sum, done = int(g.gen_steps), time.time(), None, 0, at.done
  while done < total:
    # A chunk never crosses an evaluation or checkpoint boundary.
    nxt = min(total, _next_multiple(done, g.eval_every), _next_multiple(done, g.checkpoint_every))
    num = min(int(g.steps_per_call), nxt - done)
    state, s = gan_steps.gan_chunk(state, data, seed, spec=spec, num=num)
    s = jax.device_get(s)
    sums = s if sums is None else {k: sums[k] + s[k] for k in s}
    n_sum += num
    done += num
    at.done = done
    if not np.isfinite(s["gen_loss_sum"] + s["disc_loss_sum"]):
      raise TrainingDiverged(f"[gan] non-finite loss by generator update {done}; the last good "
                             f"checkpoint (update {at.saved}) is kept in {entry / 'ckpt'}; "
                             "lower gan.lr")
    if done % g.eval_every == 0 or done == total:
      losses = {"gen_loss": sums["gen_loss_sum"] / n_sum,
                "disc_loss": sums["disc_loss_sum"] / n_sum}
      evaluate(g, spec, state, done, losses, writer, entry, judges, time.time() - t0)
      sums, n_sum = None, 0
    if done % g.checkpoint_every == 0 or done == total:
      bad = checkpoints.nonfinite_leaves(state)
      if bad:
        raise TrainingDiverged(f"[gan] non-finite values in {bad[0]} after generator update "
                               f"{done}; not saved: the last good checkpoint (update "
                               f"{at.saved}) is kept in {entry / 'ckpt'}; lower gan.lr")
      ckpt.save(done, state)
      at.saved = done
      if done < total:
        budget.at_checkpoint()
  return state


def _next_multiple(x: int, k: int) -> int:
  return (x // k + 1) * k


def evaluate(g: ConfigDict, spec, state, done, losses, writer, entry, judges, elapsed) -> None:
  """Losses to metrics.jsonl/TensorBoard, an 8×8 sample grid, the teacher's view of samples
  and FID/IS; ``g`` = ``config.gan``; ``judges`` = (TeacherView or None, fid.InceptionScorer or
  None)."""
  view, scorer = judges
  grid = entry / "samples" / f"step{done:07d}.png"
  gen_vars = {"params": state.gen_params, "batch_stats": state.gen_stats}
  save_grid(generate(spec.generator, gen_vars, spec.z_dim, 64, seed=int(g.seed),
                     batch=64), grid)
  results: dict[str, dict[str, Any]] = {"running": dict(losses)}
  if view is not None:
    samples = generate(spec.generator, gen_vars, spec.z_dim, int(g.eval_samples),
                       seed=int(g.seed))
    results["quality"] = view(samples)
  if scorer is not None:
    results["inception"] = scorer(generate(spec.generator, gen_vars, spec.z_dim,
                                           int(g.fid_samples), seed=int(g.seed)))
    if done == int(g.gen_steps):  # the finished GAN's numbers: later runs read them
      checkpoints.write_json(_inception_cache(g, entry, scorer.key), results["inception"])
  writer.write(PHASE, done, results)
  shown = ", ".join(f"{k} {v:.3f}" for k, v in losses.items())
  extra = f"; {fid.describe(results['inception'])}" if scorer is not None else ""
  if "quality" in results:
    q = results["quality"]
    extra += (f"; teacher self-agreement under crop+flip: samples "
              f"{q['self_agreement_samples']:.1f}% / real {q['self_agreement_real']:.1f}%, "
              f"classes covered {q['effective_classes']:.1f} (perplexity of predicted classes)")
  print(f"[gan] update {done}/{g.gen_steps} ({report.format_duration(elapsed)}): "
        f"{shown}{extra}; grid {grid}", flush=True)


@functools.partial(jax.jit, static_argnames=("generator", "n", "z_dim"))
def _sample_u8(generator, variables: dict, key: jax.Array, n: int, z_dim: int) -> jax.Array:
  x, _ = gan_steps.sample(generator, variables["params"], variables["batch_stats"], key, n, z_dim)
  return jnp.clip(jnp.round((x + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def generate(generator, variables: dict, z_dim: int, n: int, seed: int,
             batch: int = 250) -> np.ndarray:
  """``n`` uint8 samples (train-mode BatchNorm per batch of ``batch``, as in distillation)."""
  base = jax.random.fold_in(jax.random.key(seed), 20_000_003)
  out = [np.asarray(_sample_u8(generator, variables, jax.random.fold_in(base, i), batch, z_dim))
         for i in range(-(-n // batch))]
  return np.concatenate(out)[:n]


def save_grid(images_u8: np.ndarray, path: Path, cols: int = 8) -> None:
  """A PNG of the images in rows of ``cols`` with a 2-pixel gap."""
  from PIL import Image  # Pillow comes with matplotlib
  n, h, w, c = images_u8.shape
  rows = -(-n // cols)
  canvas = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2, c), 255, np.uint8)
  for i, img in enumerate(images_u8):
    r, q = divmod(i, cols)
    canvas[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + q * (w + 2): 2 + q * (w + 2) + w] = img
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(canvas.squeeze(-1) if c == 1 else canvas).save(path)


def fid_is_line(g: ConfigDict) -> str:
  """The one line saying whether FID/IS are reported (``g`` = ``config.gan``), and from which
  weights."""
  if not g.inception_path:
    return ("[gan] FID/IS skipped: no Inception weights (set gan.inception_path to local "
            "weights); reporting the teacher's view of the samples instead")
  return (f"[gan] FID/IS from the Inception weights {g.inception_path} on "
          f"{g.fid_samples} samples (FID against as many training images at most)")


def inception_quality(g: ConfigDict, gan: Gan, real_u8: np.ndarray) -> Optional[dict]:
  """FID/IS of a finished GAN's samples (``gan.fid_samples``, seed ``gan.seed`` of ``g`` =
  ``config.gan``), kept in its entry so later runs read them; None without
  ``gan.inception_path``."""
  scorer = fid.scorer_for(g, gan.entry, real_u8)
  if scorer is None:
    return None
  path = _inception_cache(g, gan.entry, scorer.key)
  if path.exists():
    return json.loads(path.read_text())
  quality = scorer(generate(gan.generator, gan.variables, gan.z_dim, int(g.fid_samples),
                            seed=int(g.seed)))
  checkpoints.write_json(path, quality)
  return quality


def _inception_cache(g: ConfigDict, entry: Path, scorer_key: str) -> Path:
  """Where the finished GAN's FID/IS for these weights, real images and sample count live."""
  return entry / f"fid-is-{scorer_key}-n{g.fid_samples}-seed{g.seed}.json"



class TeacherView:
  """The teacher's view of a set of images: its agreement with itself under crop + flip (on
  samples and on as many real images) and how its predictions spread over the classes."""

  def __init__(self, teacher_model, teacher_vars: dict, normalize, real_u8: np.ndarray,
               num_classes: int, policy: str = "baseline", batch: int = 500):
    apply = modeling.local(teacher_model).apply
    augment = augment_lib.make_augment(policy)

    def predict(x_u8, key):
      x = x_u8.astype(jnp.float32) / 255.0
      keys = augment_lib.example_keys_for(key, jnp.arange(x.shape[0]))
      xa, _ = augment(x, keys, jax.random.fold_in(key, 1))
      both = jnp.concatenate([normalize(x), normalize(xa)])
      logits = ensemble.apply_members(lambda v, y: apply(v, y, train=False), teacher_vars, both)
      pred = jnp.argmax(ensemble.ensemble_logprobs(logits), -1)
      return pred[: x.shape[0]], pred[x.shape[0]:]

    self._predict = jax.jit(predict)
    self.real = real_u8
    self.batch = batch
    self.num_classes = num_classes

  def _preds(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = [self._predict(jnp.asarray(images[i:i + self.batch]), jax.random.key(i))
           for i in range(0, len(images), self.batch)]
    return (np.concatenate([np.asarray(a) for a, _ in out]),
            np.concatenate([np.asarray(b) for _, b in out]))

  def __call__(self, samples_u8: np.ndarray) -> dict[str, Any]:
    clean, aug = self._preds(samples_u8)
    r_clean, r_aug = self._preds(self.real[: len(samples_u8)])
    hist = np.bincount(clean, minlength=self.num_classes) / len(clean)
    nz = hist[hist > 0]
    return {"self_agreement_samples": float(100 * np.mean(clean == aug)),
            "self_agreement_real": float(100 * np.mean(r_clean == r_aug)),
            "effective_classes": float(np.exp(-np.sum(nz * np.log(nz)))),
            "class_histogram": [round(float(h), 4) for h in hist]}


def teacher_view(teacher, data) -> TeacherView:
  """The :class:`TeacherView` of a loaded teacher, with its own training images as the real
  reference."""
  return TeacherView(teacher.model, modeling.as_flax(teacher.final), data.normalize,
                     data.host.teacher_x, data.num_classes)


def gan_for_run(g: ConfigDict, key: str, workdir: Path, data, teacher,
                tensorboard: bool = True) -> tuple[Gan, dict]:
  """The run's GAN (``g`` = ``config.gan``, ``key`` its ``gan_key``; stored, or trained now)
  and the teacher's view of its samples."""
  print(fid_is_line(g), flush=True)
  view = teacher_view(teacher, data)
  gan = get_gan(g, key, workdir, data.host.teacher_x, view, tensorboard)
  samples = generate(gan.generator, gan.variables, gan.z_dim, int(g.eval_samples),
                     seed=int(g.seed))
  quality = view(samples)
  print(f"[gan] teacher's view of {len(samples)} samples: self-agreement under crop+flip "
        f"{quality['self_agreement_samples']:.1f}% (real images "
        f"{quality['self_agreement_real']:.1f}%), predicted classes: perplexity "
        f"{quality['effective_classes']:.2f} of {data.num_classes}", flush=True)
  inception = inception_quality(g, gan, data.host.teacher_x)
  if inception is not None:
    quality["inception"] = inception
    print(f"[gan] {fid.describe(inception)}", flush=True)
  return gan, {"entry": str(gan.entry), "key": key, "quality": quality}


def eval_pipeline(gan: Optional[Gan], n: int, mesh) -> Optional[pipelines.Pipeline]:
  """``n`` fixed samples (uint8, unlabelled) as a device pipeline, for the ``synth`` split."""
  if gan is None or n <= 0:
    return None
  images = generate(gan.generator, gan.variables, gan.z_dim, n, seed=synthetic.EVAL_SEED)
  return pipelines.DeviceResident(images, np.full((n,), -1, np.int32), mesh)
