"""Splits: stratified subsets and halves, the teacher/distill/test sets, OOD append, errors."""
from __future__ import annotations

import numpy as np
import pytest
from ml_collections import ConfigDict

from kd_jax.data import splits
from kd_jax.data.sources import ArrayDataset
from kd_jax.core.errors import ConfigError


def _cfg(**overrides) -> ConfigDict:
  cfg = ConfigDict(dict(
      source="mnist_embedded", name="", path="", data_dir="", cache_dir="", split_seed=0,
      test_size=1000, teacher_pool="train", teacher_subset=200, distill_pool="rest",
      distill_subset=0, max_test=0, normalization="unit_cube",
      ood=ConfigDict(dict(source="", name="", path="", num=0))))
  for k, v in overrides.items():
    if k.startswith("ood_"):
      cfg.ood[k[4:]] = v
    else:
      cfg[k] = v
  return cfg


def _ids(images: np.ndarray) -> np.ndarray:
  """Recovers the identity each synthetic image carries in its first two pixels."""
  return images[:, 0, 0, 0].astype(np.int64) + 256 * images[:, 0, 1, 0].astype(np.int64)


def _dataset(counts, test_counts=None, hw=(4, 4), channels=1, id_offset=0) -> ArrayDataset:
  """Images that encode a unique id, labels with the given per-class counts."""
  def make(cnts, offset):
    labels = np.repeat(np.arange(len(cnts)), cnts).astype(np.int32)
    perm = np.random.default_rng(123).permutation(len(labels))
    labels = labels[perm]  # Classes interleaved, as in real data.
    ids = np.arange(len(labels)) + offset
    x = np.zeros((len(labels),) + hw + (channels,), np.uint8)
    x[:, 0, 0, :] = (ids % 256)[:, None]
    x[:, 0, 1, :] = (ids // 256)[:, None]
    return x, labels

  tx, ty = make(counts, id_offset)
  vx = vy = None
  if test_counts is not None:
    vx, vy = make(test_counts, id_offset + 50000)
  k = len(counts)
  return ArrayDataset(tx, ty, vx, vy, num_classes=k, class_names=[str(i) for i in range(k)])


# ------------------------------------------------------------------ stratified_subset


def test_subset_balanced_is_exact_per_class():
  labels = np.repeat(np.arange(10), 50)[np.random.default_rng(0).permutation(500)]
  idx = splits.stratified_subset(labels, 200, seed=3)
  assert idx.dtype.kind == "i" and np.all(np.diff(idx) > 0)  # Sorted and unique.
  np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10), [20] * 10)


@pytest.mark.parametrize("counts,n,want", [
    ([100, 50, 30, 20], 40, [20, 10, 6, 4]),  # Exactly proportional.
    ([7, 5, 3], 10, [5, 3, 2]),  # Shares 4.67, 3.33, 2: the largest remainder gets the extra.
    ([1, 1, 1, 1], 4, [1, 1, 1, 1]),
])
def test_subset_unbalanced_is_proportional(counts, n, want):
  labels = np.repeat(np.arange(len(counts)), counts)
  idx = splits.stratified_subset(labels, n, seed=0)
  np.testing.assert_array_equal(np.bincount(labels[idx], minlength=len(counts)), want)


def test_subset_ties_stay_within_one_and_sum_to_n():
  labels = np.repeat(np.arange(10), 30)
  for seed in range(5):
    idx = splits.stratified_subset(labels, 205, seed=seed)
    per_class = np.bincount(labels[idx], minlength=10)
    assert per_class.sum() == 205 and set(per_class) == {20, 21}
  # The classes that get the extra image depend on the seed, not on the class index.
  extras = {tuple(np.bincount(labels[splits.stratified_subset(labels, 205, seed=s)]) == 21)
            for s in range(8)}
  assert len(extras) > 1


