"""Where one training step's time goes, by kind of op, in kd_jax (XLA:CPU) and in PyTorch.

    python -m benchmarks.profile_ops                        # pr20 and teacher_pr56, batch 128
    python -m benchmarks.profile_ops --rows=pr20 --batch=128,256,512 --steps=4
    python -m benchmarks.profile_ops --smoke                # batch 8, 2 steps: the parser works

Both sides are the benchmark's (``benchmarks/jax_side.py``, ``benchmarks/torch_side.py``): the
same step as ``python -m benchmarks.run`` times. After a warm-up, each side runs one call of
``--steps`` steps untraced (its step time), then one under its profiler:

- kd_jax: ``jax.profiler.trace`` (its Chrome-trace JSON). XLA:CPU records one event per thunk
  (fusion, convolution, copy, ...) of the step program, named as the instruction in the
  compiled HLO; the compiled module (``lower(...).compile().as_text()``) gives each its op kind.
  Time is shared out by a sweep over the program's run: at each instant, equally among the
  thunks running then; between thunks (an asynchronous convolution finishing on the pool
  threads, the executor, a thread waiting for a core) to the thunk started last. That last part
  is reported as ``gap`` in the JSON. What lies outside the program's runs (dispatch from
  Python, the epoch plan, the read-back of the sums) is the row ``outside the step program``.
- PyTorch: ``torch.profiler`` (CPU). Each op's self time goes to the kind of its outermost
  enclosing model op (a convolution, its backward, a BatchNorm, a dense layer), or, inside the
  optimizer's step or the input preparation, to those; else to the op's own kind.
  PyTorch's convolution backward is one op (input and weight gradients together), so the two
  split rows of kd_jax are compared with it on the row ``conv backward (input + weight)``.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import functools
import glob
import gzip
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable

import jax
import jax.numpy as jnp

from benchmarks import jax_side, report, run, torch_ref, torch_side

PROFILED_ROWS = ("pr20", "teacher_pr56")
CONV_FWD, CONV_IN, CONV_W, CONV_BWD = ("conv forward", "conv input-grad", "conv weight-grad",
                                       "conv backward (input + weight)")
KINDS = (CONV_FWD, CONV_IN, CONV_W, "norm (BatchNorm)", "dense (matmul)", "elementwise",
         "reduction", "optimizer update", "input (gather, crop, flip, normalize)",
         "copies / transposes", "other")
NORM, DENSE, ELEM, RED, OPT, INPUT, COPY, OTHER = KINDS[3:]
OUTSIDE = "outside the step program"

# ------------------------------------------------------------------------------------------
# kd_jax: the compiled HLO module → op kind of each instruction (= thunk name)

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.+?)\s+([\w\-]+)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY\s+)?%([\w.\-]+)\s.*\{\s*$")
CONTAINERS = {"while", "call", "conditional"}  # their thunks hold nested thunks: not counted
ELEMENTWISE_OPS = {
    "add", "subtract", "multiply", "divide", "maximum", "minimum", "negate", "exponential",
    "log", "rsqrt", "sqrt", "select", "compare", "convert", "and", "or", "xor", "not", "abs",
    "power", "tanh", "logistic", "clamp", "sign", "floor", "ceil", "round-nearest-even",
    "shift-left", "shift-right-logical", "shift-right-arithmetic", "exponential-minus-one",
    "log-plus-one", "remainder", "cosine", "sine", "is-finite", "broadcast", "iota"}
COPY_OPS = {"copy", "transpose"}
REDUCE_OPS = {"reduce", "reduce-window", "select-and-scatter"}


def parse_hlo(text: str) -> tuple[str, dict[str, dict], dict[str, list[dict]]]:
  """(module name, instructions by name, fused/called computations by name)."""
  module = re.search(r"^HloModule\s+([\w.\-]+)", text, re.M).group(1)
  instrs: dict[str, dict] = {}
  comps: dict[str, list[dict]] = collections.defaultdict(list)
  comp = None
  for line in text.splitlines():
    m = _COMP.match(line)
    if m and "=" not in line.split("{")[0].split("(")[0]:
      comp = m.group(1)
      continue
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode, rest = m.groups()
    meta = re.search(r'op_name="([^"]*)"', rest)
    calls = re.search(r"calls=%([\w.\-]+)", rest)
    ins = dict(name=name, shape=shape, opcode=opcode, rest=rest, comp=comp,
               op_name=meta.group(1) if meta else "", calls=calls.group(1) if calls else None)
    instrs[name] = ins
    comps[comp].append(ins)
  return module, instrs, comps


def _dims(shape: str) -> list[int]:
  m = re.search(r"\[([\d,]*)\]", shape)
  return [int(d) for d in m.group(1).split(",") if d] if m else []


def conv_kind(ins: dict) -> str:
  """Forward, input-gradient or weight-gradient convolution.

  A weight gradient convolves the activations with the output gradient over the whole image:
  its window is the image and its output (the kernel) is smaller than the window in every
  spatial dimension; XLA drops the JAX metadata on these. Otherwise a convolution under
  ``transpose(...)`` (JAX's backward pass) is an input gradient, anything else a forward one.
  """
  window = re.search(r"window=\{size=([\dx]+)", ins["rest"])
  labels = re.search(r"dim_labels=\w+_\w+->(\w+)", ins["rest"])
  if window and labels:
    size = [int(s) for s in window.group(1).split("x")]
    out = _dims(ins["shape"])
    spatial = [out[i] for i, c in enumerate(labels.group(1)) if c.isdigit()]
    if len(spatial) == len(size) and all(o < w for o, w in zip(spatial, size)):
      return CONV_W
  return CONV_IN if "transpose(" in ins["op_name"] else CONV_FWD


def _body(ins: dict, comps: dict) -> list[dict]:
  return comps.get(ins["calls"], []) if ins["opcode"] in ("fusion", "custom-call") else []


def classify(ins: dict, comps: dict) -> str:
  """Op kind of one thunk (an instruction of a computation the executor runs)."""
  body = _body(ins, comps)
  ops = {ins["opcode"]} | {b["opcode"] for b in body}
  conv = [b for b in [ins] + body if b["opcode"] == "convolution"]
  if conv:
    c = dict(conv[0])
    c["op_name"] = c["op_name"] or ins["op_name"]
    return conv_kind(c)
  if "dot" in ops:
    return DENSE
  names = " ".join([ins["op_name"]] + [b["op_name"] for b in body])
  if "/input/" in names or names.startswith("input/"):
    return INPUT
  if "/optimizer/" in names:
    return OPT
  if ops & COPY_OPS or ins["name"].startswith(("copy", "transpose")):
    return COPY
  if re.search(r"/\w*norm\w*/", ins["op_name"]):
    return NORM
  if ops & REDUCE_OPS:
    return RED
  if ins["opcode"] == "fusion" or ins["opcode"] in ELEMENTWISE_OPS:
    return ELEM
  return OTHER


def hlo_kinds(text: str) -> tuple[str, dict[str, str]]:
  """(module name, {thunk name: op kind}); container thunks (while, call) map to None."""
  module, instrs, comps = parse_hlo(text)
  return module, {n: (None if i["opcode"] in CONTAINERS else classify(i, comps))
                  for n, i in instrs.items()}


# ------------------------------------------------------------------------------------------
# kd_jax: the trace → time per thunk

def read_trace(trace_dir: str) -> list[dict]:
  """The Chrome-trace events of the newest run under ``trace_dir``."""
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
                 key=os.path.getmtime)
  hosts = [f for f in files if not f.endswith("perfetto_trace.json.gz")]
  path = (hosts or files)[-1]
  with gzip.open(path) as f:
    data = json.load(f)
  return data["traceEvents"] if isinstance(data, dict) else data


def thunk_runs(events: Iterable[dict], module: str) -> dict[str, list[dict]]:
  """Complete ("X") thunk events of ``module``, by execution (run id)."""
  runs: dict[str, list[dict]] = collections.defaultdict(list)
  for e in events:
    a = e.get("args") or {}
    if e.get("ph") == "X" and a.get("hlo_module") == module and "hlo_op" in a:
      runs[a.get("run_id", "")].append(e)
  return runs


def sweep(events: list[dict], counted: set[str]) -> tuple[dict[str, float], dict[str, float],
                                                           float]:
  """Shares one run's wall time (µs) among its thunks: ({op: µs}, {op: µs of it in gaps},
  span). At each instant the thunks running share it equally; an instant with none goes to
  the thunk started last (a convolution can finish asynchronously on the pool threads)."""
  evs = sorted((e for e in events if e["args"]["hlo_op"] in counted), key=lambda e: e["ts"])
  if not evs:
    return {}, {}, 0.0
  points = sorted({e["ts"] for e in evs} | {e["ts"] + e["dur"] for e in evs})
  starts = collections.defaultdict(list)
  for e in evs:
    starts[e["ts"]].append(e)
  share: dict[str, float] = collections.defaultdict(float)
  gap: dict[str, float] = collections.defaultdict(float)
  active: list[dict] = []
  last = None
  for t0, t1 in zip(points, points[1:]):
    for e in starts.get(t0, ()):
      active.append(e)
      last = e
    active = [e for e in active if e["ts"] + e["dur"] > t0]
    dt = t1 - t0
    if active:
      for e in active:
        share[e["args"]["hlo_op"]] += dt / len(active)
    elif last is not None:
      share[last["args"]["hlo_op"]] += dt
      gap[last["args"]["hlo_op"]] += dt
  return dict(share), dict(gap), points[-1] - points[0]


def step_program(case: jax_side.Case) -> str:
  """The compiled HLO text of the case's jitted call (the program the trace's thunks run)."""
  box = case.box
  phase, mesh = box["phase"], box["mesh"]
  feed = next(phase.pipeline.epoch_feeds(phase.seed, phase.stream, box["members"], 0,
                                         phase.batch_size, phase.steps_per_call))
  from kd_jax.train import trainer
  fn = trainer._chunk_fn(phase.spec, phase.stream, mesh, jax.tree.structure(feed))
  args = (box["state"], phase.pipeline.resident(), feed, jnp.int32(0), jnp.int32(0),
          jnp.int32(0), phase.teacher_vars)
  return fn.lower(*args).compile().as_text()


_TRANSPOSE = re.compile(r"= (f32|bf16|f16)\[([\d,]*)\]\{[\d,]*\} transpose\(")


def transposed_bytes(text: str) -> list[int]:
  """Bytes of each transpose in a compiled module (each is materialised by the copy XLA:CPU
  puts after it). A count from the program, so the same on a loaded or a quiet machine."""
  out = []
  for dtype, dims in _TRANSPOSE.findall(text):
    n = 1
    for d in (int(d) for d in dims.split(",") if d):
      n *= d
    out.append(n * (4 if dtype == "f32" else 2))
  return out


def hlo_row(name: str, batch: int, steps: int) -> dict:
  """Load-independent structure of a row's step: the transposes compiled into it."""
  kind, model, (shape, classes), members, augment, label = run.ROWS[name]
  case = jax_side.CASES[kind](model, classes, shape, batch, steps, members, augment, "auto")
  sizes = transposed_bytes(step_program(case))
  big = [b for b in sizes if b >= 1 << 20]
  return dict(row=name, label=label, batch=batch, steps=steps, transposes=len(sizes),
              transposed_mb=sum(sizes) / 1e6, transposes_over_1mib=len(big))


