"""What the renderers that sample intervals along rays share (coarse_to_fine.py, proposal.py): the ray bounds,
the loop over levels that resample intervals (each level's intervals handed to its field as conical frustums,
ops/ray_samples.py), and the absence of non-trained state.

Naming: `s_edges` interval edges in the normalised sampling space [0, 1] (near to far), `t_edges` the same
edges as distances along the rays, `w` volume-rendering weights of the intervals.
"""

from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf.ops import camera
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from jaxnerf.ops.ray_samples import RaySamples
from jaxnerf.ops import stepfun


def ray_bounds(rays: Rays, scene_box: Optional[Sequence[float]]):
  """near, far [..., 1] of rays [...]: their own, or clipped to `scene_box` when it is set."""
  if scene_box is None:
    return rays.near, rays.far
  return camera.clip_to_box(rays.origins, rays.directions, rays.near, rays.far, scene_box)


def render_levels(rng: Optional[jax.Array], rays: Rays, background, level_samples: Sequence[int], s_to_t: Callable,
                  resampling_weights: Callable, shade: Callable, padding: float = 0.0, single_jitter: bool = False,
                  opaque_last: bool = False, progress=1.0):
  """Renders rays [...] through levels of intervals, each drawn from the weights of the level before
  (mip-NeRF's and mip-NeRF 360's loop; the first level's intervals are stratified over [0, 1]).

  Args:
    rng: key for each level's resampling jitter and shading noise; None for deterministic compositing.
    rays: Rays with fields [..., C].
    background: [3] or [..., 3].
    level_samples: intervals of each level.
    s_to_t: s_edges [..., N + 1] -> t_edges, the renderer's spacing between its near and far bounds.
    resampling_weights: (level, w) -> the weights the level's intervals are drawn from (level >= 1).
    shade: (level, samples [..., N] (RaySamples of conical frustums), key) -> fields.FieldOutputs: density
      [..., N], rgb [..., N, 3] or None (a density-only level), and extras [..., N, D] to keep and composite.
    padding: added to the weights before each resampling (not to the first level's uniform weight).
    single_jitter, opaque_last: as stepfun.sample_intervals and compositing.render_intervals take them.
    progress: the fraction of training done, handed to the fields with the samples.

  Returns:
    One RenderedRays per level, with its s_edges.
  """
  num_keys = 2 * len(level_samples)  # Per level: resampling, then shading.
  keys = [None] * num_keys if rng is None else list(jax.random.split(rng, num_keys))
  s_edges = jnp.broadcast_to(jnp.array([0.0, 1.0]), rays.near.shape[:-1] + (2,))
  w = jnp.ones(rays.near.shape[:-1] + (1,))
  renderings = []
  for level, num_samples in enumerate(level_samples):
    sampling_w = w if level == 0 else resampling_weights(level, w)
    s_edges = stepfun.sample_intervals(keys[2 * level], s_edges, sampling_w, num_samples,
                                       single_jitter=single_jitter, padding=0.0 if level == 0 else padding)
    t_edges = s_to_t(s_edges)
    samples = RaySamples.along_rays(rays, t_edges[..., :-1], t_edges[..., 1:], progress, conical=True)
    out = shade(level, samples, keys[2 * level + 1])
    rendered = compositing.render_intervals(out.rgb, out.density, t_edges, rays.directions, background, opaque_last,
                                          out.extras)
    renderings.append(rendered._replace(s_edges=s_edges))
    w = rendered.w
  return renderings


class StatelessRenderer(nn.Module):
  """A renderer whose only variables are its parameters."""

  def update_state(self, params, model_state, rng: jax.Array, step):
    """The non-trained variables for training step `step`: there are none, so `model_state` comes back."""
    del params, rng, step
    return model_state
