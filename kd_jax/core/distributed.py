"""Many hosts: ``jax.distributed`` from the environment, and which process speaks and writes.

Every host runs the same command. ``initialize`` connects the processes when the environment
says there are several: explicit ``--coordinator_address/--num_processes/--process_id`` flags,
``JAX_COORDINATOR_ADDRESS`` (+ ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), a SLURM job step
with more than one task (``srun``), a TPU pod slice that lists several ``TPU_WORKER_HOSTNAMES``
(GKE), or ``KD_JAX_MULTIHOST=1`` (a Cloud TPU VM slice, whose workers jax reads from the VM
metadata); jax reads the rest from the same sources. After it, the mesh spans every device of every
host, each host's streamed pipeline reads only its columns of the global batch, and the
global batch is assembled with ``jax.make_array_from_process_local_data``.

Only process 0 prints, writes logs, results, tables and plots (:func:`is_primary`); every
process takes part in orbax saves (orbax coordinates them) and reads the same shared folders.
A decision read from the shared disk (is this teacher stored?) is made by process 0 and
broadcast (:func:`agree`), so no two processes take different branches around a collective.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import jax

#: Set to 1 where jax finds the other processes itself but no variable above says so: a Cloud
#: TPU VM pod slice (jax reads the workers from the VM's metadata).
MULTIHOST_ENV = "KD_JAX_MULTIHOST"


def detected(env: Optional[dict] = None) -> bool:
  """True when the environment describes a multi-process job (see the module docstring)."""
  env = os.environ if env is None else env
  if env.get(MULTIHOST_ENV, "") == "1" or "JAX_COORDINATOR_ADDRESS" in env:
    return True
  if int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1 and \
      "SLURM_STEP_ID" in env:
    return True
  return len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1) -> bool:
  """Connects this process to the others (when there are any); returns whether it did.

  Non-primary processes then send their stdout to /dev/null: one log, from process 0.
  """
  if coordinator_address:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes or None,
                               process_id=None if process_id < 0 else process_id)
  elif detected():
    jax.distributed.initialize()
  else:
    return False
  if not is_primary():
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (lives as long as the process)
  return True


def define_flags() -> None:
  """``--coordinator_address``, ``--num_processes``, ``--process_id`` (kd_jax.main, sweep)."""
  from absl import flags
  if "coordinator_address" in flags.FLAGS:
    return
  flags.DEFINE_string("coordinator_address", "", "Many hosts without a cluster environment: "
                      "host:port of process 0's coordinator (every process passes the same).")
  flags.DEFINE_integer("num_processes", 0, "Many hosts: the number of processes (with "
                       "--coordinator_address).")
  flags.DEFINE_integer("process_id", -1, "Many hosts: this process's index, 0 … "
                       "num_processes − 1 (with --coordinator_address).")


def initialize_from_flags() -> bool:
  from absl import flags
  f = flags.FLAGS
  return initialize(f.coordinator_address, f.num_processes, f.process_id)


def is_primary() -> bool:
  """Process 0: the one that prints and writes files other than checkpoints."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process gets here (after process 0 wrote something the others read)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def agree(value: int) -> int:
  """Process 0's ``value`` on every process (an int decided from files on a shared disk)."""
  if jax.process_count() == 1:
    return int(value)
  import numpy as np
  from jax.experimental import multihost_utils
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))