def jax_profile(case: jax_side.Case, steps: int, trace_dir: str) -> dict:
  """Untraced and traced time of one call (``steps`` steps) and its per-kind breakdown."""
  module, kinds = hlo_kinds(step_program(case))
  untraced = run.timed(case.run)
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    traced = run.timed(case.run)
  runs = thunk_runs(read_trace(trace_dir), module)
  if len(runs) != steps:
    raise RuntimeError(f"expected {steps} runs of {module} in the trace, found {len(runs)}")
  counted = {n for n, k in kinds.items() if k is not None}
  by_kind: dict[str, float] = collections.defaultdict(float)
  gap_kind: dict[str, float] = collections.defaultdict(float)
  by_op: dict[str, float] = collections.defaultdict(float)
  unknown: set[str] = set()
  span = 0.0
  for evs in runs.values():
    unknown |= {e["args"]["hlo_op"] for e in evs} - set(kinds)
    share, gap, s = sweep(evs, counted | unknown)
    span += s
    for op, us in share.items():
      k = kinds.get(op) or OTHER
      by_kind[k] += us
      by_op[op] += us
      gap_kind[k] += gap.get(op, 0.0)
  ms = lambda us: us / 1e3 / steps
  top = sorted(by_op.items(), key=lambda kv: -kv[1])[:25]
  return dict(
      module=module, step_ms_untraced=1e3 * untraced / steps, step_ms_traced=1e3 * traced / steps,
      program_ms=ms(span), kinds_ms={k: ms(v) for k, v in by_kind.items()},
      gap_ms={k: ms(v) for k, v in gap_kind.items()},
      outside_ms=1e3 * traced / steps - ms(span), thunks_per_step=len(next(iter(runs.values()))),
      thunks_not_in_hlo=sorted(unknown),
      top_ops_ms=[(op, kinds.get(op) or OTHER, ms(us)) for op, us in top])


