"""Rendering whole images in fixed-size chunks of rays, split over the devices.

Every chunk has the same shape (the last is padded), so the renderer compiles once for any resolution, and
memory is bounded by `chunk_size` rays.
"""

from typing import Dict

import jax
import numpy as np

from jaxnerf import camera
from jaxnerf import parallel


def render_image(render_rays, params, rays: camera.Rays, chunk_size: int, sharding) -> Dict[str, np.ndarray]:
  """Renders rays with fields [H, W, C] into host arrays {'rgb': [H, W, 3], 'depth': [H, W], 'acc': ...}.

  Args:
    render_rays: compiled (params, rays) -> dict of [B, ...] arrays (steps.CompiledSteps.render_rays).
    params: model parameters, placed as render_rays expects.
    rays: the image's rays.
    chunk_size: rays per call; must be divisible by the device count.
    sharding: sharding of a chunk of rays (split over devices).
  """
  image_shape = rays.origins.shape[:-1]
  flat = jax.tree.map(lambda x: np.asarray(x).reshape((-1, x.shape[-1])), rays)
  num_rays = flat.origins.shape[0]
  outputs = []
  for start in range(0, num_rays, chunk_size):
    chunk = jax.tree.map(lambda x: x[start:start + chunk_size], flat)
    valid = chunk.origins.shape[0]
    if valid < chunk_size:  # Pad with copies of the last ray; the extra outputs are dropped.
      chunk = jax.tree.map(lambda x: np.concatenate([x, np.repeat(x[-1:], chunk_size - valid, 0)]), chunk)
    result = parallel.fetch(render_rays(params, parallel.shard_replicated_data(chunk, sharding)))
    outputs.append(jax.tree.map(lambda x: x[:valid], result))
  return {k: np.concatenate([o[k] for o in outputs]).reshape(image_shape + outputs[0][k].shape[1:])
          for k in outputs[0]}
