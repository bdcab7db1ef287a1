"""JAX's persistent compilation cache, on by default for command-line runs.

Every run (and every trial of a sweep) jits the same steps anew; on a 2-core CPU compiling costs
more than a tiny run itself. With the on-disk cache a rerun, a resumed run or the next trial
loads the compiled executables instead (a tiny trial went from ~40 s to ~4 s).
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("KD_JAX_COMPILE_CACHE",
                                  Path.home() / ".cache" / "kd_jax" / "jax_compile_cache"))


def use_compile_cache(directory: str | os.PathLike | None = None) -> None:
  """Turns the cache on in ``directory`` (default ~/.cache/kd_jax); a cache already set wins."""
  import jax
  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", str(Path(directory or DEFAULT_DIR).absolute()))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


# Programs that run once per run or per epoch (initialization, the optimizer's first state, the
# epoch's index plan, finiteness checks): XLA's full optimization costs seconds per program on a
# CPU and buys nothing for them, so they compile at its lowest level. Same values either way.
CHEAP_COMPILE = {"xla_backend_optimization_level": 0}