# ------------------------------------------------------------------------------------------
# PyTorch: the profiler's events → time per kind

INPUT_SCOPE = "bench::input"
_TORCH_MODEL = [  # (substring of an event name, kind); the outermost match on the stack wins
    ("ConvolutionBackward", CONV_BWD), ("convolution_backward", CONV_BWD),
    ("aten::conv2d", CONV_FWD), ("aten::convolution", CONV_FWD),
    ("aten::_convolution", CONV_FWD), ("mkldnn_convolution", CONV_FWD),
    ("batch_norm", NORM), ("BatchNorm", NORM),
    ("aten::linear", DENSE), ("aten::addmm", DENSE), ("AddmmBackward", DENSE),
    ("aten::mm", DENSE), ("MmBackward", DENSE)]
_TORCH_OP = [  # the op's own kind (nearest match)
    ("aten::copy_", COPY), ("aten::contiguous", COPY), ("aten::clone", COPY),
    ("aten::_to_copy", COPY), ("aten::to", COPY), ("aten::flip", COPY),
    ("sum", RED), ("mean", RED), ("Mean", RED), ("Sum", RED), ("softmax", RED),
    ("Softmax", RED), ("logsumexp", RED), ("LogSumExp", RED), ("argmax", RED),
    ("aten::max", RED), ("aten::min", RED),
    ("aten::", ELEM), ("Backward", ELEM)]


