"""XLA:CPU flag settings against each other, each beside the same PyTorch reference.

    python -m benchmarks.xla_flags --rows=lenet5,pr20,pr56x5,teacher_pr56 --rounds=2 \\
        --variant=no_ynn:--xla_cpu_experimental_ynn_fusion_type= \\
        --variant="no_ynn_no_xnn:--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_xnnpack=false"

XLA reads ``XLA_FLAGS`` once per process, so every setting is its own ``benchmarks.run``
process (the default setting, ``default``, always included). The processes run with
``KD_JAX_XLA_DEFAULTS=0``, so ``default`` is XLA's own defaults (plus whatever ``XLA_FLAGS``
this command was started with) and each variant adds exactly its flags — not kd_jax's
defaults (kd_jax/core/xla_defaults.py, which these measurements chose). Settings run in turn, ``--rounds``
times, in an order that alternates each round (A B C, C B A, ...), so a load that changes
during the run falls on every setting alike; every process also times PyTorch beside kd_jax
(interleaved, as ``benchmarks.run`` does), and a setting's *ratio* is its kd_jax img/s over the
PyTorch img/s measured in the same process. Writes ``results/<name>.md`` and ``.json``: per
row and setting the median over rounds of kd_jax img/s, of PyTorch img/s and of the ratio, and
the setting's kd_jax speed relative to ``default`` (median over rounds of the per-round
quotient, each against the same round's default process).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def parse_variant(text: str) -> tuple[str, str]:
  """``name:flags`` → (name, flags); the name must be a plain word (it names files)."""
  name, sep, flags = text.partition(":")
  if not sep or not name.replace("_", "").isalnum() or name == "default":
    raise SystemExit(f"error: --variant {text!r}: write it as name:FLAGS with a plain name "
                     "other than 'default', e.g. no_ynn:--xla_cpu_experimental_ynn_fusion_type=")
  return name, flags


def order(names: list[str], round_index: int) -> list[str]:
  """Forward on even rounds, backward on odd ones."""
  return list(names) if round_index % 2 == 0 else list(reversed(names))


def summarize(runs: dict[str, list[dict]]) -> list[dict]:
  """``runs[setting]`` = that setting's benchmarks.run records, one per round, in round order.

  Returns one entry per (row, setting): medians over rounds of kd_jax img/s, PyTorch img/s and
  their ratio, and ``vs_default``: the median over rounds of kd_jax img/s ÷ the same round's
  default kd_jax img/s."""
  out = []
  base = runs["default"]
  rows = [r["row"] for r in base[0]["rows"]]
  for setting, records in runs.items():
    for row in rows:
      per = [next(r for r in rec["rows"] if r["row"] == row) for rec in records]
      ref = [next(r for r in rec["rows"] if r["row"] == row) for rec in base]
      out.append(dict(
          row=row, label=per[0]["label"], setting=setting, rounds=len(per),
          jax_img_s=statistics.median(r["jax_img_s"] for r in per),
          torch_img_s=statistics.median(r["torch_img_s"] for r in per),
          ratio=statistics.median(r["jax_img_s"] / r["torch_img_s"] for r in per),
          vs_default=statistics.median(r["jax_img_s"] / d["jax_img_s"]
                                       for r, d in zip(per, ref))))
  return out


def markdown(meta: dict, flags: dict[str, str], table: list[dict]) -> str:
  out = [f"Measured {meta['date_utc']} UTC on {meta['cpu']}, {meta['cores']} cores; jax "
         f"{meta['jax']}, torch {meta['torch']} ({meta['torch_threads']} threads). Load "
         f"average {meta['loadavg_start'][0]:.2f} at the start, {meta['loadavg_end'][0]:.2f} "
         f"at the end. Each setting: {table[0]['rounds']} rounds of one `benchmarks.run` "
         f"process ({meta['run_args']}), settings alternating in order; medians over rounds.",
         "", "Settings (`XLA_FLAGS`):", ""]
  out += [f"- `{n}`: `{f}`" if f else f"- `{n}`: (none)" for n, f in flags.items()]
  out += ["", "| setting | row | kd_jax img/s | PyTorch img/s (same process) | ratio | "
          "kd_jax vs default |", "|---|---|---|---|---|---|"]
  for r in sorted(table, key=lambda r: (r["row"], r["setting"] != "default", r["setting"])):
    out.append(f"| {r['setting']} | {r['label']} | {r['jax_img_s']:,.1f} | "
               f"{r['torch_img_s']:,.1f} | {r['ratio']:.2f} | {r['vs_default']:.2f}× |")
  return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--variant", action="append", default=[], help="name:XLA_FLAGS (repeatable)")
  p.add_argument("--rows", default="lenet5,pr20,pr56x5,teacher_pr56")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--steps", type=int, default=2)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--torch_threads", type=int, default=0)
  p.add_argument("--out", default="benchmarks/results", help="'' = print only")
  p.add_argument("--name", default="cpu_xla_flags")
  a = p.parse_args(argv)
  flags = {"default": os.environ.get("XLA_FLAGS", "")}
  for text in a.variant:
    name, extra = parse_variant(text)
    flags[name] = " ".join(f for f in (flags["default"], extra) if f)
  run_args = (f"--rows={a.rows} --batch={a.batch} --steps={a.steps} --repeats={a.repeats} "
              f"--torch_threads={a.torch_threads}")
  runs: dict[str, list[dict]] = {n: [] for n in flags}
  loadavg_start = os.getloadavg()
  with tempfile.TemporaryDirectory() as tmp:
    for k in range(a.rounds):
      for name in order(list(flags), k):
        env = dict(os.environ, XLA_FLAGS=flags[name], KD_JAX_XLA_DEFAULTS="0")
        print(f"[xla_flags] round {k + 1}/{a.rounds}: {name} ({flags[name] or 'no flags'})",
              flush=True)
        subprocess.run([sys.executable, "-m", "benchmarks.run", *run_args.split(),
                        f"--out={tmp}", f"--name={name}_{k}"], env=env, check=True)
        runs[name].append(json.loads((Path(tmp) / f"{name}_{k}.json").read_text()))
  first = runs["default"][0]["machine"]
  meta = dict(first, loadavg_start=loadavg_start, loadavg_end=os.getloadavg(),
              run_args=run_args, flags=flags)
  table = summarize(runs)
  text = markdown(meta, flags, table)
  print(text)
  if a.out:
    from benchmarks import report  # imports torch; the helpers above do not
    path = report.write_raw(a.out, a.name, {"machine": meta, "table": table, "runs": runs},
                            text)
    print(f"wrote {path}.md and .json")


if __name__ == "__main__":
  main()
