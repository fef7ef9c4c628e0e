"""Rendering whole images in fixed-size chunks of rays, split over the devices.

Every chunk has the same shape (the last is padded), so the renderer compiles once for any resolution, and
memory is bounded by `chunk_size` rays.
"""

from typing import Dict

import jax
import numpy as np

from jaxnerf import camera
from jaxnerf import parallel


def render_image(render_rays, variables, rays: camera.Rays, chunk_size: int,
                 sharding) -> Dict[str, np.ndarray]:
  """Renders rays with fields [H, W, C] into host arrays {'rgb': [H, W, 3], 'depth': [H, W], 'acc': ...}.

  Rays that come back incomplete (a packed renderer ran out of slots) are rendered again in a later chunk;
  each chunk completes at least its first ray per device, so this ends.

  Args:
    render_rays: compiled (variables, rays) -> dict of [B, ...] arrays with a 'complete' [B] entry
      (steps.CompiledSteps.render_rays).
    variables: model variables, placed as render_rays expects.
    rays: the image's rays.
    chunk_size: rays per call; must be divisible by the device count.
    sharding: sharding of a chunk of rays (split over devices).
  """
  image_shape = rays.origins.shape[:-1]
  flat = jax.tree.map(lambda x: np.asarray(x).reshape((-1, x.shape[-1])), rays)
  pending = np.arange(flat.origins.shape[0])
  outputs = None
  while pending.size:
    indices, pending = pending[:chunk_size], pending[chunk_size:]
    valid = indices.size
    if valid < chunk_size:  # Pad with copies of the last ray; the extra outputs are dropped.
      indices = np.concatenate([indices, np.repeat(indices[-1:], chunk_size - valid)])
    chunk = jax.tree.map(lambda x: x[indices], flat)
    result = parallel.fetch(render_rays(variables, parallel.shard_replicated_data(chunk, sharding)))
    done = result.pop('complete')[:valid]
    if outputs is None:
      outputs = {k: np.zeros((flat.origins.shape[0],) + v.shape[1:], v.dtype) for k, v in result.items()}
    for key, value in result.items():
      outputs[key][indices[:valid][done]] = value[:valid][done]
    pending = np.concatenate([indices[:valid][~done], pending])
  return {k: v.reshape(image_shape + v.shape[1:]) for k, v in outputs.items()}
