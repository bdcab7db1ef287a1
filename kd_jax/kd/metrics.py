"""Every number the experiments report, defined once: accuracy, agreement, KL, NLL, ECE.

The metric table (``METRICS``) says how each metric is labelled and formatted everywhere.

Split metrics are exact over a whole split, however it is batched or sharded: ``split_sums``
returns per-batch SUMS (counts, summed losses, per-bin ECE sums), the caller adds them across
batches (``add_sums``) and devices (``lax.psum``), and ``finalize`` divides once at the end.
A mean of per-batch means would weight a short last batch like a full one; this does not.
Padding examples (mask 0) contribute nothing; label −1 means "no label" (e.g. synthetic data):
such examples count for agreement and KL but not for accuracy, NLL or ECE.

ECE bins: ``num_bins`` equal-width bins on the max probability, bin b = (b/nb, (b+1)/nb]; a
confidence exactly on an edge goes to the LOWER bin and a confidence of exactly 0 to bin 0.
Edges are compared as float32 values k/nb, so e.g. softmax([0, 0]) = 0.5 lands in bin 4 of 10.
"""
from __future__ import annotations

import dataclasses
import functools
import sys
from types import ModuleType
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np





# ----------------------------------------------------------------------------- split metrics


@functools.partial(jax.jit, static_argnames="num_bins")
def bin_index(conf: jnp.ndarray, num_bins: int = 10) -> jnp.ndarray:
  """ECE bin of each confidence: the number of inner edges k/nb that ``conf`` strictly exceeds."""
  conf = jnp.asarray(conf, jnp.float32)
  edges = jnp.arange(1, num_bins, dtype=jnp.float32) / num_bins
  return jnp.sum(conf[..., None] > edges, axis=-1).astype(jnp.int32)


def _calibration_sums(conf: jnp.ndarray, correct: jnp.ndarray, weight: jnp.ndarray,
                      num_bins: int) -> dict[str, jnp.ndarray]:
  """Per-bin count, Σ confidence and Σ correctness over the examples with weight 1."""
  onehot = jax.nn.one_hot(bin_index(conf, num_bins), num_bins, dtype=jnp.float32)
  onehot = onehot * weight[:, None]
  return {
      "bin_count": jnp.sum(onehot, axis=0).astype(jnp.int32),
      "bin_conf": jnp.sum(onehot * conf[:, None], axis=0),
      "bin_correct": jnp.sum(onehot * correct[:, None], axis=0),
  }


def _model_sums(logits: jnp.ndarray, logp: jnp.ndarray, labels: jnp.ndarray,
                labeled: jnp.ndarray, num_bins: int) -> dict[str, jnp.ndarray]:
  """Label-dependent sums of one model from its logits and normalized log-probs [N, C].

  Predictions and confidences come from the raw logits (argmax ties -> first index, as
  np.argmax), so they match ``agree`` exactly and tied logits give exactly 1/k confidence.
  """
  w = labeled.astype(jnp.float32)
  safe = jnp.where(labeled, labels, 0)
  correct = (jnp.argmax(logits, axis=-1) == safe).astype(jnp.float32)
  nll = -jnp.take_along_axis(logp, safe[:, None], axis=-1)[:, 0]
  conf = jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)
  sums = {
      "correct": jnp.sum(correct * w).astype(jnp.int32),
      "nll": jnp.sum(jnp.where(labeled, nll, 0.0)),
  }
  sums.update(_calibration_sums(conf, correct, w, num_bins))
  return sums


def _flat_inputs(logits, labels, mask):
  """[..., C] logits and matching labels/mask flattened to [N, C], [N], [N] (defaults filled)."""
  logits = jnp.asarray(logits, jnp.float32)
  logits = logits.reshape(-1, logits.shape[-1])
  n = logits.shape[0]
  labels = (jnp.full((n,), -1, jnp.int32) if labels is None
            else jnp.asarray(labels, jnp.int32).reshape(-1))
  mask = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask).reshape(-1).astype(bool)
  return logits, labels, mask


