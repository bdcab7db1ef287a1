"""Teacher / distillation / test splits from one ``ArrayDataset`` and the ``data`` config.

Everything here is host-side numpy and a pure function of ``data.split_seed``: each purpose
(test carving, halves, teacher subset, distill subset, OOD draw, test subset) draws from its
own seed stream, so changing one knob (say ``distill_subset``) leaves the other sets intact,
and every index array is sorted so the same images come out in the same order.

Paper recipes this covers: the MNIST teacher trained on a stratified 200-image subset and
students distilled on the rest (Fig. 2); CIFAR-100 train halved into D0/D1 (Fig. 4); 10k SVHN
images appended to the distillation set (Fig. 3, "OOD").
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from kd_jax.data.core import ArrayDataset
from kd_jax.core.registry import lookup
from kd_jax.core.errors import ConfigError

TEACHER_POOLS = ("train", "d0")
DISTILL_POOLS = ("rest", "teacher", "train", "d0", "d1")
OOD_LABEL = -1

# One seed stream per purpose (see module docstring).
_STREAM = dict(test=0, halves=1, teacher=2, distill=3, ood=4, max_test=5, val=6)


def _stream_seed(seed: int, purpose: str) -> int:
  return int(np.random.SeedSequence([seed, _STREAM[purpose]]).generate_state(1)[0])


def stratified_subset(labels: np.ndarray, n: int, seed: int, key: str = "data.teacher_subset",
                      pool: str = "teacher pool") -> np.ndarray:
  """Sorted positions of ``n`` labels drawn per class in proportion to class frequency.

  Each class gets ``floor(n * count / N)``; the images left over go to the classes with the
  largest remainders (ties broken by the seeded generator, so no class is favoured by its
  index). With balanced classes this splits ``n`` as evenly as possible. ``key`` and ``pool``
  only name the config value and the pool in the error for an ``n`` that does not fit.
  """
  labels = np.asarray(labels)
  total = labels.shape[0]
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
    raise ConfigError(f"{key}={n!r} must be a non-negative integer")
  if n > total:
    raise ConfigError(f"{key}={n} is larger than the {pool} ({total} images); "
                      f"use at most {total}")
  rng = np.random.default_rng(seed)
  classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
  scaled = int(n) * counts.astype(np.int64)
  quota, remainder = scaled // max(total, 1), scaled % max(total, 1)
  left = int(n) - int(quota.sum())
  order = np.lexsort((rng.random(len(classes)), -remainder))  # Largest remainder first.
  quota[order[:left]] += 1
  picked = [rng.choice(np.flatnonzero(inverse == c), size=int(q), replace=False)
            for c, q in enumerate(quota) if q]
  return np.sort(np.concatenate(picked)) if picked else np.zeros((0,), np.int64)


def stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Splits positions into two sorted, disjoint, class-balanced halves (D0, D1 of Fig. 4).

  Every class is cut in half; of the classes with an odd count, a seeded half give their
  extra image to D0, so ``len(d0) == N // 2`` and each class differs by at most one.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
  odd = np.flatnonzero(counts % 2 == 1)
  bonus = np.zeros(len(classes), np.int64)
  bonus[rng.permutation(odd)[:len(odd) // 2]] = 1
  parts = [rng.permutation(np.flatnonzero(inverse == c))[:counts[c] // 2 + bonus[c]]
           for c in range(len(classes))]
  d0 = np.sort(np.concatenate(parts)) if parts else np.zeros((0,), np.int64)
  d1 = np.setdiff1d(np.arange(labels.shape[0]), d0)
  return d0, d1


def match_images(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """Converts uint8 NHWC ``images`` to ``shape`` = (H, W, C) so OOD data can be appended.

  Channels first: gray → RGB repeats the channel, RGB → gray uses Pillow's ITU-R 601 luma
  (0.299 R + 0.587 G + 0.114 B). Then size: a bilinear resize with Pillow. Images that
  already match are returned unchanged.
  """
  h, w, c = (int(s) for s in shape)
  if images.shape[1:] == (h, w, c):
    return images
  if c not in (1, 3) or images.shape[3] not in (1, 3):
    raise ConfigError(f"data.ood: cannot convert {images.shape[3]}-channel OOD images to "
                      f"{c} channels; only 1 and 3 are supported")
  from PIL import Image  # Only needed when shapes differ.

  out = np.empty((images.shape[0], h, w, c), np.uint8)
  for i, img in enumerate(images):
    pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
    pil = pil.convert("L" if c == 1 else "RGB")
    if pil.size != (w, h):
      pil = pil.resize((w, h), Image.BILINEAR)
    arr = np.asarray(pil, np.uint8)
    out[i] = arr[..., None] if arr.ndim == 2 else arr
  return out


@dataclasses.dataclass
class Splits:
  """The arrays a run trains, distills and evaluates on.

  ``distill_y`` is -1 and ``distill_is_ood`` True for appended OOD images (they have no label
  in the task's classes; only the teacher labels them). ``info`` holds sizes, pool names and
  the seed for the run log.
  """
  teacher_x: np.ndarray
  teacher_y: np.ndarray
  distill_x: np.ndarray
  distill_y: np.ndarray
  distill_is_ood: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  num_classes: int
  info: dict[str, Any]
  # ``data.distill_val`` examples of the distillation set held out of it (empty: none)
  val_x: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.uint8))
  val_y: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.int32))




def _count(cfg: Any, key: str, default: int = 0, prefix: str = "data") -> int:
  value = lookup(cfg, key, default)
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise ConfigError(f"{prefix}.{key}={value!r} must be a non-negative integer")
  return int(value)


def _choice(cfg: Any, key: str, allowed: tuple[str, ...], default: str) -> str:
  value = lookup(cfg, key, default)
  if value not in allowed:
    raise ConfigError(f"data.{key}={value!r} is not a known pool; "
                      f"choose one of: {', '.join(allowed)}")
  return value


def _test_split(ds: ArrayDataset, data_cfg: Any, seed: int):
  """(train indices, test images, test labels, where test came from): the source's own test
  split, or a stratified slice carved off train (disjoint from it)."""
  n_all = ds.train_labels.shape[0]
  if ds.has_test:
    return np.arange(n_all), ds.test_images, ds.test_labels, "test split"
  test_n = _count(data_cfg, "test_size", 1000)
  if test_n == 0 or test_n >= n_all:
    raise ConfigError(f"data.test_size={test_n} does not fit: the source has no test split, "
                      f"so a test set is carved from its {n_all} train images; use 1 to "
                      f"{n_all - 1}")
  test_idx = stratified_subset(ds.train_labels, test_n, _stream_seed(seed, "test"),
                               key="data.test_size", pool="train split")
  train_idx = np.setdiff1d(np.arange(n_all), test_idx)
  return train_idx, ds.train_images[test_idx], ds.train_labels[test_idx], "carved from train"


def _subset(pool: np.ndarray, train_y: np.ndarray, n: int, seed: int, purpose: str,
            key: str, name: str) -> np.ndarray:
  """A stratified ``n`` of a pool (positions into train), or the whole pool for n = 0."""
  if not n:
    return pool
  return pool[stratified_subset(train_y[pool], n, _stream_seed(seed, purpose), key=key,
                                pool=name)]


def _distill_pool(kind: str, pools: dict[str, np.ndarray], teacher: np.ndarray) -> np.ndarray:
  if kind == "rest":
    rest = np.setdiff1d(pools["train"], teacher)
    if rest.size == 0:
      raise ConfigError("data.distill_pool='rest' is empty: the teacher set uses all "
                        f"{teacher.size} train images; set data.teacher_subset or choose "
                        "data.distill_pool='train'")
    return rest
  if kind == "teacher":  # exactly the teacher's images (self-distillation on a subset)
    return teacher
  return pools[kind]


def _held_out(distill: np.ndarray, train_y: np.ndarray, n: int, seed: int) -> np.ndarray:
  """A stratified ``n`` of the distillation set (positions into train) kept out of it: the
  validation split a tuning sweep reads instead of the test set. Empty for n = 0."""
  if not n:
    return distill[:0]
  if n >= distill.size:
    raise ConfigError(f"data.distill_val={n} leaves nothing to distil on: the distillation set "
                      f"has {distill.size} examples; use 1 to {distill.size - 1}")
  return distill[stratified_subset(train_y[distill], n, _stream_seed(seed, "val"),
                                   key="data.distill_val", pool="distillation set")]


def _ood_images(ood: ArrayDataset | None, n: int, seed: int, shape: tuple[int, ...]) -> np.ndarray:
  """``n`` seeded OOD train images, resized to the task's image shape."""
  if ood is None:
    raise ConfigError(f"data.ood.num={n} but no OOD dataset was loaded; set "
                      "data.ood.source (and data.ood.name or data.ood.path)")
  available = ood.train_labels.shape[0]
  if n > available:
    raise ConfigError(f"data.ood.num={n} is larger than the OOD train split "
                      f"({available} images); use at most {available}")
  rng = np.random.default_rng(_stream_seed(seed, "ood"))
  pick = np.sort(rng.choice(available, size=n, replace=False))
  return match_images(ood.train_images[pick], shape)


def make_splits(ds: ArrayDataset, data_cfg: Any, ood: ArrayDataset | None = None) -> Splits:
  """Builds teacher, distillation and test sets as ``data_cfg`` describes (module docstring).

  Steps: carve a stratified test set of ``test_size`` from train when the source has none;
  pick the teacher pool (train or D0) and its stratified ``teacher_subset``; pick the distill
  pool ('rest' = train minus the teacher set, disjoint from it; 'teacher' = the teacher's own
  images) and its ``distill_subset``; hold ``distill_val`` of those out as the validation
  split; append ``ood.num`` seeded OOD images; keep a stratified ``max_test`` of test.
  """
  seed = _count(data_cfg, "split_seed")
  teacher_pool = _choice(data_cfg, "teacher_pool", TEACHER_POOLS, "train")
  distill_pool = _choice(data_cfg, "distill_pool", DISTILL_POOLS, "rest")
  max_test = _count(data_cfg, "max_test")
  ood_cfg = lookup(data_cfg, "ood", None)
  ood_n = _count(ood_cfg, "num", 0, prefix="data.ood") if ood_cfg is not None else 0

  train_idx, test_x, test_y, test_from = _test_split(ds, data_cfg, seed)
  train_y = ds.train_labels[train_idx]
  # Pools are positions into train_idx; all sorted, so subsets of them stay sorted.
  pools = {"train": np.arange(train_idx.shape[0])}
  if "d0" in (teacher_pool, distill_pool) or distill_pool == "d1":
    pools["d0"], pools["d1"] = stratified_halves(train_y, _stream_seed(seed, "halves"))
  teacher = _subset(pools[teacher_pool], train_y, _count(data_cfg, "teacher_subset"), seed,
                    "teacher", "data.teacher_subset", "teacher pool")
  distill = _subset(_distill_pool(distill_pool, pools, teacher), train_y,
                    _count(data_cfg, "distill_subset"), seed, "distill", "data.distill_subset",
                    "distill pool")

  val = _held_out(distill, train_y, _count(data_cfg, "distill_val"), seed)
  if val.size:
    distill = np.setdiff1d(distill, val)  # both sorted: order stays that of train
  distill_x = ds.train_images[train_idx[distill]]
  distill_y = train_y[distill]
  is_ood = np.zeros(distill_y.shape, bool)
  if ood_n and not isinstance(distill_x, np.ndarray):
    raise ConfigError("data.ood.num > 0 appends OOD images to the distillation array, but "
                      "data.image_size > 0 keeps images as files; set data.ood.num=0")
  if ood_n:
    distill_x = np.concatenate([distill_x, _ood_images(ood, ood_n, seed, ds.image_shape)])
    distill_y = np.concatenate([distill_y, np.full((ood_n,), OOD_LABEL, np.int32)])
    is_ood = np.concatenate([is_ood, np.ones((ood_n,), bool)])
  if max_test and max_test < test_y.shape[0]:
    keep = stratified_subset(test_y, max_test, _stream_seed(seed, "max_test"),
                             key="data.max_test", pool="test set")
    test_x, test_y = test_x[keep], test_y[keep]

  info = dict(split_seed=seed, teacher_pool=teacher_pool, teacher_size=int(teacher.size),
              distill_pool=distill_pool, distill_size=int(distill_y.shape[0]),
              distill_ood=int(is_ood.sum()), val_size=int(val.size),
              test_size=int(test_y.shape[0]),
              test_from=test_from, num_classes=int(ds.num_classes),
              # provenance (tfds name, version and data_dir; file and sha256 of a folder/tar)
              source=_provenance(ds), **({"ood_source": _provenance(ood)} if ood_n else {}))
  return Splits(teacher_x=ds.train_images[train_idx[teacher]], teacher_y=train_y[teacher],
                distill_x=distill_x, distill_y=distill_y.astype(np.int32),
                distill_is_ood=is_ood, test_x=test_x, test_y=test_y.astype(np.int32),
                num_classes=int(ds.num_classes), info=info,
                val_x=ds.train_images[train_idx[val]], val_y=train_y[val].astype(np.int32))


def _provenance(ds: ArrayDataset) -> dict[str, str]:
  """What a run read, for results.json; the local decode cache is not the data's identity."""
  return {k: str(v) for k, v in ds.meta.items() if k not in ("cache", "cache_hit")}


def describe(splits: Splits) -> str:
  """One line of sizes for the run log, ending with where the data was read from."""
  i = splits.info
  ood = f"; OOD from {where(i['ood_source'])}" if "ood_source" in i else ""
  return (f"teacher {i['teacher_size']} ({i['teacher_pool']}) | distill {i['distill_size']} "
          f"({i['distill_pool']}, {i['distill_ood']} OOD)"
          f"{f' | val {v} (held out of distill)' if (v := i.get('val_size')) else ''}"
          f" | test {i['test_size']} "
          f"({i['test_from']}) | {i['num_classes']} classes | split_seed {i['split_seed']}"
          f" | read from {where(i.get('source', {}))}{ood}")


def where(provenance: dict[str, str]) -> str:
  """``tfds cifar100/3.0.2 in <dir>``, ``image_folder <path>``, ...: a source's provenance in
  a few words (the full record is results.json's ``sizes.source``)."""
  source = provenance.get("source", "?")
  if "data_dir" in provenance and "name" in provenance:
    return f"{source} {provenance['name']} in {provenance['data_dir']}"
  return f"{source} {provenance.get('path') or provenance.get('file') or ''}".strip()
