"""The benchmark's machine record, printed lines, JSON and markdown table."""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import flax
import jax
import optax
import torch


def _cpu_model() -> str:
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def machine(args) -> dict:
  return dict(
      date_utc=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
      cpu=_cpu_model(), cores=os.cpu_count(), backend=jax.default_backend(),
      devices=[str(d) for d in jax.devices()], python=platform.python_version(),
      jax=jax.__version__, flax=flax.__version__, optax=optax.__version__,
      torch=torch.__version__, torch_threads=torch.get_num_threads(),
      xla_flags=os.environ.get("XLA_FLAGS", ""),
      loadavg_start=os.getloadavg(), args=vars(args))


def header(meta: dict) -> str:
  return (f"{meta['date_utc']} UTC | {meta['cpu']} ({meta['cores']} cores) | jax "
          f"{meta['jax']} ({meta['backend']}) | torch {meta['torch']} | load average "
          f"{meta['loadavg_start'][0]:.2f}")


def line(row: dict) -> str:
  mode = row["mode"] + ("+fold" if row.get("fold_teacher_bn") else "")
  if row.get("dtype", "float32") != "float32":
    mode += "+" + row["dtype"]
  if row.get("steps_per_call", 1) != 1:
    mode += f"+{row['steps_per_call']}/call"
  return (f"{row['label']:<52} {mode:>11}  kd_jax {row['jax_img_s']:8.1f} img/s  "
          f"torch {row['torch_img_s']:8.1f} img/s  ratio {row['ratio']:.2f}  "
          f"(load {row['loadavg'][0]:.1f})")


def markdown(meta: dict, rows: list[dict]) -> str:
  out = [f"Measured {meta['date_utc']} UTC on {meta['cpu']}, {meta['cores']} cores "
         f"({meta['backend']}); jax {meta['jax']}, flax {meta['flax']}, optax {meta['optax']}, "
         f"torch {meta['torch']} ({meta['torch_threads']} threads). Load average "
         f"{meta['loadavg_start'][0]:.2f} at the start, {meta['loadavg_end'][0]:.2f} at the end "
         "(the cores were shared with other jobs). Medians of "
         f"{meta['args']['repeats']} interleaved repeats of {meta['args']['steps']} steps, "
         f"batch {meta['args']['batch']}; epoch rows: one epoch per call, DataLoader workers "
         f"{meta['args'].get('workers', 0)}.", "",
         "| setting | member_mode | teacher BN folded | kd_jax dtype | steps/jitted call | "
         "params/member | steps/timed call | kd_jax img/s | PyTorch img/s | ratio | load avg |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    out.append(f"| {r['label']} | {r['mode']} | {'yes' if r.get('fold_teacher_bn') else 'no'} | "
               f"{r.get('dtype', 'float32')} | {r.get('steps_per_call', 1)} | "
               f"{r['params']:,} | {r['steps']} | {r['jax_img_s']:,.1f} | "
               f"{r['torch_img_s']:,.1f} | {r['ratio']:.2f} | {r['loadavg'][0]:.1f} |")
  return "\n".join(out) + "\n"


def write(out_dir: str, stem: str, meta: dict, rows: list[dict]) -> list[Path]:
  path = write_raw(out_dir, stem, {"machine": meta, "rows": rows}, markdown(meta, rows))
  return [path.with_suffix(".json"), path.with_suffix(".md")]


def write_raw(out_dir: str, stem: str, record: dict, text: str) -> Path:
  """``<out_dir>/<stem>.json`` (the record) and ``.md`` (the text); returns the path stem."""
  d = Path(out_dir)
  d.mkdir(parents=True, exist_ok=True)
  (d / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
  (d / f"{stem}.md").write_text(text)
  return d / stem
