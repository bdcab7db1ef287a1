"""kd_jax: knowledge-distillation fidelity experiments in JAX/Flax.

The Python API (``kd_jax.api``), exported here::

    load_config, load_sweep        config and figure files, as the command line names them
    run, run_sweep                 one experiment / every trial of a figure
    load_run_config, load_results  what a run stored in its workdir
    load_splits, load_split        its data: teacher, distillation and test arrays
    load_teacher, load_student     trained models as predictors (callables) with their variables
    export_teacher                 a run's teacher ensemble as a portable, checked artifact
    fidelity, reliability          every fidelity metric; the calibration behind ECE
    Predictor

Names resolve on first use, so ``import kd_jax`` (and ``python -m kd_jax.main --help``) does
not start JAX.
"""
from __future__ import annotations

import importlib
from typing import Any

from kd_jax.core import xla_defaults as _xla_defaults

# Before any JAX backend starts: XLA:CPU flags measured to speed up training (core/xla_defaults.py).
_xla_defaults.apply()

__version__ = "0.1.0"

__all__ = ["Predictor", "export_teacher", "fidelity", "load_config", "load_results", "load_run_config",
           "load_split", "load_splits", "load_student", "load_sweep", "load_teacher",
           "reliability", "run", "run_sweep"]


def __getattr__(name: str) -> Any:
  if name in __all__:
    return getattr(importlib.import_module("kd_jax.api"), name)
  raise AttributeError(f"module 'kd_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted(list(globals()) + __all__)
