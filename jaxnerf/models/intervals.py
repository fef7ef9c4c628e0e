"""What the renderers that sample intervals along rays share (coarse_to_fine.py, proposal.py): the ray bounds,
the Gaussians of conical frustums, and the absence of non-trained state."""

from typing import Optional, Sequence

import flax.linen as nn
import jax

from jaxnerf import camera
from jaxnerf import rendering
from jaxnerf.camera import Rays
from jaxnerf.models.fields import Gaussians


def ray_bounds(rays: Rays, scene_box: Optional[Sequence[float]]):
  """near, far [..., 1] of rays [...]: their own, or clipped to `scene_box` when it is set."""
  if scene_box is None:
    return rays.near, rays.far
  return camera.clip_to_box(rays.origins, rays.directions, rays.near, rays.far, scene_box)


def frustum_gaussians(rays: Rays, t_edges) -> Gaussians:
  """The Gaussians [..., num_samples] of the conical frustums between consecutive t_edges [..., N + 1] of
  each ray's cone (its `radii`), in world space (rendering.conical_frustum_to_gaussian)."""
  mean, cov_diag = rendering.conical_frustum_to_gaussian(rays.directions, t_edges[..., :-1], t_edges[..., 1:],
                                                         rays.radii)
  return Gaussians(mean + rays.origins[..., None, :], cov_diag)


class StatelessRenderer(nn.Module):
  """A renderer whose only variables are its parameters."""

  def update_state(self, params, model_state, rng: jax.Array, step):
    """The non-trained variables for training step `step`: there are none, so `model_state` comes back."""
    del params, rng, step
    return model_state
