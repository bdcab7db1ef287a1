"""Where a result was computed, recorded with it: the code (commit, and a dirty tree's diff), the
machine (CPU model and instruction set, cores, accelerator), XLA flags and library versions.

Why each field: XLA:CPU compiles for the instruction set it finds (AVX-512 vs AVX2 changes the
order of floating-point sums) and splits work by the number of cores, and training amplifies
the last bits into points of accuracy; a CPU result is therefore bitwise only on the same CPU
type, thread count, flags and versions. A table that mixes commits or machines says so per row
instead of naming one of them (``kd_jax.sweeps.report``).
"""
from __future__ import annotations

import datetime
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[2]   # the checkout holding kd_jax/, when there is one
#: What counts as the code of a result: a change elsewhere (docs, tests) changes no number.
CODE_PATHS = ("kd_jax", "configs", "setup.py")
DIFF_FILE = "source.diff"                   # a dirty tree's diff, beside the run's results.json
#: Instruction-set levels from the widest down, as /proc/cpuinfo flags name them.
ISA_LEVELS = (("AVX-512", ("avx512f",)), ("AVX2", ("avx2", "fma")), ("AVX", ("avx",)),
              ("SSE4.2", ("sse4_2",)))
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def _git(*args: str) -> Optional[str]:
  try:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                         timeout=30)
  except (OSError, subprocess.SubprocessError):
    return None
  return out.stdout if out.returncode == 0 else None


def source_state() -> dict[str, Any]:
  """``{"commit", "dirty", "diff_sha256"}`` of the kd_jax checkout, plus ``"diff"`` (text: the
  tracked changes and untracked files under :data:`CODE_PATHS`) when dirty. Outside a git
  checkout (an installed wheel) the commit is ``""`` and ``version`` says which release."""
  head = _git("rev-parse", "--short=7", "HEAD")
  if head is None or not (ROOT / "kd_jax").is_dir():
    from importlib import metadata
    try:
      version = metadata.version("kd_jax")
    except metadata.PackageNotFoundError:
      version = ""
    return {"commit": "", "version": version, "dirty": False, "diff_sha256": None}
  diff = _git("diff", "HEAD", "--", *CODE_PATHS) or ""
  untracked = (_git("ls-files", "--others", "--exclude-standard", "--", *CODE_PATHS) or "")
  for name in sorted(untracked.split()):
    try:
      diff += f"--- /dev/null\n+++ b/{name}\n" + (ROOT / name).read_text(errors="replace")
    except OSError:
      continue
  state: dict[str, Any] = {"commit": head.strip(), "dirty": bool(diff),
                           "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None}
  if diff:
    state["diff"] = diff
  return state


def cpu() -> dict[str, Any]:
  """The CPU's model, instruction-set level and flags that change XLA:CPU's code."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      key, _, value = line.partition(":")
      if key.strip() == "model name" and value.strip():
        model = value.strip()
      elif key.strip() == "flags":
        flags = set(value.split())
        break
  except OSError:
    pass
  isa = next((name for name, need in ISA_LEVELS if flags and set(need) <= flags), "")
  extras = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni")))
  return {"model": model, "arch": platform.machine(), "isa": isa, "isa_flags": extras}


def cores() -> int:
  """The cores this process may run on (XLA sizes its thread pool by them)."""
  try:
    return len(os.sched_getaffinity(0))
  except (AttributeError, OSError):
    return os.cpu_count() or 1


def versions() -> dict[str, str]:
  from importlib import metadata
  out = {"python": platform.python_version()}
  for lib in LIBRARIES:
    try:
      out[lib] = metadata.version(lib)
    except metadata.PackageNotFoundError:
      pass
  return out


def machine() -> dict[str, Any]:
  """The machine a result was computed on (see the module docstring for why each field)."""
  import jax
  devices = jax.devices()
  return {"cpu": cpu(), "cores": cores(), "backend": jax.default_backend(),
          "devices": f"{len(devices)} × {', '.join(sorted({d.device_kind for d in devices}))}",
          "xla_flags": os.environ.get("XLA_FLAGS", ""), "versions": versions(),
          "os": f"{platform.system()} {platform.release()}"}


def record(workdir: Optional[Path] = None) -> dict[str, Any]:
  """The provenance of a result finished now; a dirty tree's diff goes to
  ``workdir/source.diff`` (its sha256 is in the record)."""
  state = source_state()
  diff = state.pop("diff", None)
  if diff is not None and workdir is not None:
    from kd_jax.core import atomic
    atomic.write_text(Path(workdir) / DIFF_FILE, diff)
  return {**state, "machine": machine(),
          "finished": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
          "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""}


def code_label(p: dict[str, Any]) -> str:
  """``abc1234`` or ``abc1234+diff 1a2b3c4d`` (a dirty tree: the diff's sha256, first 8)."""
  base = p.get("commit") or (f"kd_jax {p['version']}" if p.get("version") else "unknown")
  return base + (f"+diff {p['diff_sha256'][:8]}" if p.get("dirty") else "")


def machine_label(m: dict[str, Any]) -> str:
  """One line: CPU model (instruction set), cores, backend and devices, XLA flags, jax."""
  c = m.get("cpu", {})
  accel = "" if m.get("backend") == "cpu" else f", {m.get('devices', '')}"
  flags = f", XLA_FLAGS={m['xla_flags']}" if m.get("xla_flags") else ""
  jax_v = m.get("versions", {}).get("jax", "?")
  n = m.get("cores", "?")
  return (f"{c.get('model', '?')} ({c.get('isa') or c.get('arch', '?')}), {n} "
          f"core{'' if n == 1 else 's'}{accel}{flags}, jax {jax_v}")