def test_subset_is_deterministic_by_seed():
  labels = np.repeat(np.arange(5), 40)
  a = splits.stratified_subset(labels, 50, seed=7)
  np.testing.assert_array_equal(a, splits.stratified_subset(labels, 50, seed=7))
  assert not np.array_equal(a, splits.stratified_subset(labels, 50, seed=8))
  assert splits.stratified_subset(labels, 0, seed=7).size == 0
  np.testing.assert_array_equal(splits.stratified_subset(labels, 200, seed=7), np.arange(200))


def test_subset_too_large_names_the_key():
  labels = np.repeat(np.arange(10), 380)
  with pytest.raises(ConfigError) as err:
    splits.stratified_subset(labels, 5000, seed=0)
  assert str(err.value) == ("data.teacher_subset=5000 is larger than the teacher pool "
                            "(3800 images); use at most 3800")
  with pytest.raises(ConfigError, match=r"^data\.max_test=4000 is larger than the test set"):
    splits.stratified_subset(labels, 4000, seed=0, key="data.max_test", pool="test set")
  with pytest.raises(ConfigError, match=r"data\.distill_subset=-1 must be a non-negative"):
    splits.stratified_subset(labels, -1, seed=0, key="data.distill_subset")


# ------------------------------------------------------------------ stratified_halves


def test_halves_are_disjoint_balanced_and_seeded():
  counts = [11, 10, 7, 3, 1]  # Odd classes on purpose.
  labels = np.repeat(np.arange(5), counts)[np.random.default_rng(1).permutation(32)]
  d0, d1 = splits.stratified_halves(labels, seed=4)
  assert np.all(np.diff(d0) > 0) and np.all(np.diff(d1) > 0)
  assert np.intersect1d(d0, d1).size == 0
  np.testing.assert_array_equal(np.union1d(d0, d1), np.arange(32))
  assert len(d0) == 16
  c0, c1 = (np.bincount(labels[d], minlength=5) for d in (d0, d1))
  assert np.all(np.abs(c0 - c1) <= 1)
  np.testing.assert_array_equal(c0 + c1, counts)
  e0, _ = splits.stratified_halves(labels, seed=4)
  np.testing.assert_array_equal(d0, e0)
  assert not np.array_equal(d0, splits.stratified_halves(labels, seed=5)[0])


# ------------------------------------------------------------------ make_splits


def test_carved_test_teacher_and_rest_are_disjoint_and_stratified():
  ds = _dataset([500] * 10)
  s = splits.make_splits(ds, _cfg())
  t, d, v = _ids(s.teacher_x), _ids(s.distill_x), _ids(s.test_x)
  assert (len(t), len(d), len(v)) == (200, 3800, 1000)
  np.testing.assert_array_equal(np.bincount(s.teacher_y, minlength=10), [20] * 10)
  np.testing.assert_array_equal(np.bincount(s.test_y, minlength=10), [100] * 10)
  assert not (set(t) & set(d) or set(t) & set(v) or set(d) & set(v))
  assert set(t) | set(d) | set(v) == set(range(5000))
  # Images and labels stay paired.
  np.testing.assert_array_equal(s.teacher_y, ds.train_labels[t])
  np.testing.assert_array_equal(s.distill_y, ds.train_labels[d])
  np.testing.assert_array_equal(s.test_y, ds.train_labels[v])
  assert np.all(np.diff(t) > 0) and np.all(np.diff(d) > 0)
  assert not s.distill_is_ood.any() and s.distill_is_ood.dtype == bool
  assert s.teacher_y.dtype == s.distill_y.dtype == s.test_y.dtype == np.int32
  assert s.info["teacher_size"] == 200 and s.info["split_seed"] == 0
  assert s.info["test_from"] == "carved from train"
  line = splits.describe(s)
  assert "\n" not in line and all(str(k) in line for k in (200, 3800, 1000))


