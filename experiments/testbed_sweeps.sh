#!/usr/bin/env bash
# Runs every configs/testbed.py variant, one sweep after another (the runs share two CPU cores;
# rerunning resumes finished trials), then prints the plateau table of each.
#     nohup nice -n 5 bash experiments/testbed_sweeps.sh > runs/testbed_sweeps.log 2>&1 &
set -u
for v in ${VARIANTS:-init selfdistill temperature ensemble data}; do
  echo "== $v $(date -u +%FT%TZ)"
  python -m kd_jax.sweep --config=configs/testbed.py:$v --workdir=runs/testbed_$v "$@"
  echo "== $v done ($?) $(date -u +%FT%TZ)"
  python experiments/testbed_plateau.py runs/testbed_$v
done
