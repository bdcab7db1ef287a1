"""What the distillation step must not do, checked on the real step (benchmarks/README.md):
recompute the teacher forward, copy the donated state, or wait on the host inside an epoch."""
from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from jax._src.array import ArrayImpl

from benchmarks import jax_side
from kd_jax.train import trainer

#: Convolution layers per model, counted from the architectures: LeNet-5 has two; PreResNet-20
#: has the stem, two per basic block (3 stages × 3 blocks) and two 1x1 projections.
CONV_LAYERS = {"lenet5": 2, "preresnet20": 1 + 2 * 9 + 2}
SHAPES = {"lenet5": (28, 28, 1), "preresnet20": (32, 32, 3)}


def _step(model: str, members: int, batch: int = 8, steps: int = 1):
  """(the case, the jitted chunk function, its arguments for the epoch's first step)."""
  case = jax_side.distill_case(model, 10, SHAPES[model], batch, steps, members, True, "auto")
  phase, mesh = case.box["phase"], case.box["mesh"]
  feed = next(phase.pipeline.epoch_feeds(0, phase.stream, 1, 0, batch, 1))
  fn = trainer._chunk_fn(phase.spec, phase.stream, mesh, jax.tree.structure(feed))
  args = (case.box["state"], phase.pipeline.resident(), feed, jnp.int32(0), jnp.int32(0),
          jnp.int32(0), phase.teacher_vars)
  return case, fn, args


def _check_teacher_forward_runs_once(fn, args, model: str, members: int) -> None:
  """m teacher forwards + the student's forward, kernel gradients and input gradients (none for
  the first layer, whose input is data): (m + 3)·C - 1 convolutions, C conv layers per model."""
  text = fn.lower(*args).as_text()
  assert text.count("stablehlo.convolution") == (members + 3) * CONV_LAYERS[model] - 1
  assert "callback" not in text  # no host round trip hidden in the step


def test_teacher_forward_runs_once_per_step():
  _check_teacher_forward_runs_once(*_step("preresnet20", 2)[1:], "preresnet20", 2)


def test_state_is_donated_and_the_epoch_reads_the_device_only_at_its_end(monkeypatch):
  case, fn, args = _step("lenet5", 2, steps=3)  # 3 steps: a read between steps would show
  _check_teacher_forward_runs_once(fn, args, "lenet5", 2)
  old = args[0]
  # Every device → host read of a jax.Array (np.asarray, float, .item(), device_get) goes
  # through ArrayImpl._value; on the CPU backend transfer guards do not see these reads.
  events = []
  value = ArrayImpl._value
  monkeypatch.setattr(ArrayImpl, "_value",
                      property(lambda self: (events.append("read"), value.fget(self))[1]))
  chunk_fn = trainer._chunk_fn
  monkeypatch.setattr(trainer, "_chunk_fn", lambda *a: (
      lambda *xs: (events.append("step"), chunk_fn(*a)(*xs))[1]))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    case.run()
  first, last = events.index("step"), len(events) - 1 - events[::-1].index("step")
  assert events.count("step") == 3 and "read" not in events[first:last]
  assert not [w for w in caught if "donat" in str(w.message)]  # "donated buffers were not usable"
  assert all(leaf.is_deleted() for leaf in jax.tree.leaves(old.params))  # donated, not copied
  assert int(case.box["state"].step[0]) == 3
  # The step itself moves nothing between host and device when its inputs are on the device.
  args = (case.box["state"],) + args[1:]
  with jax.transfer_guard("disallow"):
    jax.block_until_ready(fn(*args))