def test_source_test_split_is_used_and_max_test():
  ds = _dataset([60] * 4, test_counts=[25] * 4)
  s = splits.make_splits(ds, _cfg(teacher_subset=40, test_size=9999))
  np.testing.assert_array_equal(_ids(s.test_x), _ids(ds.test_images))
  assert len(s.distill_y) == 200 and s.info["test_from"] == "test split"
  s = splits.make_splits(ds, _cfg(teacher_subset=40, max_test=40))
  np.testing.assert_array_equal(np.bincount(s.test_y), [10] * 4)
  assert set(_ids(s.test_x)) <= set(_ids(ds.test_images))
  s = splits.make_splits(ds, _cfg(teacher_subset=40, max_test=1000))
  assert len(s.test_y) == 100  # A bound, not a request.


def test_pools_d0_d1_train_and_distill_subset():
  ds = _dataset([40] * 5, test_counts=[2] * 5)
  s = splits.make_splits(ds, _cfg(teacher_pool="d0", teacher_subset=0, distill_pool="d1"))
  t, d = _ids(s.teacher_x), _ids(s.distill_x)
  assert len(t) == len(d) == 100 and not set(t) & set(d)
  np.testing.assert_array_equal(np.bincount(s.teacher_y), [20] * 5)
  np.testing.assert_array_equal(np.bincount(s.distill_y), [20] * 5)

  sub = splits.make_splits(ds, _cfg(teacher_pool="d0", teacher_subset=50, distill_pool="d0"))
  assert set(_ids(sub.teacher_x)) <= set(t) and set(_ids(sub.distill_x)) == set(t)
  np.testing.assert_array_equal(np.bincount(sub.teacher_y), [10] * 5)

  s = splits.make_splits(ds, _cfg(teacher_subset=50, distill_pool="train", distill_subset=150))
  assert set(_ids(s.distill_x)) <= set(range(200)) and len(s.distill_y) == 150
  np.testing.assert_array_equal(np.bincount(s.distill_y), [30] * 5)


def test_determinism_and_independent_streams():
  ds = _dataset([100] * 5)
  a = splits.make_splits(ds, _cfg(test_size=100, teacher_subset=50))
  b = splits.make_splits(ds, _cfg(test_size=100, teacher_subset=50))
  for f in ("teacher_x", "distill_x", "test_x"):
    np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
  c = splits.make_splits(ds, _cfg(test_size=100, teacher_subset=50, split_seed=1))
  assert not np.array_equal(_ids(a.teacher_x), _ids(c.teacher_x))
  # Subsetting the distill pool leaves the teacher and test sets as they were.
  e = splits.make_splits(ds, _cfg(test_size=100, teacher_subset=50, distill_subset=100))
  np.testing.assert_array_equal(_ids(a.teacher_x), _ids(e.teacher_x))
  np.testing.assert_array_equal(_ids(a.test_x), _ids(e.test_x))
  assert set(_ids(e.distill_x)) <= set(_ids(a.distill_x))


def test_ood_append_same_shape():
  ds = _dataset([50] * 4, test_counts=[5] * 4)
  ood = _dataset([300], id_offset=1000)
  s = splits.make_splits(ds, _cfg(teacher_subset=20), ood=ood)
  assert len(s.distill_y) == 180  # ood.num = 0: nothing appended.
  s = splits.make_splits(ds, _cfg(teacher_subset=20, ood_num=70), ood=ood)
  assert len(s.distill_y) == 250 and s.info["distill_ood"] == 70
  np.testing.assert_array_equal(s.distill_is_ood, np.arange(250) >= 180)
  np.testing.assert_array_equal(s.distill_y[180:], -1)
  assert (s.distill_y[:180] >= 0).all()
  ood_ids = _ids(s.distill_x[180:])
  assert len(set(ood_ids)) == 70 and set(ood_ids) <= set(range(1000, 1300))
  again = splits.make_splits(ds, _cfg(teacher_subset=20, ood_num=70), ood=ood)
  np.testing.assert_array_equal(_ids(again.distill_x), _ids(s.distill_x))