@functools.partial(jax.jit, static_argnames="num_bins")
def split_sums(teacher_logprobs: jnp.ndarray, student_logits: jnp.ndarray,
               labels: Optional[jnp.ndarray] = None, mask: Optional[jnp.ndarray] = None,
               num_bins: int = 10) -> dict[str, jnp.ndarray]:
  """Sums over one batch from which ``finalize`` computes every split metric exactly.

  ``teacher_logprobs`` are renormalized with log-softmax (so teacher logits work too). Shapes:
  [..., C] for both, [...] for labels (−1 = none; None = all unlabeled) and mask (None = all).
  Counts are int32, everything else float32; all values add across batches and devices.
  """
  t, labels, mask = _flat_inputs(teacher_logprobs, labels, mask)
  s = jnp.asarray(student_logits, jnp.float32).reshape(t.shape)
  logp_t = jax.nn.log_softmax(t, axis=-1)
  logp_s = jax.nn.log_softmax(s, axis=-1)
  labeled = mask & (labels >= 0)
  kl_rows = _kl_rows(logp_t, logp_s)
  agree = jnp.argmax(t, axis=-1) == jnp.argmax(s, axis=-1)
  sums = {
      "n": jnp.sum(mask.astype(jnp.int32)),
      "n_labeled": jnp.sum(labeled.astype(jnp.int32)),
      "agree": jnp.sum((agree & mask).astype(jnp.int32)),
      "kl": jnp.sum(jnp.where(mask, kl_rows, 0.0)),
  }
  for name, z, logp in (("student", s, logp_s), ("teacher", t, logp_t)):
    for k, v in _model_sums(z, logp, labels, labeled, num_bins).items():
      sums[f"{name}_{k}"] = v
  return sums


def _kl_rows(logp_t: jnp.ndarray, logp_s: jnp.ndarray) -> jnp.ndarray:
  p_t = jnp.exp(logp_t)
  return jnp.sum(jnp.where(p_t > 0, p_t * (logp_t - logp_s), 0.0), axis=-1)


def kl_rows(teacher_logprobs: jnp.ndarray, student_logits: jnp.ndarray) -> jnp.ndarray:
  """Per-example KL(p_t ‖ p_s) at τ = 1 (the summand of the split's ``kl``)."""
  return _kl_rows(jax.nn.log_softmax(jnp.asarray(teacher_logprobs, jnp.float32), axis=-1),
                  jax.nn.log_softmax(jnp.asarray(student_logits, jnp.float32), axis=-1))


