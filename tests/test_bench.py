"""The benchmark stays runnable: both sides build the same architectures and take a step.

No timing is asserted (timings depend on the machine and its load); ``-m bench`` runs the whole
command at toy size.
"""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the benchmark needs the bench extra (PyTorch)")

from PIL import Image  # noqa: E402

from benchmarks import host_loader, jax_side, run, torch_ref, torch_side  # noqa: E402

SHAPES = {"lenet5": ((28, 28, 1), 10), "preresnet20": ((32, 32, 3), 100),
          "preresnet56": ((32, 32, 3), 100)}


def _param_count_by_hand(name: str, classes: int) -> int:
  """Independent counts from the layer shapes (conv k·k·cin·cout, BN 2c, dense in·out + out)."""
  if name == "lenet5":
    return (25 * 6 + 6) + (25 * 6 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
  bottleneck, n = (True, 6) if name == "preresnet56" else (False, 3)
  total, cin = 9 * 3 * 16, 16
  for planes, stride in zip((16, 32, 64), (1, 2, 2)):
    for b in range(n):
      s = stride if b == 0 else 1
      if bottleneck:
        out = 4 * planes
        total += (2 * cin + cin * planes + 2 * planes + 9 * planes * planes + 2 * planes
                  + planes * out)
      else:
        out = planes
        total += 2 * cin + 9 * cin * planes + 2 * planes + 9 * planes * planes
      total += cin * out if (s != 1 or cin != out) else 0
      cin = out
  return total + 2 * cin + cin * classes + classes


@pytest.mark.parametrize("name", list(SHAPES))
def test_both_sides_have_the_same_parameter_count(name):
  shape, classes = SHAPES[name]
  net = jax_side.build_model(name, classes)
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros((1,) + shape)))
  ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
  assert ours == torch_ref.param_count(torch_ref.build(name, classes)) == \
      _param_count_by_hand(name, classes)


def test_one_distill_step_runs_on_both_sides():
  """(Donation, host reads and the teacher-forward count: tests/test_step_checks.py.)"""
  shape, classes = SHAPES["lenet5"]
  case = jax_side.distill_case("lenet5", classes, shape, 8, 1, 2, True, "auto")
  ref = torch_side.distill_case("lenet5", classes, shape, 8, 1, 2, True)
  assert case.params == ref.params
  case.run()
  assert int(case.box["state"].step[0]) == 1
  ref.run()


def test_host_transforms_are_torchvision_crop_flip_and_unit_cube():
  """Pad 4 with zeros, the 32x32 window at (top, left), the optional flip, then [-1, 1] CHW,
  against numpy written here."""
  img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
  for top, left, flip in [(0, 8, False), (3, 5, True), (8, 0, True)]:
    want = padded[top:top + 32, left:left + 32]
    want = (want[:, ::-1] if flip else want).transpose(2, 0, 1) / 127.5 - 1.0
    got = host_loader.to_normalized_tensor(
        host_loader.crop_flip(Image.fromarray(img), top, left, flip))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
  x, y = host_loader.HostTransformed(img[None], np.array([3]))[0]
  assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y == 3


@pytest.mark.bench
def test_benchmark_command_runs_at_toy_size(tmp_path):
  run.main(["--rows=lenet5,epoch_pr20", "--batch=8", "--steps=1", "--repeats=2",
            "--epoch_images=16", "--fold=both", f"--out={tmp_path}", "--name=toy"])
  rows = json.loads((tmp_path / "toy.json").read_text())["rows"]
  assert [(r["row"], r["fold_teacher_bn"], r["steps"], len(r["jax_s"])) for r in rows] == [
      ("lenet5", False, 1, 2), ("lenet5", True, 1, 2), ("epoch_pr20", False, 2, 2),
      ("epoch_pr20", True, 2, 2)]
  assert all(r["jax_img_s"] > 0 and r["torch_img_s"] > 0 for r in rows)
  assert "| setting |" in (tmp_path / "toy.md").read_text()


@pytest.mark.bench
def test_benchmark_dtypes_and_steps_per_call_are_kd_jax_variants(tmp_path):
  run.main(["--rows=lenet5", "--batch=8", "--steps=2", "--repeats=1", "--steps_per_call=1,2",
            "--dtypes=float32,bfloat16", f"--out={tmp_path}", "--name=toy"])
  rows = json.loads((tmp_path / "toy.json").read_text())["rows"]
  assert [(r["dtype"], r["steps_per_call"]) for r in rows] == [
      ("float32", 1), ("float32", 2), ("bfloat16", 1), ("bfloat16", 2)]
  assert "| bfloat16 | 2 |" in (tmp_path / "toy.md").read_text()


