"""kd_jax from Python: run experiments and figures, load what they trained, measure fidelity.

The command lines (``kd_jax.main``, ``kd_jax.sweep``) do the same through flags; this is the
notebook's way in. Loading needs only a run's workdir (its ``config.json``, ``results.json``
and checkpoints), so a run trained on a TPU can be examined on a laptop::

    import kd_jax
    config = kd_jax.load_config("configs/mnist.py:tiny")
    kd_jax.run(config, "runs/tiny")
    teacher, student = kd_jax.load_teacher("runs/tiny"), kd_jax.load_student("runs/tiny")
    kd_jax.fidelity(teacher, student, split="test")   # agreement, KL, ECE, NLL, accuracy

Predictors take images as the splits hold them (uint8, [N, H, W, C]) and apply the run's own
input transform (scaling, normalization; no augmentation), in eval mode.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from kd_jax.core import checkpoints
from kd_jax.kd import ensemble, metrics
from kd_jax.train import modeling
from kd_jax import config_files
from kd_jax.config import lock
from kd_jax.runner import artifacts
from kd_jax.runner.identity import find_teacher, teacher_key
from kd_jax.data import inputs, splits as splits_lib
from kd_jax.core.errors import ConfigError

PathLike = Union[str, Path]
#: Split name → the ``Splits`` arrays (images, labels) that hold it.
SPLIT_ARRAYS = {"test": ("test_x", "test_y"), "teacher": ("teacher_x", "teacher_y"),
                "distill": ("distill_x", "distill_y")}


# ------------------------------------------------------------------------- configs and runs


def load_config(spec: str) -> ConfigDict:
  """``get_config(arg)`` of a config file named as on the command line, ``path.py[:arg]``.

  Locked like the command line's: setting a value works, a misspelt key is an error.
  """
  return config_files.load(spec)


def load_sweep(spec: str) -> ConfigDict:
  """``get_sweep(arg)`` of a figure file (arms, seeds, plot); one arm for a plain config."""
  return config_files.load_sweep(spec)


def run(config: ConfigDict, workdir: PathLike, *, compile_cache: bool = True,
        **options: Any) -> dict[str, Any]:
  """One experiment, as ``python -m kd_jax.main`` runs it; returns the results dict.

  Rerunning into the same workdir reuses the stored teacher and resumes the student.
  ``compile_cache`` keeps compiled steps on disk (``kd_jax.core.cache``) so a rerun skips
  compiling; ``options`` go to ``kd_jax.runner.experiment.run``.
  """
  from kd_jax.core import cache
  from kd_jax.runner import experiment
  if compile_cache:
    cache.use_compile_cache()
  return experiment.run(config, workdir, **options)


def run_sweep(config: ConfigDict, sweep: ConfigDict, workdir: PathLike, *,
              only: Iterable[str] = (), compile_cache: bool = True) -> list[dict[str, Any]]:
  """Every trial of a figure (arms × seeds), as ``python -m kd_jax.sweep`` runs them.

  Writes ``results.csv``, ``results.md`` and the plot into ``workdir``; returns the CSV rows.
  """
  from kd_jax.core import cache
  from kd_jax.sweeps import sweep as sweep_lib
  if compile_cache:
    cache.use_compile_cache()
  return sweep_lib.run_sweep(config, sweep, workdir, only=only,
                             command="kd_jax.api.run_sweep")


def load_run_config(workdir: PathLike) -> ConfigDict:
  """The resolved config a run stored in its workdir (``config.json``), locked."""
  path = Path(workdir) / "config.json"
  if not path.is_file():
    raise ConfigError(f"{path} does not exist; pass the workdir of a run "
                      "(kd_jax.run or python -m kd_jax.main --workdir=...)")
  return lock(ConfigDict(json.loads(path.read_text())))


def load_results(workdir: PathLike) -> dict[str, Any]:
  """A finished run's ``results.json``: ``{"splits": {split: {metric: value}}, ...}``."""
  path = Path(workdir) / "results.json"
  if not path.is_file():
    raise ConfigError(f"{path} does not exist; the run has not finished (rerun it to resume)")
  return metrics.current_results(json.loads(path.read_text()), str(path))


