"""Fixed-step ray marching with samples packed into fixed-size buffers (instant-ngp, Sec. 5.3 and App. E).

Every ray is marched in equal steps from where it enters the scene box; only the steps that an occupancy
grid (occupancy.py) marks as possibly occupied are evaluated. Their number varies from ray to ray, so the
selected samples of a whole batch are *packed* into one flat buffer of fixed capacity: the compiled step
keeps its shapes, and the work follows the samples that matter rather than a fixed count per ray.

Naming conventions:
- `s`: distance along a ray in world units, measured along its unit direction from the origin. NeRF's `t`
  (depth along the un-normalised `directions`) is s / |directions|.
- `step_size`: world distance between consecutive steps; each sample stands for an interval of that length.
- `[R, M]` arrays: R rays, M = `num_steps` candidate steps per ray.
- `capacity`: C, the number of slots of a packed buffer; packed arrays are [C, ...] and hold the selected
  samples ray by ray, in increasing s, then unused slots.
- `ray_index`: [C] int32, the ray of each slot (R for unused slots); `step_index`: [C] its step.
- `complete`: [R] bool, whether every selected sample of a ray found a slot. Samples are packed in ray order,
  so when the buffer overflows it is the last rays that are cut short.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


def num_steps_for(box_diagonal: float, step_size: float) -> int:
  """Steps M that cover the longest chord of a box with diagonal `box_diagonal`."""
  return int(-(-box_diagonal // step_size)) + 1


def step_indices(num_steps: int, first_step=None):
  """Indices m [..., num_steps] int32 of consecutive steps from first_step [...] (from 0 when None: [M])."""
  m = jnp.arange(num_steps, dtype=jnp.int32)
  return m if first_step is None else first_step[..., None] + m


def step_distances(s_start, offset, step_size: float, m):
  """Distances s [..., K] of the steps m [..., K] (int; `step_indices`): s_start [...] + (m + offset [...])
  * step_size.

  `offset` in [0, 1) jitters where in its interval each ray samples (0.5: interval centres, for rendering).
  A step has the same distance however it was found (a whole march, a window of one, a packed slot).
  """
  return s_start[..., None] + (m.astype(jnp.float32) + offset[..., None]) * step_size


class PackedSamples(NamedTuple):
  ray_index: jax.Array  # [C] int32; R in unused slots.
  step_index: jax.Array  # [C] int32; 0 in unused slots.
  valid: jax.Array  # [C] bool: the slot holds a sample.
  complete: jax.Array  # [R] bool: all of the ray's selected samples are in the buffer.


def _first_slots(mask, capacity: int):
  """Indices [capacity] of the first `capacity` True entries of mask [N], in order, padded with N."""
  size = mask.shape[0]
  slot = jnp.where(mask, jnp.cumsum(mask) - 1, capacity)  # Entry i goes to slot (# True before i).
  index = jnp.full(capacity, size, jnp.int32).at[slot].set(jnp.arange(size, dtype=jnp.int32), mode='drop')
  return index, index < size


def pack(selected, capacity: int) -> PackedSamples:
  """Packs the selected steps, selected [R, M] bool, of all rays into a buffer of `capacity` slots."""
  num_rays, num_steps = selected.shape
  flat_index, valid = _first_slots(selected.reshape(-1), capacity)
  ray_index = jnp.where(valid, flat_index // num_steps, num_rays).astype(jnp.int32)
  step_index = jnp.where(valid, flat_index % num_steps, 0).astype(jnp.int32)
  counts = jnp.sum(selected, axis=-1)
  complete = (jnp.cumsum(counts) <= capacity) | (counts == 0)
  return PackedSamples(ray_index, step_index, valid, complete)


def repack(packed: PackedSamples, keep, capacity: int) -> PackedSamples:
  """Packs the slots of `packed` where keep [C] is True into a new buffer of `capacity` slots.

  A ray stays complete if it was complete before and all its kept samples fit.
  """
  num_rays = packed.complete.shape[0]
  keep = keep & packed.valid
  slot, valid = _first_slots(keep, capacity)
  slot = jnp.minimum(slot, keep.shape[0] - 1)
  kept_per_ray = jax.ops.segment_sum(keep.astype(jnp.int32), packed.ray_index, num_segments=num_rays,
                                     indices_are_sorted=True)
  fits = (jnp.cumsum(kept_per_ray) <= capacity) | (kept_per_ray == 0)
  return PackedSamples(ray_index=jnp.where(valid, packed.ray_index[slot], num_rays),
                       step_index=jnp.where(valid, packed.step_index[slot], 0),
                       valid=valid,
                       complete=packed.complete & fits)


def gather_rays(per_ray, packed: PackedSamples):
  """Each slot's value of a per-ray array [R, ...] ([C, ...]; unused slots read the last ray's)."""
  num_rays = per_ray.shape[0]
  return per_ray[jnp.minimum(packed.ray_index, num_rays - 1)]


def packed_distances(packed: PackedSamples, s_start, offset, step_size: float):
  """Distances s [C] of packed steps of rays starting at s_start [R] with offsets [R] (`step_distances`)."""
  return step_distances(gather_rays(s_start, packed), gather_rays(offset, packed), step_size,
                        packed.step_index[:, None])[:, 0]