def torch_kind(event) -> str:
  chain, e = [], event
  while e is not None:
    chain.append(e.name)
    e = e.cpu_parent
  if any(n.startswith("Optimizer.") for n in chain):
    return OPT
  if INPUT_SCOPE in chain:
    return INPUT
  for name in reversed(chain):  # outermost first
    for key, kind in _TORCH_MODEL:
      if key in name:
        return kind
  for name in chain:  # nearest first
    for key, kind in _TORCH_OP:
      if key in name:
        return kind
  return OTHER


@contextlib.contextmanager
def _scoped_prepare():
  """torch_ref.prepare (uint8 → float, crop + flip, [-1, 1]) inside a named profiler scope."""
  import torch
  original = torch_ref.prepare

  @functools.wraps(original)
  def prepare(*a, **k):
    with torch.profiler.record_function(INPUT_SCOPE):
      return original(*a, **k)

  torch_ref.prepare = prepare
  try:
    yield
  finally:
    torch_ref.prepare = original


def torch_profile(case: jax_side.Case, steps: int) -> dict:
  from torch.profiler import ProfilerActivity, profile
  untraced = run.timed(case.run)
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    traced = run.timed(case.run)
  by_kind: dict[str, float] = collections.defaultdict(float)
  by_op: dict[str, float] = collections.defaultdict(float)
  for e in prof.events():
    if e.self_cpu_time_total <= 0:
      continue
    kind = torch_kind(e)
    by_kind[kind] += e.self_cpu_time_total
    by_op[e.name] += e.self_cpu_time_total
  ms = lambda us: us / 1e3 / steps
  total = sum(by_kind.values())
  top = sorted(by_op.items(), key=lambda kv: -kv[1])[:25]
  return dict(step_ms_untraced=1e3 * untraced / steps, step_ms_traced=1e3 * traced / steps,
              ops_ms=ms(total), kinds_ms={k: ms(v) for k, v in by_kind.items()},
              outside_ms=1e3 * traced / steps - ms(total),
              top_ops_ms=[(op, ms(us)) for op, us in top])


# ------------------------------------------------------------------------------------------

