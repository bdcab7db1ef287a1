#!/usr/bin/env bash
# The GPU benchmark on a machine without network (benchmarks/README.md, "On a GPU").
#
# There JAX, flax, optax, orbax, chex and PyTorch are preinstalled; kd_jax also imports
# ml_collections (configs), which needs absl-py and PyYAML. Fetch their wheels beforehand on a
# machine with network, next to this script (benchmarks/wheels/ is not committed):
#
#     pip download ml_collections absl-py PyYAML --no-deps -d benchmarks/wheels
#
# (PyYAML's wheel is platform-specific: add --platform manylinux2014_x86_64 --python-version
# 3.X --only-binary=:all: when the GPU machine's Python differs from this one's.)
# tensorflow-datasets is not needed: the benchmark feeds random CIFAR-sized arrays and imports
# nothing from it.
#
#     bash benchmarks/accelerator.sh            # the full run, under 8 minutes on one H100
#     bash benchmarks/accelerator.sh --smoke    # tiny sizes, to check the setup
set -euo pipefail
cd "$(dirname "$0")/.."
for module in ml_collections absl yaml; do
  if ! python -c "import $module" 2>/dev/null; then
    echo "installing the shipped wheels (missing: $module)"
    pip install --no-index --find-links benchmarks/wheels ml_collections absl-py PyYAML
    break
  fi
done
# Both frameworks share the card: keep JAX from reserving 75% of its memory up front.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec python -m benchmarks.accelerator "$@"
