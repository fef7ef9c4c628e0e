"""Rendering whole images in fixed-size chunks of rays, split over the devices.

Every chunk has the same shape (the last is padded), so the renderer compiles once for any resolution, and
memory is bounded by `chunk_size` rays. Two things keep a packed renderer's fixed-size buffers busy with
work that shows:
- models that can (steps.CompiledSteps.probe_rays) first find the rays that cross only empty space, which
  are the background at no cost, and only the others are rendered;
- chunks take the rays in a fixed shuffled order rather than row by row, so that rows of background do not
  leave buffers idle while rows through the scene overflow them.
"""

from typing import Dict

import jax
import numpy as np

from jaxnerf.ops import camera
from jaxnerf import parallel


def _render_in_chunks(render, variables, flat: camera.Rays, indices: np.ndarray, chunk_size: int, sharding,
                      outputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Renders the rays `indices` of `flat` with `render`, writing each output into outputs[key][index]
  (allocated on first use). Rays that come back incomplete are rendered again in a later chunk."""
  pending = indices
  while pending.size:
    chunk_indices, pending = pending[:chunk_size], pending[chunk_size:]
    valid = chunk_indices.size
    if valid < chunk_size:  # Pad with copies of the last ray; the extra outputs are dropped.
      chunk_indices = np.concatenate([chunk_indices, np.repeat(chunk_indices[-1:], chunk_size - valid)])
    chunk = jax.tree.map(lambda x: x[chunk_indices], flat)
    result = parallel.fetch(render(variables, parallel.shard_replicated_data(chunk, sharding)))
    done = result.pop('complete', np.ones(chunk_size, bool))[:valid]
    for key, value in result.items():
      if key not in outputs:
        outputs[key] = np.zeros((flat.origins.shape[0],) + value.shape[1:], value.dtype)
      outputs[key][chunk_indices[:valid][done]] = value[:valid][done]
    pending = np.concatenate([chunk_indices[:valid][~done], pending])
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
  if steps.probe_rays is not None:
    _render_in_chunks(steps.probe_rays, variables, flat, order, chunk_size, steps.batch_sharding, outputs)
    order = order[~outputs.pop('empty')[order]]
  _render_in_chunks(steps.render_rays, variables, flat, order, chunk_size, steps.batch_sharding, outputs)
  return {k: v.reshape(image_shape + v.shape[1:]) for k, v in outputs.items()}
