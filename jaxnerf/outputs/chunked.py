"""Rendering whole images in fixed-size chunks of rays, split over the devices.

Every chunk has the same shape (the last is padded), so the renderer compiles once for any resolution, and
memory is bounded by `chunk_size` rays. Two things keep a packed renderer's fixed-size buffers busy with
work that shows:
- models that can (steps.CompiledSteps.probe_rays) first count each ray's samples: the rays that cross only
  empty space are the background at no cost, and chunks of the others are filled with as many rays as their
  samples fit the buffers (padded with rays that march nothing), not with a fixed number of rays;
- chunks take the rays in a fixed shuffled order rather than row by row, so that rows of background do not
  leave buffers idle while rows through the scene overflow them.
"""

from typing import Callable, Dict, Optional

import jax
import numpy as np

from jaxnerf.ops import camera
from jaxnerf import parallel


def _next_chunk(pending: np.ndarray, chunk_size: int):
  """(indices [chunk_size], real [chunk_size] bool, still pending): the next `chunk_size` rays of `pending`,
  padded with copies of the last one."""
  chunk, pending = pending[:chunk_size], pending[chunk_size:]
  real = np.arange(chunk_size) < chunk.size
  return np.concatenate([chunk, np.repeat(chunk[-1:], chunk_size - chunk.size)]), real, pending


def _next_filled_chunk(pending: np.ndarray, samples: np.ndarray, chunk_size: int, num_groups: int,
                       capacity: int):
  """`_next_chunk` for a packed renderer: each of the chunk's `num_groups` groups takes the next rays of
  `pending` while their samples (probed) fit its `capacity` slots, and is padded with rays made empty
  (see render_image), so that the buffers hold samples rather than slots for copies of a ray."""
  group_size = chunk_size // num_groups
  indices, real = np.empty(chunk_size, np.int64), np.zeros(chunk_size, bool)
  total = np.cumsum(samples[pending])
  start = 0
  for group in range(num_groups):
    base = total[start - 1] if start else 0
    end = min(int(np.searchsorted(total, base + capacity, side='right')), start + group_size, pending.size)
    if end == start < pending.size:  # (The capacity holds any one ray: the renderer sizes it so.)
      end += 1
    slots = slice(group * group_size, group * group_size + end - start)
    indices[slots], real[slots] = pending[start:end], True
    indices[slots.stop:(group + 1) * group_size] = pending[min(start, pending.size - 1)]
    start = end
  return indices, real, pending[start:]


def _render_in_chunks(render, variables, flat: camera.Rays, indices: np.ndarray, chunk_size: int, sharding,
                      outputs: Dict[str, np.ndarray], samples: Optional[np.ndarray] = None,
                      capacity: Optional[Callable[[int], int]] = None) -> Dict[str, np.ndarray]:
  """Renders the rays `indices` of `flat` with `render`, writing each output into outputs[key][index]
  (allocated on first use). Rays that come back incomplete are rendered again in a later chunk. With
  `samples` (each ray's samples, probed), chunks are filled to capacity(rays per group) samples per group
  (`_next_filled_chunk`)."""
  num_groups = sharding.mesh.size
  pending = indices
  while pending.size:
    if samples is None:
      chunk_indices, real, pending = _next_chunk(pending, chunk_size)
    else:
      chunk_indices, real, pending = _next_filled_chunk(pending, samples, chunk_size, num_groups,
                                                        capacity(chunk_size // num_groups))
    chunk = jax.tree.map(lambda x: x[chunk_indices], flat)
    if samples is not None:
      chunk = chunk._replace(far=np.where(real[:, None], chunk.far, chunk.near))  # Padding marches nothing.
    result = parallel.fetch(render(variables, parallel.shard_replicated_data(chunk, sharding)))
    done = result.pop('complete', np.ones(real.size, bool))[real]
    rendered = chunk_indices[real]
    for key, value in result.items():
      if key not in outputs:
        outputs[key] = np.zeros((flat.origins.shape[0],) + value.shape[1:], value.dtype)
      outputs[key][rendered[done]] = value[real][done]
    pending = np.concatenate([rendered[~done], pending])
  return outputs


def render_image(steps, variables, rays: camera.Rays, chunk_size: int) -> Dict[str, np.ndarray]:
  """Renders rays with fields [H, W, C] into host arrays {'rgb': [H, W, 3], 'depth': [H, W], 'median_depth',
  'acc'} (what the compiled render_rays returns).

  Rays that come back incomplete (a packed renderer ran out of slots) are rendered again in a later chunk;
  each chunk completes at least its first ray per device, so this ends.

  Args:
    steps: the compiled steps (steps.CompiledSteps): render_rays, probe_rays and the batch sharding.
    variables: model variables, placed as the steps expect.
    rays: the image's rays.
    chunk_size: rays per call; must be divisible by the device count.
  """
  image_shape = rays.origins.shape[:-1]
  flat = jax.tree.map(lambda x: np.asarray(x).reshape((-1, x.shape[-1])), rays)
  order = np.random.default_rng(0).permutation(flat.origins.shape[0])
  outputs = {}
  samples = None
  if steps.probe_rays is not None:
    _render_in_chunks(steps.probe_rays, variables, flat, order, chunk_size, steps.batch_sharding, outputs)
    order = order[~outputs.pop('empty')[order]]
    samples = outputs.pop('samples')
  _render_in_chunks(steps.render_rays, variables, flat, order, chunk_size, steps.batch_sharding, outputs,
                    samples, steps.sample_capacity)
  return {k: v.reshape(image_shape + v.shape[1:]) for k, v in outputs.items()}