def test_ood_is_resized_and_converted():
  ds = _dataset([10] * 2, test_counts=[2] * 2, hw=(4, 4), channels=1)
  colors = np.array([[200, 40, 90], [20, 140, 60], [0, 0, 255]], np.uint8)
  ood = ArrayDataset(np.broadcast_to(colors[:, None, None, :], (3, 8, 8, 3)).copy(),
                     np.zeros(3, np.int32), None, None, 1, ["ood"])
  s = splits.make_splits(ds, _cfg(teacher_subset=4, ood_num=3), ood=ood)
  extra = s.distill_x[s.distill_is_ood]
  assert extra.shape == (3, 4, 4, 1) and extra.dtype == np.uint8
  luma = colors.astype(float) @ np.array([0.299, 0.587, 0.114])  # ITU-R 601.
  np.testing.assert_allclose(extra[:, :, :, 0], np.broadcast_to(luma[:, None, None], (3, 4, 4)),
                             atol=1)
  # Gray → RGB repeats the value.
  rgb = splits.match_images(extra, (6, 6, 3))
  assert rgb.shape == (3, 6, 6, 3) and (rgb == extra[:, :1, :1, :1]).all()


def test_config_errors():
  ds = _dataset([380] * 10, test_counts=[1] * 10)
  with pytest.raises(ConfigError) as err:
    splits.make_splits(ds, _cfg(teacher_subset=5000))
  assert str(err.value) == ("data.teacher_subset=5000 is larger than the teacher pool "
                            "(3800 images); use at most 3800")
  with pytest.raises(ConfigError, match=r"data\.teacher_pool='d1'.*train, d0"):
    splits.make_splits(ds, _cfg(teacher_pool="d1"))
  with pytest.raises(ConfigError, match=r"data\.distill_pool='all'.*rest, teacher, train, d0, d1"):
    splits.make_splits(ds, _cfg(distill_pool="all"))
  with pytest.raises(ConfigError, match=r"data\.distill_subset=4000 is larger than the distill "
                                        r"pool \(3600 images\)"):
    splits.make_splits(ds, _cfg(distill_subset=4000))
  with pytest.raises(ConfigError, match=r"data\.distill_pool='rest' is empty"):
    splits.make_splits(ds, _cfg(teacher_subset=0))
  with pytest.raises(ConfigError, match=r"data\.ood\.num=5 but no OOD dataset"):
    splits.make_splits(ds, _cfg(ood_num=5))
  with pytest.raises(ConfigError, match=r"data\.ood\.num=500 is larger than the OOD train "
                                        r"split \(300 images\)"):
    splits.make_splits(ds, _cfg(ood_num=500), ood=_dataset([300]))
  with pytest.raises(ConfigError, match=r"data\.split_seed=-1 must be a non-negative"):
    splits.make_splits(ds, _cfg(split_seed=-1))
  no_test = _dataset([10] * 3)
  with pytest.raises(ConfigError, match=r"data\.test_size=0 does not fit"):
    splits.make_splits(no_test, _cfg(test_size=0, teacher_subset=3))
  with pytest.raises(ConfigError, match=r"data\.test_size=30 does not fit"):
    splits.make_splits(no_test, _cfg(test_size=30, teacher_subset=3))


def test_mnist_embedded_default_config():
  from kd_jax.data import sources
  s = splits.make_splits(sources.load_source(_cfg()), _cfg())
  assert (len(s.teacher_y), len(s.distill_y), len(s.test_y)) == (200, 3800, 1000)
  np.testing.assert_array_equal(np.bincount(s.distill_y), [380] * 10)
  assert s.teacher_x.shape[1:] == (28, 28, 1) and s.num_classes == 10


def test_teacher_pool_distills_on_exactly_the_teacher_images():
  ds = _dataset([40] * 5, test_counts=[2] * 5)
  sp = splits.make_splits(ds, _cfg(teacher_subset=50, distill_pool="teacher"))
  assert sp.distill_x.shape[0] == 50
  np.testing.assert_array_equal(sp.distill_x, sp.teacher_x)
  np.testing.assert_array_equal(sp.distill_y, sp.teacher_y)
  assert np.bincount(sp.distill_y).tolist() == [10] * 5