def table_rows(j: dict, t: dict | None) -> list[tuple[str, float | None, float | None]]:
  """(kind, kd_jax ms/step, PyTorch ms/step) rows, PyTorch's unsplit conv backward beside the
  sum of kd_jax's input and weight gradients."""
  jk, tk = j["kinds_ms"], (t or {}).get("kinds_ms", {})
  rows = []
  for k in KINDS:
    tv = None if t is None or k in (CONV_IN, CONV_W) else tk.get(k, 0.0)
    rows.append((k, jk.get(k, 0.0), tv))
    if k == CONV_W:
      rows.append((CONV_BWD, jk.get(CONV_IN, 0.0) + jk.get(CONV_W, 0.0),
                   None if t is None else tk.get(CONV_BWD, 0.0)))
  rows.append((OUTSIDE, j["outside_ms"], None if t is None else t["outside_ms"]))
  return rows


def markdown(result: dict) -> str:
  m = result["machine"]
  out = ["# Step time by op kind: kd_jax (XLA:CPU) and PyTorch", "",
         f"Measured {m['date_utc']} UTC on {m['label']}; "
         f"torch {m['torch']} ({m['torch_threads']} threads). Load average (1 min) "
         f"{m['loadavg_start'][0]:.2f} at the start, {m['loadavg_end'][0]:.2f} at the end"
         f"{' (above the core count: other jobs shared the cores)' if max(m['loadavg_start'][0], m['loadavg_end'][0]) > (os.cpu_count() or 1) else ''}. "
         f"{result['args']['steps']} steps per side, traced after a warm-up; ms per step. "
         "Ratio = kd_jax time / PyTorch time (above 1: kd_jax is slower). \"of it between "
         "thunks\": the part of kd_jax's time that fell between its thunks' events and went "
         "to the thunk started last (benchmarks/profile_ops.py, docstring).", ""]
  for r in result["rows"]:
    j, t = r["jax"], r.get("torch")
    out += [f"## {r['label']}, batch {r['batch']} (load {r['loadavg'][0]:.2f})", "",
            "| kind | kd_jax ms/step | of it between thunks | PyTorch ms/step | ratio |",
            "|---|---|---|---|---|"]
    gaps = dict(j["gap_ms"], **{CONV_BWD: j["gap_ms"].get(CONV_IN, 0.0)
                                + j["gap_ms"].get(CONV_W, 0.0)})
    for kind, jv, tv in table_rows(j, t):
      sub = kind in (CONV_IN, CONV_W)
      name = f"&nbsp;&nbsp;{kind}" if sub else kind
      ratio = f"{jv / tv:.2f}" if tv else "—"
      gap = f"{gaps[kind]:.2f}" if kind in gaps else "—"
      out.append(f"| {name} | {jv:.2f} | {gap} | {'—' if tv is None else f'{tv:.2f}'} | "
                 f"{ratio} |")
    tj, tt = j["step_ms_traced"], (t or {}).get("step_ms_traced")
    out.append(f"| **total (traced step)** | **{tj:.2f}** | {sum(j['gap_ms'].values()):.2f} | "
               f"**{'—' if tt is None else f'{tt:.2f}'}** | "
               f"{'—' if not tt else f'**{tj / tt:.2f}**'} |")
    uj, ut = j["step_ms_untraced"], (t or {}).get("step_ms_untraced")
    out.append(f"| untraced step | {uj:.2f} | | {'—' if ut is None else f'{ut:.2f}'} | "
               f"{'—' if not ut else f'{uj / ut:.2f}'} |")
    out.append("")
  return "\n".join(out) + "\n"


def machine_info(args) -> dict:
  try:
    from kd_jax.core import provenance
    info = provenance.machine()
    label = provenance.machine_label(info)
  except Exception:  # noqa: BLE001 - platform info is enough for a benchmark
    import platform
    info = {"cpu": {"model": platform.processor()}, "cores": os.cpu_count(),
            "versions": {"jax": jax.__version__}}
    label = f"{platform.processor()}, {os.cpu_count()} cores"
  import torch
  return dict(info, label=label, torch=torch.__version__, torch_threads=torch.get_num_threads(),
              date_utc=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
              loadavg_start=os.getloadavg(), args=vars(args))


