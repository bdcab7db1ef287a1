"""ImageNet transforms and image files through the streamed pipeline.

References are written here with numpy slicing and Pillow resizes on fixed synthetic images
(sizes chosen so the transforms' arithmetic matters: odd sizes, portrait and landscape); the
crop sampler is checked against the RandomResizedCrop rules, not against its own output.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from kd_jax.core import parallel
from kd_jax.data import folder_files, image_files, pipelines, sources
from kd_jax.data.transforms import ImageTransform, random_resized_box
from kd_jax.core.errors import ConfigError


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
  rng = np.random.default_rng(seed)
  return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("w, h", [(500, 375), (333, 500), (256, 256), (97, 61)])
def test_eval_transform_is_resize_shorter_then_center_crop(w, h):
  t = ImageTransform(size=56, resize=64)
  im = _image(w, h)
  # Reference: shorter side → 64, longer scaled and truncated; then the central 56 × 56.
  scale = 64 / min(w, h)
  nw, nh = (64, int(64 * h / w)) if w <= h else (int(64 * w / h), 64)
  assert min(nw, nh) == 64 and abs(max(nw, nh) - max(w, h) * scale) < 1
  big = np.asarray(im.resize((nw, nh), Image.BILINEAR))
  top, left = int(round((nh - 56) / 2)), int(round((nw - 56) / 2))
  np.testing.assert_array_equal(t.eval(im), big[top:top + 56, left:left + 56])


def test_train_transform_is_the_sampled_box_resized_and_maybe_flipped():
  t = ImageTransform(size=48, resize=55)
  im = _image(211, 157, seed=3)
  flips = 0
  for seed in range(12):
    got = t.train(im, np.random.default_rng(seed))
    rng = np.random.default_rng(seed)         # same draws: box first, then the flip coin
    left, top, bw, bh = random_resized_box(211, 157, rng)
    flip = rng.random() < 0.5
    crop = np.asarray(im)[top:top + bh, left:left + bw]
    ref = np.asarray(Image.fromarray(crop).resize((48, 48), Image.BILINEAR))
    np.testing.assert_array_equal(got, ref[:, ::-1] if flip else ref)
    flips += flip
  assert 0 < flips < 12


def test_random_resized_box_follows_the_scale_and_ratio_rules():
  rng = np.random.default_rng(0)
  areas, ratios = [], []
  for _ in range(2000):
    left, top, w, h = random_resized_box(350, 350, rng)   # square: rejection is symmetric
    assert 0 <= left and left + w <= 350 and 0 <= top and top + h <= 350
    areas.append(w * h / (350 * 350))
    ratios.append(w / h)
  areas, ratios = np.asarray(areas), np.asarray(ratios)
  # Rounding w and h moves area and ratio by a pixel's worth at most.
  assert areas.min() >= 0.08 * 0.9 and areas.max() <= 1.0
  assert ratios.min() >= 0.75 * 0.9 and ratios.max() <= 4 / 3 * 1.1
  assert abs(np.mean(np.log(ratios))) < 0.03          # log-uniform around 1
  # Accepted draws of U(0.08, 1): boxes that do not fit (large area, extreme ratio) are
  # redrawn, so the mean sits below 0.54 but well above the small-crop end.
  assert 0.35 < areas.mean() < 0.54


def test_random_resized_box_falls_back_to_a_center_crop_of_allowed_ratio():
  # 1000 × 20: 8% of the area is 1,600 px² but the largest box of ratio ≤ 4/3 is 27 × 20 =
  # 540 px², so no draw fits; the fallback is the central round(20 · 4/3) = 27 × 20 box.
  assert random_resized_box(1000, 20, np.random.default_rng(0)) == ((1000 - 27) // 2, 0, 27, 20)
  assert random_resized_box(20, 1000, np.random.default_rng(0)) == (0, (1000 - 27) // 2, 20, 27)


def _write_folder(root, classes=3, per_class=5):
  sizes = [(40, 30), (30, 44), (37, 37)]
  for split, n in (("train", per_class), ("val", 2)):
    for c in range(classes):
      d = root / split / f"n0{c}"
      d.mkdir(parents=True)
      for i in range(n):
        w, h = sizes[(c + i) % 3]
        buf = io.BytesIO()
        _image(w, h, seed=100 * c + i).save(buf, format="PNG")   # lossless: exact references
        (d / f"img_{i}.PNG").write_bytes(buf.getvalue())


def test_imagenet_layout_folder_lists_files_and_decodes_per_step(tmp_path):
  _write_folder(tmp_path / "in")
  cfg = dict(source="image_folder", path=str(tmp_path / "in"), image_size=24,
             cache_dir=str(tmp_path / "cache"))
  ds = sources.load_source(cfg)
  assert ds.class_names == ["n00", "n01", "n02"]
  assert isinstance(ds.train_images, image_files.ImageFiles)
  assert ds.train_images.shape == (15, 24, 24, 3) and ds.test_images.shape == (6, 24, 24, 3)
  np.testing.assert_array_equal(ds.train_labels, np.repeat(np.arange(3), 5))
  # Eval pixels of file 7 (class 1, img_2): the folder's own file through the reference.
  im = Image.open(tmp_path / "in/train/n01/img_2.PNG").convert("RGB")
  t = ImageTransform(size=24, resize=int(round(24 * 256 / 224)))
  np.testing.assert_array_equal(ds.train_images.decode(np.array([7]))[0], t.eval(im))
  sub = ds.train_images[np.array([7, 0])]
  np.testing.assert_array_equal(sub.decode(np.array([0]))[0], t.eval(im))


def test_streamed_files_cover_each_example_once_with_seeded_crops(tmp_path):
  _write_folder(tmp_path / "in")
  ds = sources.load_source(dict(source="image_folder", path=str(tmp_path / "in"),
                                image_size=16, cache_dir=str(tmp_path / "c")))
  mesh = parallel.make_mesh(2)
  pipe = pipelines.make_pipeline("streamed", ds.train_images, ds.train_labels, mesh)
  assert pipe.input_shape == (16, 16, 3)
  seen = []
  for s, feed in enumerate(pipe.epoch_feeds(5, 1, 1, 0, 4, 1)):
    b = pipe.materialize(None, feed)
    x, mask = np.asarray(b.inputs)[0, 0], np.asarray(b.mask)[0, 0]
    idx, _ = pipelines.epoch_plan(5, 1, 0, 15, 4, 1)
    for j in range(4):     # example j of step s: the train transform from its seed row
      rng = np.random.default_rng([5, 1, 0, s, 0, j])
      i = idx[s, 0, j]
      im = Image.open(tmp_path / "in/train" / str(ds.train_images.read.relpaths[i])
                      .split("/", 1)[1]).convert("RGB")
      np.testing.assert_array_equal(x[j], ImageTransform(16, 18).train(im, rng))
      if mask[j]:
        seen.append(i)
  assert sorted(seen) == list(range(15))


def test_file_images_need_the_streamed_pipeline_and_sane_sizes(tmp_path):
  _write_folder(tmp_path / "in")
  ds = sources.load_source(dict(source="image_folder", path=str(tmp_path / "in"),
                                image_size=16, cache_dir=str(tmp_path / "c")))
  with pytest.raises(ConfigError, match="data.pipeline='streamed'"):
    pipelines.make_pipeline("device", ds.train_images, ds.train_labels, parallel.make_mesh(1))
  with pytest.raises(ConfigError, match="data.eval_resize=10"):
    folder_files.transform_from(dict(image_size=16, eval_resize=10))
  assert math.isclose(folder_files.transform_from(dict(image_size=224)).resize, 256)


def test_tfds_records_become_files_decoded_per_step():
  """A tfds data source read with SkipDecoding hands encoded bytes per record; here a list of
  such records stands in for it (preparing a real encoded set needs TensorFlow)."""
  from kd_jax.data import tfds_source
  images = [_image(30 + 3 * i, 25, seed=i) for i in range(5)]
  records = []
  for i, im in enumerate(images):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    records.append({"image": buf.getvalue(), "label": i % 2})
  files, labels = tfds_source._record_files(records, dict(image_size=12, eval_resize=14))
  np.testing.assert_array_equal(labels, [0, 1, 0, 1, 0])
  assert files.shape == (5, 12, 12, 3)
  t = ImageTransform(12, 14)
  got = files[np.array([3, 1])].decode(np.array([0, 1]))
  for row, i in zip(got, (3, 1)):
    np.testing.assert_array_equal(row, t.eval(images[i]))


def _feeds(pipe, epoch):
  return [np.asarray(pipe.materialize(None, f).inputs) for f in pipe.epoch_feeds(2, 1, 2, epoch,
                                                                                 4, 1)]


def test_a_resumed_pipeline_redraws_the_same_crops(tmp_path):
  """The streamed iterator's state is (epoch, step): crops are drawn from (seed, stream,
  epoch, step, member, position), so a new process that resumes at epoch e (a fresh pipeline,
  as after a kill) feeds exactly what the first one fed. The kill-and-resume run itself is
  tests/test_pipelines.py's streamed test."""
  _write_folder(tmp_path / "in")
  ds = sources.load_source(dict(source="image_folder", path=str(tmp_path / "in"),
                                image_size=16, cache_dir=str(tmp_path / "c")))
  mesh = parallel.make_mesh(2)
  first = pipelines.make_pipeline("streamed", ds.train_images, ds.train_labels, mesh)
  epochs = [_feeds(first, e) for e in range(3)]
  fresh = pipelines.make_pipeline("streamed", ds.train_images, ds.train_labels, mesh)
  for a, b in zip(epochs[2], _feeds(fresh, 2), strict=True):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b) for a, b in zip(epochs[1], epochs[2])), "new crops"
