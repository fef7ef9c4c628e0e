"""Coarse-to-fine renderers: each level resamples along rays from the weights of the level before.

- `NeRF` (Mildenhall et al. 2020, Sec. 5.2): point samples, one field per level; stratified samples for the
  coarse level, then samples drawn from the coarse weights added for the fine level.
- `MipNeRF` (Barron et al. 2021, Sec. 3): intervals (conical frustums, as Gaussians) read by one field
  shared by all levels through the integrated encoding; each level resamples intervals from the previous
  level's blurred weights (Eq. 18).

Renderers are called as model.apply(variables, rng, rays, background, progress) and return their ray history:
a list of compositing.RenderedRays, one per level, the final output last (see models/__init__.py).
"""

from typing import ClassVar, Dict, FrozenSet, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.models.intervals import ray_bounds
from jaxnerf.models.intervals import render_levels
from jaxnerf.models.intervals import StatelessRenderer
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from jaxnerf.ops import coord
from jaxnerf.ops.ray_samples import RaySamples
from jaxnerf.ops import sampling
from jaxnerf.ops import stepfun
from jaxnerf import values

# The keys of config.model that the coarse-to-fine renderers read (name='nerf'; lindisp also 'mipnerf').
config_groups.register('model', owner=__name__, settings=dict(
    num_coarse_samples=Setting(64, "name='nerf': stratified samples per ray of the coarse level.",
                               values.POSITIVE_INT),
    num_fine_samples=Setting(128, "name='nerf': samples per ray drawn from the coarse weights and added for the "
                             'fine level (0: no fine level).', values.NON_NEGATIVE_INT),
    lindisp=Setting(False, "name='nerf' or 'mipnerf': True samples linearly in disparity rather than in depth."),
), small=dict(num_coarse_samples=16, num_fine_samples=16))

config_groups.register('model.mipnerf', owner=__name__, settings=dict(
    num_samples=Setting(128, "name='mipnerf': intervals per ray of each level."),
    num_levels=Setting(2, "name='mipnerf': levels, each resampled from the blurred weights of the level before."),
    resample_padding=Setting(0.01, "name='mipnerf': added to the blurred weights before each resampling."),
), small=dict(num_samples=16))


class NeRF(StatelessRenderer):
  """Coarse-to-fine NeRF over two fields. Calling it renders a batch of rays once per level."""

  # The fields (attribute names) that render each level: what prune.py's --prune=coarse|fine names.
  LEVEL_FIELDS: ClassVar[Dict[str, Tuple[str, ...]]] = {'coarse': ('coarse_field',), 'fine': ('fine_field',)}
  # What the ray history holds for loss terms (losses.NEEDS).
  PROVIDES: ClassVar[FrozenSet[str]] = frozenset({'intervals'})
  coarse_field: nn.Module
  fine_field: Optional[nn.Module] = None
  num_coarse_samples: int = 64
  num_fine_samples: int = 128
  lindisp: bool = False
  scene_box: Optional[Sequence[float]] = None  # If set, sample only inside it; density outside is zero.

  def _render_samples(self, field, rng, rays: Rays, t, near, far, background, progress):
    # Sample i stands for the interval from t_i to the next sample; for the losses and the median depth
    # the last one ends at the far bound (its 1e10 only makes it opaque).
    edges = jax.lax.stop_gradient(jnp.concatenate([t, jnp.maximum(far, t[..., -1:])], axis=-1))
    samples = RaySamples.along_rays(rays, t, edges[..., 1:], progress)
    out = field(samples, rng)
    density = out.density
    if self.scene_box is not None:
      inside = coord.inside_unit_cube(coord.to_unit_cube(samples.points(), self.scene_box))
      density = jnp.where(inside, density, 0.0)
    # Inside a box the ray ends at its exit: the last sample's interval reaches it, not the paper's 1e10,
    # which would make the last sample opaque and hide the background behind haze.
    far_delta = compositing.FAR_DELTA if self.scene_box is None else far - t[..., -1:]
    rendered = compositing.volume_render(out.rgb, density, t, rays.directions, background, far_delta, out.extras)
    spacing = 'disparity' if self.lindisp else 'linear'
    return rendered._replace(s_edges=coord.t_to_s(edges, near, far, spacing), t_edges=edges)

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background, progress=1.0):
    """Renders rays [...] with each level.

    Args:
      rng: key for stratified jitter, hierarchical draws and density noise; None for deterministic
        evaluation.
      rays: Rays with fields [..., C].
      background: [3] or [..., 3] colour composited behind the scene.
      progress: the fraction of training done (handed to the fields with the samples).

    Returns:
      A list of RenderedRays, coarse first, then fine when there is a fine field.
    """
    keys = [None] * 4 if rng is None else list(jax.random.split(rng, 4))
    near, far = ray_bounds(rays, self.scene_box)
    t = sampling.stratified_samples(keys[0], near, far, self.num_coarse_samples, self.lindisp)
    renderings = [self._render_samples(self.coarse_field, keys[1], rays, t, near, far, background, progress)]
    if self.fine_field is not None:
      t = sampling.hierarchical_samples(keys[2], t, renderings[0].w, self.num_fine_samples)
      renderings.append(self._render_samples(self.fine_field, keys[3], rays, t, near, far, background, progress))
    return renderings


class MipNeRF(StatelessRenderer):
  """mip-NeRF: `num_levels` levels of `num_samples` intervals through one field that reads Gaussians.

  The first level's intervals are stratified between near and far; each later level draws new intervals
  from the previous level's weights after mip-NeRF's blur (a 2-tap max, a 2-tap mean, plus
  `resample_padding`; Eq. 18), with no gradient through the resampling.
  """

  LEVEL_FIELDS: ClassVar[Dict[str, Tuple[str, ...]]] = {'fine': ('field',)}  # One field renders every level.
  # What the ray history holds for loss terms (losses.NEEDS).
  PROVIDES: ClassVar[FrozenSet[str]] = frozenset({'intervals'})
  field: nn.Module
  num_samples: int = 128
  num_levels: int = 2
  resample_padding: float = 0.01
  lindisp: bool = False
  scene_box: Optional[Sequence[float]] = None

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background, progress=1.0):
    """Renders rays [...] with each level; as NeRF.__call__."""
    near, far = ray_bounds(rays, self.scene_box)
    spacing = 'disparity' if self.lindisp else 'linear'
    return render_levels(rng, rays, background, [self.num_samples] * self.num_levels,
                         lambda s: coord.s_to_t(s, near, far, spacing), lambda level, w: stepfun.blur_weights(w),
                         lambda level, samples, key: self.field(samples, key), padding=self.resample_padding,
                         progress=progress)
