"""kd_jax's XLA:CPU defaults: added only for the measured jaxlib, never over a user's own value,
switchable off, and accepted by the installed XLA (a fresh process starts JAX with them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from kd_jax.core import xla_defaults

FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=", "--xla_cpu_use_xnnpack=false")


def test_defaults_are_added_for_the_measured_jaxlib_only():
  env = {}
  assert xla_defaults.apply(env, jaxlib="0.10.2") == " ".join(FLAGS)
  env = {}
  assert xla_defaults.apply(env, jaxlib="0.11.2") == "" and "XLA_FLAGS" not in env


def test_a_flag_the_user_names_keeps_the_users_value_and_others_stay():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4 --xla_cpu_use_xnnpack=true"}
  got = xla_defaults.apply(env, jaxlib="0.10.2").split()
  assert got == ["--xla_force_host_platform_device_count=4", "--xla_cpu_use_xnnpack=true",
                 "--xla_cpu_experimental_ynn_fusion_type="]
  assert xla_defaults.apply(env, jaxlib="0.10.2").split() == got   # applying twice adds nothing


def test_the_switch_leaves_xla_flags_untouched():
  env = {"KD_JAX_XLA_DEFAULTS": "0", "XLA_FLAGS": "--a=1"}
  assert xla_defaults.apply(env, jaxlib="0.10.2") == "--a=1" and env["XLA_FLAGS"] == "--a=1"


def test_importing_kd_jax_sets_them_before_jax_starts_and_xla_accepts_them():
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "KD_JAX_XLA_DEFAULTS")}
  code = ("import os, json, kd_jax, jax, jax.numpy as jnp;"
          "y = jax.jit(lambda x: jax.lax.conv(x, x[:1], (1, 1), 'SAME'))(jnp.ones((1, 1, 4, 4)));"
          "print(json.dumps([os.environ.get('XLA_FLAGS', ''), float(y.sum())]))")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  flags, total = json.loads(out.stdout.strip().splitlines()[-1])
  want = xla_defaults.flags_to_add("", xla_defaults._jaxlib_version())
  assert flags.split() == want
  # a 4×4 ones image convolved SAME with a 4×4 ones kernel: each output counts its window's
  # overlap with the image, (sum over positions of overlap) = (1+2+3+4+3+2+... ) by brute force
  overlap = [sum(1 for d in range(-2, 2) if 0 <= i + d < 4) for i in range(4)]
  assert total == sum(a * b for a in overlap for b in overlap)
