"""``run.dtype=bfloat16``: compute in bfloat16 with float32 parameters. A whole run's losses stay
within a bound justified from the format against the same run in float32.

bfloat16 keeps 8 significant bits: each rounding errs by at most 2⁻⁹ ≈ 0.2% relative. A
PreResNet-8 (LayerNorm, quarter width) forward pass rounds activations at ~10 layers, so logits carry up to ~1% relative error and the
cross-entropy of a near-uniform prediction (≈ log 10 = 2.30) moves by far less than 2%; the
parameters and optimizer stay float32, so one epoch of updates adds rounding of the same order.
A 3% bound on the first epochs' running losses therefore holds with margin, while a wrong cast
(float16 overflow, a bfloat16 optimizer state, logits not returned in float32) breaks it.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from kd_jax.config import model_config
from kd_jax.core.errors import ConfigError
from kd_jax.runner import experiment
from kd_jax.runner.validate import validate
from tiny import tiny_config


def _losses(workdir):
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {(r["phase"], r["epoch"]): r["running"]["loss"] for r in rows}


def test_bfloat16_run_stays_within_the_format_bound_of_float32(tmp_path):
  runs = {}
  for dtype in ("float32", "bfloat16"):
    c = tiny_config(tmp_path / f"store_{dtype}", teacher_epochs=1, distill_epochs=1)
    with c.unlocked():
      c.run.dtype = dtype
      c.teacher.model = c.distill.model = model_config("preresnet", depth=8, norm="layer",
                                                       width=0.25)
      # Only the evaluations read below (the running losses, the test split's numbers): each
      # evaluator is another compilation per dtype, and evals change no number of the run.
      c.teacher.evals, c.distill.evals = ("running",), ("test", "running")
    res = experiment.run(c, tmp_path / dtype)
    runs[dtype] = (res, _losses(tmp_path / dtype))
  (_, l32), (r16, l16) = runs["float32"], runs["bfloat16"]
  assert l32.keys() == l16.keys() == {("teacher", 1), ("distill", 1)}
  for key in l32:
    assert np.isfinite(l16[key])
    assert abs(l16[key] - l32[key]) <= 0.03 * abs(l32[key]), (key, l16[key], l32[key])
  assert l16 != l32, "the bfloat16 run computed in float32"
  assert r16["splits"]["test"]["teacher_acc"] >= 0 and r16["splits"]["test"]["kl"] >= 0


def test_bfloat16_with_a_float32_only_model_is_one_line():
  """LeNet-5 has no compute dtype: bfloat16 asked of it would silently run float32."""
  c = tiny_config("unused")
  with c.unlocked():
    c.run.dtype = "bfloat16"
  with pytest.raises(ConfigError, match=r"^run\.dtype='bfloat16' but teacher\.model\.name="
                     r"'lenet5' computes in float32 only; use run\.dtype=float32, or a model "
                     r"that takes a dtype: .*preresnet"):
    validate(c)
