"""mip-NeRF 360's proposal sampling (Barron et al. 2022, Sec. 3): cheap density-only fields place the samples
of the field that renders colour.

Each ray starts as one interval [0, 1] in a normalised distance s (evenly spaced in disparity for unbounded
scenes, Sec. 2.2; linear for bounded ones). Every proposal level draws intervals from the weights of the level
before, asks its own density-only field at them and composites their weights; the final level draws its
intervals from the last proposal's weights and renders colour with the NeRF field. The proposals learn only
from the interlevel loss (their weights must bound the final level's, Eq. 13-14), and no gradient flows
through the resampling. Early in training the proposal weights are annealed towards uniform (the weights are
raised to a power rising from 0 to 1 with the training progress; multinerf's `anneal_slope`).

With MLP fields this is mip-NeRF 360; with hash-grid fields (warped by the contraction for unbounded scenes)
it is the proposal sampler of nerfstudio's nerfacto.
"""

from typing import ClassVar, Dict, FrozenSet, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.models.fields import FieldOutputs
from jaxnerf.models.fields import LAYERS_RULE
from jaxnerf.models.intervals import ray_bounds
from jaxnerf.models.intervals import render_levels
from jaxnerf.models.intervals import StatelessRenderer
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import coord
from jaxnerf import values

# name='proposal': the renderer's settings, and those of its density-only proposal fields of kind `field`,
# which are config.model.<field> updated by proposal.<field>.
config_groups.register('model.proposal', owner=__name__, settings=dict(
    field=Setting('mlp', "The kind of the proposal fields: 'mlp' or 'hash_grid', configured by model.<field> "
                  'updated by model.proposal.<field>.'),
    num_proposal_samples=Setting((64, 64), 'Intervals per ray of each proposal level (one proposal field per '
                                 'entry).'),
    num_nerf_samples=Setting(32, 'Intervals per ray of the final level, which the NeRF field renders.'),
    spacing=Setting('disparity', "Spacing of the normalised distance: 'disparity' or 'linear_disparity' "
                    "(linear up to spacing_pivot, then disparity) for unbounded scenes, 'linear' for bounded "
                    'ones.', values.one_of(coord.SPACINGS, ordered=True)),
    spacing_pivot=Setting(1.0, "spacing='linear_disparity': distance in world units where linear spacing gives "
                          'way to disparity.'),
    gradient_scaling_distance=Setting(0.0, "Scale the final level's gradients at samples closer to the camera "
                                      'than this (world units) by (distance / this)^2 (0: off).'),
    opaque_background=Setting(False, 'True: every ray stops by far, so no background shows (unbounded scenes).'),
    anneal_slope=Setting(10.0, 'Proposal weights anneal from uniform early in training, faster for a larger '
                         'slope (0: no annealing).'),
    resample_padding=Setting(0.0, 'Added to the weights before each resampling.'),
    single_jitter=Setting(True, 'One jitter per ray when resampling (mip-NeRF 360); False: one per sample.'),
), small=dict(num_proposal_samples=(16, 8), num_nerf_samples=8))

# mip-NeRF 360's proposal MLP: overrides of model.mlp for the proposal fields.
config_groups.register('model.proposal.mlp', owner=__name__, settings=dict(
    depth=Setting(4, "Trunk layers of each proposal MLP (as model.mlp.depth)."),
    width=Setting(256, "Units of each trunk layer of the proposal MLPs (as model.mlp.width)."),
    layers=Setting('dense', "The proposal MLPs' dense layers, 'dense' or 'ternary' (as model.mlp.layers).",
                   LAYERS_RULE),
), small=dict(depth=1, width=16))

# nerfacto's proposal grids, small and coarse with one 16-unit hidden layer: overrides of model.hash_grid.
config_groups.register('model.proposal.hash_grid', owner=__name__, settings=dict(
    num_levels=Setting(5, 'Levels of each proposal grid (as model.hash_grid.num_levels).'),
    features_per_level=Setting(2, 'Features of each table entry of the proposal grids.'),
    log2_table_size=Setting(17, 'Each level of a proposal grid has a table of up to 2^log2_table_size entries.'),
    min_resolution=Setting(16, 'Cells per side of the coarsest level of the proposal grids.'),
    max_resolution=Setting(128, 'Cells per side of the finest level of the proposal grids.'),
    density_width=Setting(16, 'Units of the hidden layer of the proposal grids\' density MLP.'),
    geo_features=Setting(0, 'Geometry features beside the density (0: none; proposal fields give density only).'),
    layers=Setting('dense', "The proposal grids' dense layers, 'dense' or 'ternary' (as model.hash_grid.layers).",
                   LAYERS_RULE),
), small=dict(num_levels=3, log2_table_size=10, max_resolution=32))


