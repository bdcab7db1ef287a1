"""When a process joins a multi-process job, and that a single process stays alone."""
from kd_jax.core import distributed


def test_detects_the_multi_process_environments():
  assert not distributed.detected({})
  assert distributed.detected({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
  # srun with 8 tasks sets SLURM_NTASKS and a step id; an sbatch shell (no step) or one task
  # is a single process.
  assert distributed.detected({"SLURM_NTASKS": "8", "SLURM_STEP_ID": "0"})
  assert not distributed.detected({"SLURM_NTASKS": "8"})
  assert not distributed.detected({"SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"})
  # A Cloud TPU VM lists every worker of its slice; a single-host slice lists one.
  assert distributed.detected({"TPU_WORKER_HOSTNAMES": "t1-w-0,t1-w-1,t1-w-2,t1-w-3"})
  assert not distributed.detected({"TPU_WORKER_HOSTNAMES": "localhost"})
  assert distributed.detected({"KD_JAX_MULTIHOST": "1"})       # Cloud TPU VM slice


def test_one_process_is_primary_and_needs_no_initialization():
  assert not distributed.initialize()
  assert distributed.is_primary()
  distributed.barrier("alone")            # a no-op with one process
  assert distributed.agree(7) == 7