# --------------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=4)
def _splits(data_json: str) -> splits_lib.Splits:
  """Splits are a pure function of ``config.data``: read them once per data config."""
  return inputs.load_splits(ConfigDict(json.loads(data_json)))


def _data_splits(data: ConfigDict) -> splits_lib.Splits:
  """The splits of ``data`` (``config.data``), cached."""
  return _splits(json.dumps(data.to_dict(), sort_keys=True, default=str))


def _config_of(source: Any) -> ConfigDict:
  if isinstance(source, Predictor):
    return source.config
  if isinstance(source, ConfigDict):
    return source
  if isinstance(source, (str, Path)):
    return load_run_config(source)
  raise ConfigError(f"expected a workdir, a ConfigDict or a Predictor, got "
                    f"{type(source).__name__}")


def load_splits(source: Any) -> splits_lib.Splits:
  """The teacher, distillation and test arrays of a run (workdir), config or predictor.

  The same arrays the run trained on (a pure function of ``config.data``); cached per config.
  """
  return _data_splits(_config_of(source).data)


def load_split(source: Any, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
  """``(images, labels)`` of one split: ``test``, ``teacher`` or ``distill``.

  Images are uint8 [N, H, W, C]; labels int32 [N], −1 for appended OOD images (no label).
  """
  if split not in SPLIT_ARRAYS:
    raise ConfigError(f"split={split!r} is not known; choose one of: "
                      f"{', '.join(SPLIT_ARRAYS)}")
  host = load_splits(source)
  x, y = SPLIT_ARRAYS[split]
  return getattr(host, x), getattr(host, y)


# ---------------------------------------------------------------------------- predictors


@dataclasses.dataclass(frozen=True, eq=False)
class Predictor:
  """A trained teacher ensemble or student as a function of images.

  ``predictor(images)`` returns [N, C] log-probabilities up to a per-example constant: for a
  teacher the log of its members' mean probability (docs/paper.md), for a student its logits.
  These are what the run's own metrics compare, so ``fidelity`` of a loaded teacher and
  student reproduces ``results.json``. ``variables`` are flax variables with the members
  stacked on axis 0 (``member(i)`` gives one for ``model.apply``).
  """
  role: str            # "teacher" or "student"
  model: Any           # the flax module (outside any device mesh)
  variables: dict      # {"params", "batch_stats"}, members stacked on axis 0, numpy
  config: ConfigDict   # the run's config
  workdir: Path
  normalize: Callable[[jax.Array], jax.Array]
  batch_size: int = 1000

  @property
  def num_members(self) -> int:
    return ensemble.num_members(self.variables["params"])

  def member(self, i: int) -> dict:
    """Flax variables of member ``i``: ``model.apply(p.member(i), x, train=False)``."""
    return modeling.as_flax(jax.tree.map(lambda a: a[i], self.variables))

  @functools.cached_property
  def _apply(self) -> Callable[[Any, jax.Array], jax.Array]:
    model, normalize = modeling.local(self.model), self.normalize

    def logits(variables, images):
      x = normalize(images.astype(jnp.float32) / 255.0)
      apply = lambda v, y: model.apply(modeling.as_flax(v), y, train=False)
      return ensemble.apply_members(apply, variables, x).astype(jnp.float32)

    return jax.jit(logits)

  def member_logits(self, images: np.ndarray) -> np.ndarray:
    """Logits of every member, [members, N, C], in batches of ``batch_size``."""
    x = _pixels(images)
    n = x.shape[0]
    bs = max(1, min(self.batch_size, n))
    out = []
    for i in range(0, n, bs):
      chunk = x[i:i + bs]
      real = chunk.shape[0]
      if real < bs:  # pad the last batch: one compiled shape for every batch
        chunk = np.concatenate([chunk, np.zeros((bs - real,) + chunk.shape[1:], chunk.dtype)])
      out.append(np.asarray(self._apply(self.variables, chunk))[:, :real])
    return np.concatenate(out, axis=1)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    z = self.member_logits(images)
    if self.role == "teacher":
      return np.asarray(ensemble.ensemble_logprobs(z))
    return z[0]

  def probs(self, images: np.ndarray) -> np.ndarray:
    """Predictive probabilities [N, C] (the teacher's: the mean over its members)."""
    return np.asarray(jax.nn.softmax(jnp.asarray(self(images)), axis=-1))


def _pixels(images: Any) -> np.ndarray:
  x = np.asarray(images)
  if not np.issubdtype(x.dtype, np.integer) or x.ndim != 4:
    raise ConfigError(f"images must be uint8 [N, H, W, C] as load_split returns them, got "
                      f"{x.dtype} {x.shape}; the predictor scales and normalizes them itself")
  return x


def _num_classes(workdir: Path, data: ConfigDict) -> int:
  """From the run's results.json when it has finished, else from the splits of ``data``."""
  results = Path(workdir) / "results.json"
  if results.is_file():
    sizes = json.loads(results.read_text()).get("sizes", {})
    if "num_classes" in sizes:
      return int(sizes["num_classes"])
  return int(_data_splits(data).num_classes)


def _normalizer(data: ConfigDict) -> Callable[[jax.Array], jax.Array]:
  """The run's normalization (``data`` = its ``config.data``); z-score statistics come from its
  teacher images."""
  host = _data_splits(data) if data.normalization == "zscore" else None
  return inputs.normalizer(host, data.normalization)


def _model(model_cfg: ConfigDict, workdir: Path, data: ConfigDict, run: ConfigDict):
  """The flax module of ``model_cfg`` as the run (``data``, ``run``: its sections) built it."""
  return modeling.build_model(model_cfg, _num_classes(workdir, data), run.dtype)


def _teacher_entry(workdir: Path, data: ConfigDict, teacher: ConfigDict, members: int) -> Path:
  """The stored ensemble a run used: results.json's entry, else a lookup in the store
  (``data``, ``teacher``: the run's ``config.data`` and ``config.teacher``)."""
  from kd_jax.runner import teachers
  tried = []
  results = workdir / "results.json"
  if results.is_file():
    entry = Path(json.loads(results.read_text())["teacher"]["entry"])
    tried += [entry, workdir / "teachers" / entry.name]  # entries are relative to the run's cwd
  for path in tried:
    if (path / "teacher.json").is_file():
      return path
  # Keyed by the data's content: on a machine without the data only results.json can say.
  store = teachers.store_dir(teacher, workdir)
  found = find_teacher(store, data, teacher, members, missing_ok=True)
  if found is not None:
    return found
  looked = ", ".join(map(str, [store, *tried]))
  raise ConfigError(f"no trained teacher for {workdir} (looked in {looked}); finish the run "
                    "first, or run from the folder it ran in (its teacher.store is relative)")


def load_teacher(workdir: PathLike, members: Optional[int] = None) -> Predictor:
  """The teacher ensemble a run distilled from (its first ``members``; default: as the run).

  Read from the teacher store (``results.json`` names the entry) onto the host.
  """
  workdir = Path(workdir)
  config = load_run_config(workdir)
  used = int(config.distill.teacher_members or config.teacher.ensemble_size)
  if (workdir / "results.json").is_file():
    used = int(load_results(workdir)["teacher"]["members_used"])
  entry = _teacher_entry(workdir, config.data, config.teacher, int(members or used))
  _, tree = checkpoints.read_host(entry / "final")
  final = ensemble.take_members(tree["final"], int(members or used))
  model = _model(config.teacher.model, workdir, config.data, config.run)
  return Predictor("teacher", model, final, config, workdir, _normalizer(config.data),
                   int(config.run.eval_batch_size))


def export_teacher(workdir: PathLike, out_dir: Optional[PathLike] = None) -> Path:
  """Writes the stored teacher ensemble a run used (all its members) as a portable artifact
  (``kd_jax.runner.artifacts``) into ``out_dir`` (default ``artifacts.folder()``, where runs
  look for one before training); returns the artifact's manifest."""
  workdir = Path(workdir)
  config = load_run_config(workdir)
  entry = _teacher_entry(workdir, config.data, config.teacher, 1)
  members = int(json.loads((entry / "teacher.json").read_text())["members"])
  _, tree = checkpoints.read_host(entry / "final")
  return artifacts.save(Path(out_dir) if out_dir else artifacts.folder(), tree["final"],
                        teacher_key(config.data, config.teacher), members, config.teacher,
                        config.data)


def load_student(workdir: PathLike, epoch: Optional[int] = None) -> Predictor:
  """The student of a run, from its checkpoint after ``epoch`` (default: the last saved)."""
  workdir = Path(workdir)
  config = load_run_config(workdir)
  _, state = checkpoints.read_host(workdir / "checkpoints" / "student", epoch)
  variables = {"params": state["params"], "batch_stats": state.get("batch_stats") or {}}
  model = _model(config.distill.model, workdir, config.data, config.run)
  return Predictor("student", model, variables, config, workdir, _normalizer(config.data),
                   int(config.run.eval_batch_size))


# ------------------------------------------------------------------------------- metrics


def _outputs(p: Any, images: Optional[np.ndarray], name: str) -> np.ndarray:
  if callable(p):
    if images is None:
      raise ConfigError(f"{name} is a predictor: pass images (and labels) or split=")
    return np.asarray(p(images), np.float32)
  out = np.asarray(p, np.float32)
  if out.ndim != 2:
    raise ConfigError(f"{name} logits must be [N, C], got shape {out.shape}")
  return out


def fidelity(teacher: Any, student: Any, images: Optional[np.ndarray] = None,
             labels: Optional[np.ndarray] = None, *, split: Optional[str] = None,
             num_bins: int = 10) -> dict[str, float]:
  """Every split metric of ``kd_jax.kd.metrics`` between a teacher and a student.

  Each of ``teacher``/``student`` is a predictor (any callable images → [N, C] logits or
  log-probs) or an [N, C] array of them. Give ``images`` (and ``labels``: int [N], −1 = none,
  None = no accuracy/NLL/ECE) or ``split=`` (``test``/``teacher``/``distill`` of the
  predictors' run). Keys: agreement and accuracies in percent, kl, ECE (fraction), NLL.
  """
  if split is not None:
    if images is not None:
      raise ConfigError("pass images or split=, not both")
    owner = next((p for p in (student, teacher) if isinstance(p, Predictor)), None)
    if owner is None:
      raise ConfigError(f"split={split!r} needs a loaded predictor (load_teacher/"
                        "load_student) to know the run; with arrays pass labels instead")
    images, labels = load_split(owner, split)
  t = _outputs(teacher, images, "teacher")
  s = _outputs(student, images, "student")
  if t.shape != s.shape:
    raise ConfigError(f"teacher and student outputs differ in shape: {t.shape} vs {s.shape}")
  if labels is not None and np.shape(labels) != t.shape[:1]:
    raise ConfigError(f"labels must be [{t.shape[0]}], got shape {np.shape(labels)}")
  return metrics.finalize(metrics.split_sums(t, s, labels, num_bins=num_bins))


def reliability(logits: np.ndarray, labels: np.ndarray,
                num_bins: int = 10) -> dict[str, np.ndarray]:
  """Per-bin count, mean confidence and accuracy: the reliability diagram behind ECE.

  Bins and confidences are those of ``kd_jax.kd.metrics`` (empty bins: NaN), so the diagram
  and the reported ECE agree.
  """
  z = np.asarray(logits, np.float32)
  sums = jax.device_get(metrics.split_sums(z, z, labels, num_bins=num_bins))
  count = np.asarray(sums["student_bin_count"], np.float64)
  safe = np.where(count > 0, count, np.nan)
  return {"count": count.astype(np.int64),
          "confidence": np.asarray(sums["student_bin_conf"]) / safe,
          "accuracy": np.asarray(sums["student_bin_correct"]) / safe,
          "edges": np.linspace(0.0, 1.0, num_bins + 1)}
