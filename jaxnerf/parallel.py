"""Data parallelism: the device mesh, shardings, and moving host arrays onto devices.

One mesh axis, 'data', spans every device of every process. Parameters are replicated; batches of rays are
split along their leading axis. Each process supplies the rows of the global batch that its own devices hold.
"""

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh over `devices` (default: all devices of all processes).

  Auto axes: XLA places the collectives (e.g. the gradient all-reduce); with Explicit axes, table gathers
  with batch-sharded indices raise sharding type errors.
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh) -> NamedSharding:
  """Splits the leading axis over the devices."""
  return NamedSharding(mesh, P(DATA_AXIS))


def shard_local_batch(local_batch, sharding):
  """Assembles global arrays from each process's rows of a batch (a pytree of [local_rows, ...] arrays)."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      local_batch)


def shard_replicated_data(data, sharding):
  """Global arrays from host data that every process holds in full (e.g. the rays of an image chunk)."""
  return jax.tree.map(
      lambda x: jax.make_array_from_callback(np.shape(x), sharding, lambda index: np.asarray(x)[index]),
      data)


def fetch(tree):
  """Host numpy copies of (possibly multi-process) global arrays. On several processes, a replicated array is
  read from this process's replica; any other is gathered from every process (a collective: every process
  fetches the same tree)."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  from jax.experimental import multihost_utils

  def fetch_one(x):
    if isinstance(x, jax.Array) and x.is_fully_replicated:
      return np.asarray(x.addressable_data(0))  # Every process holds all of it: nothing to gather.
    return multihost_utils.process_allgather(x, tiled=True)

  return jax.tree.map(fetch_one, tree)


def placed_like(tree, reference):
  """`tree` on the devices, with the sharding, of the first array of `reference` (unchanged where that is a
  host array). For the first inputs of a loop over a compiled step whose outputs land where the model is:
  with the first call's inputs elsewhere, the second call would compile the step again."""
  sharding = getattr(jax.tree.leaves(reference)[0], 'sharding', None)
  return tree if sharding is None else jax.device_put(tree, sharding)


def agree(values: np.ndarray) -> np.ndarray:
  """Process 0's `values` in every process: host decisions that depend on a clock (stop, validate now,
  the schedule's length) must be the same everywhere, or the processes' steps fall out of step."""
  if jax.process_count() == 1:
    return np.asarray(values)
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.broadcast_one_to_all(np.asarray(values)))