def profile_row(name: str, batch: int, steps: int, with_torch: bool = True) -> dict:
  kind, model, (shape, classes), members, augment, label = run.ROWS[name]
  case = jax_side.CASES[kind](model, classes, shape, batch, steps, members, augment, "auto")
  case.run()  # compiles
  case.run()
  with tempfile.TemporaryDirectory() as d:
    j = jax_profile(case, steps, d)
  row = dict(row=name, label=label, batch=batch, steps=steps, jax=j)
  if with_torch:
    with _scoped_prepare():
      ref = torch_side.CASES[kind](model, classes, shape, batch, steps, members, augment)
      if ref.params != case.params:
        raise SystemExit(f"{name}: parameter counts differ ({case.params} vs {ref.params})")
      ref.run()  # warm-up
      row["torch"] = torch_profile(ref, steps)
  row["loadavg"] = os.getloadavg()
  return row


def main(argv: list[str] | None = None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--rows", default=",".join(PROFILED_ROWS),
                 help=f"comma list of benchmark rows (profiled: {', '.join(PROFILED_ROWS)})")
  p.add_argument("--batch", default="128", help="comma list, e.g. 128,256,512")
  p.add_argument("--steps", type=int, default=4, help="traced steps per side")
  p.add_argument("--torch_threads", type=int, default=1, help="0 = one per core")
  p.add_argument("--smoke", action="store_true", help="batch 8, 2 steps, pr20 only")
  p.add_argument("--no_torch", action="store_true", help="kd_jax's side only")
  p.add_argument("--out", default="benchmarks/results", help="'' = print only")
  p.add_argument("--name", default="", help="results: profile_ops_<name>.{md,json}")
  p.add_argument("--hlo", action="store_true",
                 help="no timing: per row and batch, the transposes and convolutions compiled "
                      "into the step (the same on a loaded machine)")
  a = p.parse_args(argv)
  if a.smoke:
    a.rows, a.batch, a.steps = "pr20", "8", 2
  rows = [r for r in a.rows.split(",") if r]
  bad = [r for r in rows if r not in run.ROWS or run.ROWS[r][0] not in ("distill", "teacher")]
  if bad:
    raise SystemExit(f"error: rows {bad}: profile distill or teacher rows, e.g. "
                     f"{', '.join(PROFILED_ROWS)}")
  if a.hlo:
    # One step per call: with more, the program is a loop whose body holds each transpose once.
    a.steps = 1
    from kd_jax.core import provenance
    print(provenance.machine_label(provenance.machine()))
    print("| row | batch | transposes in the step | of them ≥ 1 MiB | MB transposed per step |")
    print("|---|---|---|---|---|")
    out = []
    for name in rows:
      for batch in (int(b) for b in a.batch.split(",")):
        h = hlo_row(name, batch, a.steps)
        out.append(h)
        print(f"| {h['label']} | {batch} | {h['transposes']} | {h['transposes_over_1mib']} | "
              f"{h['transposed_mb']:.1f} |", flush=True)
    return dict(hlo=out)
  import torch
  torch.set_num_threads(a.torch_threads or os.cpu_count() or 1)
  result = dict(machine=machine_info(a), args=vars(a), rows=[])
  m = result["machine"]
  print(f"{m['date_utc']} UTC | {m['label']} | torch {m['torch']} ({m['torch_threads']} "
        f"threads) | load average {m['loadavg_start'][0]:.2f}", flush=True)
  for name in rows:
    for batch in (int(b) for b in a.batch.split(",")):
      r = profile_row(name, batch, a.steps, not a.no_torch)
      result["rows"].append(r)
      result["machine"]["loadavg_end"] = os.getloadavg()
      for kind, jv, tv in table_rows(r["jax"], r.get("torch")):
        print(f"  {name} b{batch} {kind:<40} kd_jax {jv:9.2f} ms   PyTorch "
              f"{'—' if tv is None else f'{tv:9.2f} ms'}")
      j = r["jax"]
      print(f"  {name} b{batch} step: kd_jax {j['step_ms_traced']:.2f} ms traced, "
            f"{j['step_ms_untraced']:.2f} untraced; sum of kinds "
            f"{sum(j['kinds_ms'].values()):.2f} (gaps between thunks "
            f"{sum(j['gap_ms'].values()):.2f}); load {r['loadavg'][0]:.2f}", flush=True)
      if a.out:
        stem = Path(a.out) / f"profile_ops_{a.name or ('smoke' if a.smoke else 'cpu')}"
        report.write_raw(a.out, stem.name, result, markdown(result))
  if a.out:
    print(f"wrote {stem}.md and .json")
  return result


if __name__ == "__main__":
  main()
