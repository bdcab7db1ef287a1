"""Test-session setup, before JAX starts: four fake CPU devices (multi-device equivalence tests)
and a compilation cache shared by the session (many tests compile the same tiny steps): one
folder for the whole run, made by the first process and inherited by pytest-xdist's workers."""
import os
import tempfile

_flag = "--xla_force_host_platform_device_count=4"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One BLAS thread per test process: pytest-xdist already runs a process per core, and
# threaded numpy (the FID statistics) on a busy machine ran 2-5x slower than on one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from kd_jax.core import cache  # noqa: E402  (after the flags above)

_CACHE = "KD_JAX_TEST_COMPILE_CACHE"
if not os.environ.get(_CACHE):
  os.environ[_CACHE] = tempfile.mkdtemp(prefix="kd_jax_test_cache_")
cache.use_compile_cache(os.environ[_CACHE])
