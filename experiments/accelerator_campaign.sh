#!/usr/bin/env bash
# A paper-scale sweep run as a chain of short calls on machines lent for minutes, each starting
# bare, whose inputs and outputs are capped (docs/reproduce.md, "Machines lent for minutes"):
# one call = unpack the state the last call sent back, run the sweep under a time budget, pack
# its state (newest checkpoints, finished trials, the teacher store) into size-capped parts.
#
# Before each call, in the clone (both folders are ignored by git; name them in what travels):
#   .campaign/in/     the parts the previous call sent back (empty or absent for the first call)
#   .campaign/data/   the CIFAR-10 JPEG tar (KD_JAX_CIFAR10 below), e.g. cifar10-jpeg.tar.gz
#   benchmarks/wheels/  ml_collections' wheel if the machine lacks it (see benchmarks/accelerator.sh)
# After each call: replace .campaign/in/ by the files the call wrote into $OUT.
#
#   OUT=<folder that comes back> BUDGET=8m bash experiments/accelerator_campaign.sh [config]
#
# config defaults to configs/fig10_ensemble_size.py:c10 (m = 1, 3, 5 from one 5-member
# PreResNet-56 ensemble on CIFAR-10 at the paper's recipes, 3 seeds). Exit status: 0 when the
# sweep finished (then $OUT also holds results.md and results.csv), 75 when the budget stopped
# it (call again), anything else when it failed (the log is in $OUT/campaign.log).
set -euo pipefail
cd "$(dirname "$0")/.."
spec=${1:-configs/fig10_ensemble_size.py:c10}
out=${OUT:-out/campaign}
budget=${BUDGET:-8m}
max_mib=${MAX_MIB:-56}      # parts ≤ 16 MiB, at most 4 of them + the manifest, log and tables
work=${CAMPAIGN_WORKDIR:-runs/campaign}
in=${CAMPAIGN_IN:-.campaign/in}
cache=${WITH_CACHE:+--with_cache}
if [ -z "${KD_JAX_CIFAR10:-}" ] && ls .campaign/data/*.tar.gz >/dev/null 2>&1; then
  KD_JAX_CIFAR10=$(ls "$PWD"/.campaign/data/*.tar.gz | head -1)
  export KD_JAX_CIFAR10
fi
if ! python -c "import ml_collections" 2>/dev/null; then
  echo "installing the shipped wheels (missing: ml_collections)"
  pip install -q --no-index --find-links benchmarks/wheels ml_collections
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"
if [ -f "$in/state.json" ]; then
  python -m kd_jax.carry unpack "$in" "$work"
else
  echo "no state in $in: starting $spec from scratch"
fi
set +e
python -m kd_jax.sweep --config="$spec" --workdir="$work" --time_budget="$budget" \
    --config.teacher.store="$work/teachers" 2>&1 | tee "$out/campaign.log"
rc=${PIPESTATUS[0]}
set -e
python -m kd_jax.carry pack "$work" "$out" --latest_only --max_mib="$max_mib" $cache
for f in results.md results.csv; do
  if [ -f "$work/$f" ]; then cp "$work/$f" "$out/$f"; fi
done
case $rc in
  0) echo "campaign: $spec finished; collect it with python -m kd_jax.sweep_report --collect after unpacking" ;;
  75) echo "campaign: stopped for the time budget; copy $out into $in and call again" ;;
  *) echo "campaign: the sweep failed (exit $rc); see $out/campaign.log" ;;
esac
exit "$rc"
