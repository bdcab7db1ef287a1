"""XLA:CPU flags kd_jax sets before JAX starts its backends, where they were measured to help.

``python -m benchmarks.xla_flags`` (benchmarks/results/cpu_xla_flags_quiet.md; 2-core AMD EPYC,
quiet cores, jaxlib 0.10.2) ran every training row 1.07–1.27× faster with XLA:CPU's YNNPACK
fusions and its XNNPACK path off: XLA's own convolution kernels compute the weight gradient
faster than the YNNPACK fusion there. The flags concern only the CPU backend.

XLA aborts on a flag it does not know, so the defaults apply only to the jaxlib versions they
were measured on (``MEASURED_JAXLIB``); a flag the user already names in ``XLA_FLAGS`` keeps the
user's value, and ``KD_JAX_XLA_DEFAULTS=0`` leaves ``XLA_FLAGS`` untouched. Every run records
the ``XLA_FLAGS`` it ran with (kd_jax.core.provenance). JAX reads ``XLA_FLAGS`` when it first
creates a backend, so the defaults reach only processes that import kd_jax before using JAX
(the command line always does).
"""
from __future__ import annotations

import importlib.metadata
import os
from typing import MutableMapping

CPU_DEFAULTS = ("--xla_cpu_experimental_ynn_fusion_type=", "--xla_cpu_use_xnnpack=false")
MEASURED_JAXLIB = ("0.10.",)
SWITCH = "KD_JAX_XLA_DEFAULTS"


def _jaxlib_version() -> str:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return ""


def flags_to_add(current: str, jaxlib: str) -> list[str]:
  """The defaults not already named in ``current``; none for an unmeasured jaxlib."""
  if not jaxlib.startswith(MEASURED_JAXLIB):
    return []
  named = {f.split("=", 1)[0] for f in current.split()}
  return [f for f in CPU_DEFAULTS if f.split("=", 1)[0] not in named]


def apply(environ: MutableMapping[str, str] = os.environ, jaxlib: str | None = None) -> str:
  """Adds the defaults to ``environ["XLA_FLAGS"]`` (unless switched off); returns its value."""
  current = environ.get("XLA_FLAGS", "")
  if environ.get(SWITCH, "1") == "0":
    return current
  add = flags_to_add(current, _jaxlib_version() if jaxlib is None else jaxlib)
  if add:
    environ["XLA_FLAGS"] = " ".join([current, *add]).strip()
  return environ.get("XLA_FLAGS", "")
