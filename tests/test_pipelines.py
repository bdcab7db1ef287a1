"""Input pipelines: the same examples per epoch whichever pipeline feeds them, exact resume.

References are numpy permutations checked here (each example once per epoch), and runs of the
other pipeline — never stored numbers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from equivalence import assert_same_training
from kd_jax.core import checkpoints, parallel
from kd_jax.runner import experiment, teachers
from kd_jax.runner.identity import teacher_key
from kd_jax.train import writer as report
from kd_jax.core.batch import Batch, sharded_specs
from kd_jax.data import inputs, pipelines
from tiny import tiny_config

N, BATCH, MEMBERS = 37, 8, 2


def _arrays():
  """Each image holds its own index in every pixel, so a batch tells which examples it has."""
  idx = np.arange(N)
  images = np.broadcast_to(idx[:, None, None, None], (N, 2, 2, 1)).astype(np.uint8)
  return images, (idx % 5).astype(np.int32)


def _epoch(pipe, epoch, steps_per_call=1):
  """[steps, members, batch] example indices and masks as a pipeline materializes them."""
  resident = pipe.resident()
  ids, masks = [], []
  for feed in pipe.epoch_feeds(3, 1, MEMBERS, epoch, BATCH, steps_per_call):
    for s in range(jax.tree.leaves(feed)[0].shape[0]):
      b = pipe.materialize(resident, jax.tree.map(lambda a: a[s], feed))
      ids.append(np.asarray(b.inputs)[..., 0, 0, 0])
      masks.append(np.asarray(b.mask))
      np.testing.assert_array_equal(np.asarray(b.labels), ids[-1] % 5)
  return np.stack(ids), np.stack(masks)


@pytest.mark.parametrize("steps_per_call", [1, 2])
def test_device_and_streamed_pipelines_visit_the_same_examples(steps_per_call):
  mesh = parallel.make_mesh(4)
  images, labels = _arrays()
  device = pipelines.DeviceResident(images, labels, mesh)
  streamed = pipelines.HostStreamed(pipelines.ArraySource(images, labels), mesh)
  for epoch in (0, 1):
    ids_d, mask_d = _epoch(device, epoch, steps_per_call)
    ids_s, mask_s = _epoch(streamed, epoch, steps_per_call)
    np.testing.assert_array_equal(ids_d, ids_s)
    np.testing.assert_array_equal(mask_d, mask_s)
    assert ids_d.shape == (-(-N // BATCH), MEMBERS, BATCH)
    for m in range(MEMBERS):  # each example exactly once among the unmasked slots
      seen = ids_d[:, m][mask_d[:, m]]
      np.testing.assert_array_equal(np.sort(seen), np.arange(N))
    assert not np.array_equal(ids_d[:, 0], ids_d[:, 1]), "members need their own order"
  assert not np.array_equal(_epoch(device, 0)[0], _epoch(device, 1)[0]), "epochs reshuffle"


def test_eval_feeds_cover_a_split_in_order():
  mesh = parallel.make_mesh(4)
  images, labels = _arrays()
  for pipe in (pipelines.DeviceResident(images, labels, mesh),
               pipelines.HostStreamed(pipelines.ArraySource(images, labels), mesh)):
    got = [pipe.materialize(pipe.resident(), f) for f in pipe.eval_feeds(BATCH, limit=30)]
    ids = np.concatenate([np.asarray(b.inputs)[:, 0, 0, 0][np.asarray(b.mask)] for b in got])
    np.testing.assert_array_equal(ids, np.arange(30))


def test_specs_follow_the_batch_fields():
  x = jnp.zeros((2, 4, 3))
  plain = Batch(x, jnp.zeros((2, 4), jnp.int32), jnp.ones((2, 4), bool))
  text = plain.replace(lengths=jnp.ones((2, 4), jnp.int32))
  assert len(jax.tree.leaves(sharded_specs(plain, 1, "data"))) == 3
  specs = sharded_specs(text, 1, "data")
  assert specs.lengths == P(None, "data") and specs.is_real is None


def _streamed(c):
  with c.unlocked():
    c.data.pipeline = "streamed"
  return c


def test_teacher_trained_through_either_pipeline_is_the_same(tmp_path):
  def train(c, name):
    mesh = parallel.make_mesh(c.run.num_devices)
    data = inputs.load(c.data, mesh)
    return teachers.get_teacher(c.teacher, teacher_key(c.data, c.teacher), c.run, tmp_path / name,
                                data, mesh, report.MetricWriter(tmp_path / name, tensorboard=False))

  device = train(tiny_config(tmp_path / "sd", members=2, devices=2), "wd")
  streamed = train(_streamed(tiny_config(tmp_path / "ss", members=2, devices=2)), "ws")
  assert_same_training(streamed.final, device.final, device.initial)


class _Kill(Exception):
  pass


def test_streamed_run_killed_and_resumed_ends_the_same(tmp_path):
  store = tmp_path / "store"
  straight = experiment.run(_streamed(tiny_config(store, distill_epochs=3)), tmp_path / "a")

  def kill(phase, epoch):
    if phase == "distill" and epoch == 1:
      raise _Kill()

  with pytest.raises(_Kill):
    experiment.run(_streamed(tiny_config(store, distill_epochs=3)), tmp_path / "b", hook=kill)
  resumed = experiment.run(_streamed(tiny_config(store, distill_epochs=3)), tmp_path / "b")
  assert resumed["splits"] == straight["splits"]
  # The parameters themselves, from each run's last checkpoint: bitwise equal.
  trees = []
  for w in "ab":
    ckpt = checkpoints.Checkpointer(tmp_path / w / "checkpoints" / "student")
    assert ckpt.latest() == 3
    trees.append(ckpt.read(3))
    ckpt.close()
  for x, y in zip(jax.tree.leaves(trees[0]), jax.tree.leaves(trees[1]), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
