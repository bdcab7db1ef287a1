"""benchmarks/xla_flags.py's bookkeeping (no timing): settings alternate their order each round,
a bad --variant is one line, and the summary is the medians a brute-force loop computes."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from benchmarks import xla_flags


def _record(values: dict[str, tuple[float, float]]) -> dict:
  return {"rows": [{"row": row, "label": row.upper(), "jax_img_s": j, "torch_img_s": t}
                   for row, (j, t) in values.items()]}


def test_order_alternates_so_each_setting_is_first_and_last():
  names = ["default", "a", "b"]
  assert xla_flags.order(names, 0) == names
  assert xla_flags.order(names, 1) == names[::-1]
  assert xla_flags.order(names, 2) == names


@pytest.mark.parametrize("bad", ["no_colon", "default:--x", "bad name:--x", ":--x"])
def test_a_bad_variant_is_one_line_naming_it(bad):
  with pytest.raises(SystemExit) as e:
    xla_flags.parse_variant(bad)
  msg = str(e.value)
  assert msg.startswith("error: --variant") and repr(bad) in msg and "\n" not in msg
  assert xla_flags.parse_variant("no_ynn:--a= --b=false") == ("no_ynn", "--a= --b=false")


def test_summary_is_the_median_over_rounds_against_the_same_rounds_default():
  rng = np.random.default_rng(0)
  rows, settings, rounds = ["pr20", "lenet5"], ["default", "v1", "v2"], 3
  jax = {(s, r, k): float(rng.uniform(10, 100)) for s, r, k in
         itertools.product(settings, rows, range(rounds))}
  torch = {(s, r, k): float(rng.uniform(10, 100)) for s, r, k in
           itertools.product(settings, rows, range(rounds))}
  runs = {s: [_record({r: (jax[s, r, k], torch[s, r, k]) for r in rows})
              for k in range(rounds)] for s in settings}
  got = {(e["setting"], e["row"]): e for e in xla_flags.summarize(runs)}
  assert len(got) == len(rows) * len(settings)
  for s, r in itertools.product(settings, rows):
    j = [jax[s, r, k] for k in range(rounds)]
    t = [torch[s, r, k] for k in range(rounds)]
    e = got[s, r]
    assert e["label"] == r.upper() and e["rounds"] == rounds
    np.testing.assert_allclose(e["jax_img_s"], np.median(j))
    np.testing.assert_allclose(e["torch_img_s"], np.median(t))
    np.testing.assert_allclose(e["ratio"], np.median(np.divide(j, t)))
    vs = [jax[s, r, k] / jax["default", r, k] for k in range(rounds)]
    np.testing.assert_allclose(e["vs_default"], np.median(vs))
  assert all(got["default", r]["vs_default"] == 1.0 for r in rows)
