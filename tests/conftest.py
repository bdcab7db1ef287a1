"""Test-session setup, before JAX starts: four fake CPU devices (multi-device equivalence tests)
and a compilation cache shared by the session (many tests compile the same tiny steps)."""
import os
import tempfile

_flag = "--xla_force_host_platform_device_count=4"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from kd_jax.core import cache  # noqa: E402  (after the flags above)

cache.use_compile_cache(tempfile.mkdtemp(prefix="kd_jax_test_cache_"))