def anneal_power(progress, slope: float):
  """The power the proposal weights are raised to before resampling at training progress in [0, 1]:
  slope * p / ((slope - 1) * p + 1), which rises from 0 to 1, steeply for a large slope (0: always 1)."""
  if slope <= 0:
    return 1.0
  progress = jnp.clip(progress, 0.0, 1.0)
  return slope * progress / ((slope - 1.0) * progress + 1.0)


def scale_gradient(x, scale):
  """x, whose gradient is multiplied by `scale` (broadcast against x) on the way back."""
  scale = jax.lax.stop_gradient(scale)
  return x * scale + jax.lax.stop_gradient(x * (1.0 - scale))


def _without_ray_gradient(samples):
  """`samples` (RaySamples) whose rays pass no gradient back (their intervals are the resampling's)."""
  stop = jax.lax.stop_gradient
  return samples.replace(origins=stop(samples.origins), directions=stop(samples.directions),
                         viewdirs=stop(samples.viewdirs), radii=stop(samples.radii))


class ProposalNeRF(StatelessRenderer):
  """Proposal levels of `num_proposal_samples` intervals (one density field each), then `num_samples`
  intervals of `field`. `spacing` (coord.SPACINGS): 'disparity' or 'linear_disparity' for unbounded
  scenes, 'linear' for bounded ones; with `scene_box`, rays are clipped to it first. `resample_padding` is
  added to the weights before each resampling."""

  # The proposal fields are the coarse levels (prune.py's --prune=coarse), the NeRF field the fine one.
  LEVEL_FIELDS: ClassVar[Dict[str, Tuple[str, ...]]] = {'coarse': ('proposal_fields',), 'fine': ('field',)}
  # What the ray history holds for loss terms (losses.NEEDS).
  PROVIDES: ClassVar[FrozenSet[str]] = frozenset({'intervals'})
  field: nn.Module
  proposal_fields: Sequence[nn.Module]
  num_proposal_samples: Sequence[int] = (64, 64)
  num_samples: int = 32
  spacing: str = 'disparity'
  spacing_pivot: float = 1.0  # spacing='linear_disparity': where linear spacing gives way to disparity.
  anneal_slope: float = 10.0
  resample_padding: float = 0.0
  single_jitter: bool = True
  scene_box: Optional[Sequence[float]] = None
  # Gradients of the final level's density and colour at samples closer to the camera than this (world
  # units) are scaled by (distance / this)^2 (Philip and Deschaintre 2023, "Floaters No More"): near the
  # camera few views constrain the field, and unscaled gradients grow floaters there. 0: off.
  gradient_scaling_distance: float = 0.0
  opaque_background: bool = False  # Every ray stops by far (compositing.render_intervals' opaque_last).

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background, progress=1.0):
    """Renders rays [...]: the proposal levels (rgb None), then the final level.

    Args:
      rng: key for the resampling jitter and density noise; None for deterministic evaluation.
      rays: Rays with fields [..., C].
      background: [3] or [..., 3].
      progress: fraction of training done, in [0, 1] (1 when rendering), for the annealing.

    Returns:
      A list of RenderedRays, one per proposal level, then the final level.
    """
    if len(self.proposal_fields) != len(self.num_proposal_samples):
      raise ValueError(f'{len(self.proposal_fields)} proposal fields for {len(self.num_proposal_samples)} '
                       'proposal sample counts.')
    num_levels = len(self.proposal_fields) + 1
    near, far = ray_bounds(rays, self.scene_box)
    power = anneal_power(progress, self.anneal_slope)

    def shade(level, samples, key):
      if level < num_levels - 1:
        # The proposals only place the field's samples: a ray's gradient (a learned camera's) comes from the
        # field's colours, not from the interlevel loss through every proposal sample's position.
        return FieldOutputs(self.proposal_fields[level].density_at(_without_ray_gradient(samples), key)[0], None)
      out = self.field(samples, key)
      if self.gradient_scaling_distance > 0:
        distance = 0.5 * (samples.t_starts + samples.t_ends) * jnp.linalg.norm(rays.directions, axis=-1,
                                                                               keepdims=True)
        scale = jnp.clip((distance / self.gradient_scaling_distance)**2, 0.0, 1.0)
        out = FieldOutputs(scale_gradient(out.density, scale), scale_gradient(out.rgb, scale[..., None]),
                           out.extras)
      return out

    return render_levels(rng, rays, background, list(self.num_proposal_samples) + [self.num_samples],
                         lambda s: coord.s_to_t(s, near, far, self.spacing, self.spacing_pivot),
                         lambda level, w: jax.lax.stop_gradient(w)**power, shade, padding=self.resample_padding,
                         single_jitter=self.single_jitter, opaque_last=self.opaque_background, progress=progress)