@pytest.mark.parametrize("args,needle", [
    (["--dtypes=fp16"], "unknown --dtypes ['fp16']"),
    (["--steps=3", "--steps_per_call=1,2"],
     "--steps_per_call=1,2 must be whole numbers ≥ 1 that divide --steps=3"),
    (["--steps_per_call=two"], "--steps_per_call=two must be whole numbers"),
    (["--rows=lenet7"], "unknown rows ['lenet7']"),
])
def test_benchmark_bad_arguments_are_one_line(args, needle):
  with pytest.raises(SystemExit) as e:
    run.main(args + ["--out="])
  assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.bench
def test_accelerator_script_runs_at_smoke_size(tmp_path):
  """benchmarks/accelerator.py at --smoke size on whatever backend is here (no timings)."""
  from benchmarks import accelerator
  accelerator.main(["--smoke", "--rows=pr56x5", f"--out={tmp_path}", "--name=smoke"])
  record = json.loads((tmp_path / "smoke.json").read_text())
  (row,) = record["rows"]
  assert set(row["results"]) == set(accelerator.TORCH) | set(accelerator.JAX)
  assert all(r["img_s"] > 0 for r in row["results"].values())
  assert {"one", "vmap", "unroll", "200_epochs_min"} <= set(record["teacher"])
  assert "| setting |" in (tmp_path / "smoke.md").read_text()


def test_op_profile_parser_accounts_for_the_step(tmp_path):
  """benchmarks/profile_ops.py --smoke: kd_jax's per-kind times (thunks of the step program,
  shared out over the trace) add up to the program's span in the trace (every instant of it
  goes to some kind), which lies inside the traced step's wall time (the rest, dispatch from
  Python, is reported apart and grows with the machine's load, so it is not bounded here);
  every thunk in the trace is an instruction of the compiled module, and convolutions of all
  three kinds are found (PreResNet-20: 21 conv layers, forward, input and weight gradients)."""
  from benchmarks import profile_ops
  result = profile_ops.main(["--smoke", f"--out={tmp_path}", "--name=t"])
  (row,) = result["rows"]
  j = row["jax"]
  assert not j["thunks_not_in_hlo"]
  assert sum(j["kinds_ms"].values()) == pytest.approx(j["program_ms"], rel=0.01)
  assert 0 < j["program_ms"] <= j["step_ms_traced"] * 1.001
  assert all(j["kinds_ms"].get(k, 0) > 0 for k in (profile_ops.CONV_FWD, profile_ops.CONV_IN,
                                                   profile_ops.CONV_W, profile_ops.NORM))
  t = row["torch"]
  assert t["kinds_ms"].get(profile_ops.CONV_BWD, 0) > 0 and t["kinds_ms"][profile_ops.OPT] > 0
  assert "| conv weight-grad" in (tmp_path / "profile_ops_t.md").read_text().replace(
      "&nbsp;", "")


def test_weight_gradient_convolutions_are_told_from_forward_and_input_gradients():
  """The HLO classifier on the three convolutions of one layer's forward + backward."""
  from benchmarks import profile_ops

  def loss(w, x):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(y ** 2)

  x, w = jnp.ones((4, 16, 16, 8)), jnp.ones((3, 3, 8, 8))
  text = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(w, x).compile().as_text()
  _, instrs, comps = profile_ops.parse_hlo(text)
  kinds = sorted(profile_ops.classify(i, comps) for i in instrs.values()
                 if i["opcode"] == "convolution" and i["comp"] and "fused" not in i["comp"]
                 or (i["opcode"] == "fusion" and any(
                     b["opcode"] == "convolution" for b in comps.get(i["calls"], []))))
  assert kinds == sorted([profile_ops.CONV_FWD, profile_ops.CONV_IN, profile_ops.CONV_W])


def test_transposed_bytes_reads_each_transpose_shape_and_dtype():
  """The load-independent count of benchmarks.profile_ops --hlo, on HLO lines written here:
  bytes = product of the dimensions × 4 (f32) or 2 (bf16); other ops are not counted."""
  from benchmarks import profile_ops
  text = "\n".join([
      "  %transpose.4 = f32[32,32,128,16]{3,1,0,2} transpose(%param_0.4), dimensions={1,2,0,3}",
      "  ROOT %copy.4 = f32[32,32,128,16]{3,2,1,0} copy(%transpose.4)",
      "  %transpose.9 = bf16[3,3,8,4]{1,0,2,3} transpose(%p), dimensions={2,3,0,1}",
      "  %add.1 = f32[8]{0} add(%a, %b)"])
  assert profile_ops.transposed_bytes(text) == [32 * 32 * 128 * 16 * 4, 3 * 3 * 8 * 4 * 2]