def add_sums(a: dict[str, jnp.ndarray], b: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
  """Adds two batches' sums key by key (the across-batch reduction; psum is the device one)."""
  if a.keys() != b.keys():
    raise ValueError(f"sums disagree on keys: {sorted(a.keys() ^ b.keys())}")
  return {k: a[k] + b[k] for k in a}


def _ratio(num, den, xp: ModuleType, ftype):
  """num/den, NaN where den is 0 (a metric on a split without the examples it needs)."""
  num = xp.asarray(num, ftype)
  den = xp.asarray(den, ftype)
  return xp.where(den > 0, num / xp.maximum(den, 1), xp.nan)


def _metrics(sums: dict, xp: ModuleType, ftype) -> dict:
  """The one formula from sums to metrics, for jnp (traceable) and numpy (float64 on host)."""
  n, n_lab = sums["n"], sums["n_labeled"]
  out = {
      "agreement": 100.0 * _ratio(sums["agree"], n, xp, ftype),
      "kl": _ratio(sums["kl"], n, xp, ftype),
  }
  for m in ("student", "teacher"):
    out[f"{m}_acc"] = 100.0 * _ratio(sums[f"{m}_correct"], n_lab, xp, ftype)
    out[f"{m}_nll"] = _ratio(sums[f"{m}_nll"], n_lab, xp, ftype)
    out[f"{m}_ece"] = _ece(sums[f"{m}_bin_count"], sums[f"{m}_bin_conf"],
                           sums[f"{m}_bin_correct"], xp, ftype)
  return out


def _ece(count, conf_sum, correct_sum, xp: ModuleType, ftype):
  """Σ_b (n_b/N)|acc_b − conf_b| = Σ_b |Σcorrect_b − Σconf_b| / N: empty bins add 0."""
  gap = xp.abs(xp.asarray(correct_sum, ftype) - xp.asarray(conf_sum, ftype))
  return _ratio(xp.sum(gap), xp.sum(xp.asarray(count)), xp, ftype)


@jax.jit
def compute_metrics(sums: dict[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
  """``finalize`` as traceable float32 jnp scalars (for use inside jit)."""
  return _metrics(sums, jnp, jnp.float32)


def finalize(sums: dict) -> dict[str, float]:
  """Split metrics from summed sums: accuracies and agreement in percent, ECE as a fraction.

  Keys: student_acc, teacher_acc, agreement, kl, student_nll, teacher_nll, student_ece,
  teacher_ece. Label metrics are NaN on a split without labels.
  """
  host = {k: np.asarray(jax.device_get(v)) for k, v in sums.items()}
  return {k: float(v) for k, v in _metrics(host, np, np.float64).items()}


# Whole-array conveniences: the same sums, so there is one definition of each metric.


@jax.jit
def accuracy(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Top-1 accuracy in percent over examples with a label ≥ 0."""
  return compute_metrics(split_sums(logits, logits, labels))["student_acc"]


@jax.jit
def agreement(logits_a: jnp.ndarray, logits_b: jnp.ndarray) -> jnp.ndarray:
  """Percent of examples whose top-1 predictions coincide (ties: first index)."""
  return compute_metrics(split_sums(logits_a, logits_b))["agreement"]


@jax.jit
def kl_divergence(teacher_logprobs: jnp.ndarray, student_logits: jnp.ndarray) -> jnp.ndarray:
  """Mean over examples of KL(p_t ‖ p_s) at τ = 1."""
  return compute_metrics(split_sums(teacher_logprobs, student_logits))["kl"]


@jax.jit
def nll(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Mean negative log-likelihood of the true label over labeled examples."""
  return compute_metrics(split_sums(logits, logits, labels))["student_nll"]


@functools.partial(jax.jit, static_argnames="num_bins")
def ece(logits: jnp.ndarray, labels: jnp.ndarray, num_bins: int = 10) -> jnp.ndarray:
  """Expected calibration error (fraction in [0, 1]) of softmax(logits)."""
  return compute_metrics(split_sums(logits, logits, labels, num_bins=num_bins))["student_ece"]




# ----------------------------------------------------------------------------- the metric table


@dataclasses.dataclass(frozen=True)
class Metric:
  """How every output (progress line, results table, results.md, CSV, plots) shows a metric."""
  name: str
  label: str
  fmt: str = "{:.4g}"
  higher_is_better: Optional[bool] = None


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("agreement", "agreement %", "{:.2f}", True),
    Metric("kl", "KL(t‖s)", "{:.4f}", False),
    Metric("student_acc", "student acc %", "{:.2f}", True),
    Metric("teacher_acc", "teacher acc %", "{:.2f}", True),
    Metric("student_ece", "student ECE", "{:.4f}", False),
    Metric("teacher_ece", "teacher ECE", "{:.4f}", False),
    Metric("student_nll", "student NLL", "{:.4f}", False),
    Metric("teacher_nll", "teacher NLL", "{:.4f}", False),
    Metric("loss", "loss", "{:.4f}", False),
    Metric("acc", "acc %", "{:.2f}", True),
    Metric("member_acc_mean", "member acc % (mean)", "{:.2f}", True),
    Metric("member_acc_min", "member acc % (min)", "{:.2f}", True),
    Metric("member_acc_max", "member acc % (max)", "{:.2f}", True),
    *(Metric(f"stage{i}", f"stage {i}", "{:.3f}", True) for i in range(1, 6)),
    Metric("wall_time_s", "wall time s", "{:.0f}", False),
    Metric("teacher_members_used", "teacher members", "{:.0f}"),
)}

#: Splits a run reports (``results.json`` is nested by these names) and how tables call them.
SPLITS: dict[str, str] = {
    "test": "test",
    "distill": "distill",                   # the distillation data, eval mode, clean
    "distill_aug": "distill (augmented)",   # the distillation data as augmented, eval mode
    "val": "val",                           # held out of the distillation data, eval mode
    "running": "distill (running)",         # train mode, the batches as trained, last epoch
    "synth": "GAN samples",                 # fixed samples of the distillation GAN, eval mode
    "members": "teacher members",
    "cka": "CKA",
    "run": "",
}

#: The split-metric columns every distillation run reports, in table order.
SPLIT_METRICS = ("teacher_acc", "student_acc", "agreement", "kl", "teacher_ece", "student_ece",
                 "teacher_nll", "student_nll")


def metric(name: str) -> Metric:
  """The table entry of a metric; names outside the table get a plain label."""
  return METRICS.get(name) or Metric(name, name.replace("_", " "))


def column_label(split: str, name: str) -> str:
  """``("test", "agreement")`` → ``test agreement %``; ``("cka", "stage1")`` → ``CKA stage 1``."""
  prefix = SPLITS.get(split, split.replace("_", " "))
  return f"{prefix} {metric(name).label}".strip()


def format_value(name: str, value) -> str:
  if value is None or (isinstance(value, float) and value != value):
    return "—"
  return metric(name).fmt.format(value)


# ------------------------------------------------------- the column names sweeps may use

RUN_COLUMNS = ("run/wall_time_s", "run/teacher_members_used")
#: Splits whose columns are fixed by the config (present even before any trial finished).
FIXED_SPLITS = ("test", "distill", "distill_aug")

#: Split names results used before the distillation split had one name everywhere.
LEGACY_SPLITS = {"train": "distill", "train_aug": "distill_aug"}
_told: set[tuple[str, str]] = set()


def current_column(column: str, where: str = "") -> str:
  """``train/agreement`` → ``distill/agreement`` (the old name of the split), saying so once
  per name and place on stderr; any other column as it is."""
  split, sep, name = column.partition("/")
  if not sep or split not in LEGACY_SPLITS:
    return column
  new = f"{LEGACY_SPLITS[split]}/{name}"
  if where and (column, where) not in _told:
    _told.add((column, where))
    print(f"note: {where}: {column!r} is the old name of {new!r}; read as {new!r} "
          "(rename it; the old names will stop being read)", file=sys.stderr, flush=True)
  return new


def current_results(results: dict, where: str = "") -> dict:
  """A results.json's dict with its ``splits`` under today's names (old ones noted once)."""
  splits = results.get("splits")
  if not isinstance(splits, dict) or not set(splits) & set(LEGACY_SPLITS):
    return results
  if where and (where, "splits") not in _told:
    _told.add((where, "splits"))
    print(f"note: {where} names the distillation split "
          f"{'/'.join(sorted(set(splits) & set(LEGACY_SPLITS)))}, the old name of "
          "distill/distill_aug; read as those", file=sys.stderr, flush=True)
  return dict(results, splits={LEGACY_SPLITS.get(k, k): v for k, v in splits.items()})


def known_column(column: str) -> bool:
  """``split/metric`` with a known split and metric (the names sweep.metrics may use)."""
  split, _, name = column.partition("/")
  return (split in SPLITS and name in METRICS) or column in RUN_COLUMNS


def known_columns() -> list[str]:
  return ([f"{s}/{m}" for s in FIXED_SPLITS for m in SPLIT_METRICS]
          + ["running/agreement", "running/loss", "synth/agreement", "synth/kl",
             "cka/stage1", "cka/stage2", "cka/stage3"]
          + list(RUN_COLUMNS))
