"""Data parallelism: one mesh over every device of every process, batch on 'data'.

The state is replicated (P()) and each batch is split on its leading axis, so one
jitted step runs unchanged on a CPU, a GPU box or a TPU pod; XLA inserts the
gradient all-reduce.
"""

import collections
from collections.abc import Iterable, Iterator
import os

from absl import logging
import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from maskedskip_jax.errors import UserError

# Set by schedulers / launchers that start one process per host (or per GPU);
# with any of them present, jax.distributed.initialize() can find its peers itself.
_CLUSTER_ENV = (
  "JAX_COORDINATOR_ADDRESS",
  "SLURM_STEP_NUM_TASKS",
  "OMPI_COMM_WORLD_SIZE",
  "MEGASCALE_COORDINATOR_ADDRESS",
  "TPU_WORKER_HOSTNAMES",
)


def launched_multiprocess(env) -> bool:
  for name in _CLUSTER_ENV:
    value = env.get(name, "")
    if name == "TPU_WORKER_HOSTNAMES":
      if "," in value:  # one hostname = a single-host TPU, nothing to join
        return True
    elif name in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE"):
      if value.isdigit() and int(value) > 1:
        return True
    elif value:
      return True
  return False


def initialize(
  coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None, env=None
) -> bool:
  """Join the other processes of a multi-process run; returns whether it did.

  Must run before anything touches a JAX backend. Explicit arguments win;
  otherwise the launcher's environment decides, and a plain single process
  does nothing.
  """
  env = os.environ if env is None else env
  explicit = [a is not None for a in (coordinator_address, num_processes, process_id)]
  if any(explicit):
    if not all(explicit):
      raise UserError("--coordinator_address, --num_processes and --process_id go together; give all three or none")
    if not 0 <= process_id < num_processes:
      raise UserError(f"--process_id: expected 0 <= id < --num_processes={num_processes}, got {process_id}")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif launched_multiprocess(env):
    jax.distributed.initialize()
  else:
    return False
  logging.info(
    "process %d of %d, %d local / %d global devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  return True


def make_mesh(devices=None) -> Mesh:
  return Mesh(np.asarray(jax.devices() if devices is None else devices), ("data",))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """Rows this process feeds; the global batch must split evenly over devices."""
  devices = mesh.devices.size
  if global_batch_size % devices:
    raise UserError(
      f"config key train.batch_size: expected a multiple of the {devices} devices, got {global_batch_size}"
    )
  return global_batch_size // jax.process_count()


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This process's rows of a batch -> one global array per key, sharded on 'data'."""

  def put(x):
    global_shape = (x.shape[0] * jax.process_count(),) + x.shape[1:]
    return jax.make_array_from_process_local_data(sharding, x, global_shape)

  return {k: put(np.asarray(v)) for k, v in batch.items()}


def host_copy(tree):
  """Host (numpy) copies of possibly replicated, multi-process arrays: one local shard holds the whole value."""

  def one(a):
    return np.asarray(a.addressable_shards[0].data) if isinstance(a, jax.Array) else np.asarray(a)

  return jax.tree.map(one, tree)


def prefetch(
  batches: Iterable[dict[str, np.ndarray]], sharding: NamedSharding, size: int = 2
) -> Iterator[dict[str, jax.Array]]:
  """Yields global batches, keeping `size` of them already transferred.

  Transfers are asynchronous, so the next batches cross to the devices while the
  current step computes.
  """
  queue = collections.deque()
  it = iter(batches)
  for batch in it:
    queue.append(to_global(batch, sharding))
    if len(queue) >= size:
      break
  while queue:
    yield queue.popleft()
    for batch in it:
      queue.append(to_global(batch, sharding))
      break
