"""The training loss: named, weighted terms over a batch's renderings (`config.loss`).

Naming conventions:
- `renderings`: the renderer's ray history, one rendering.RenderedRays per level, coarse first, the final
  output last, with rgb [..., 3] (None on density-only levels), `complete` [...] (None: every ray was
  rendered with all its samples), and `s_edges` [..., N + 1] and `w` [..., N], the intervals' edges in
  normalised distance and their weights (None for packed samples).
- `target`: the colours the rays should render, [..., 3].
- a *term* is a scalar; the loss is the sum of the terms, each already multiplied by its weight.
Statistics that are not trained on (MSE and PSNR per level) are computed apart, in `level_mses`.
"""

from typing import Dict, Sequence

import jax.numpy as jnp

from jaxnerf import stepfun
from jaxnerf.errors import ConfigError


def charbonnier(residual, eps: float):
  """sqrt(residual^2 + eps^2), a smooth L1 (Charbonnier 1994; mip-NeRF 360's data term, eps = 1e-3)."""
  return jnp.sqrt(residual**2 + eps**2)


# Per-channel penalties of a residual (rendered - target), [..., 3] -> [..., 3].
DATA_PENALTIES = {
    'mse': lambda residual, eps: residual**2,  # The NeRF paper's (Eq. 6).
    'charbonnier': charbonnier,
}


def _masked_mean(values, complete):
  """Mean of values [..., 3] over the rays whose `complete` [...] is True (all rays when it is None)."""
  if complete is None:
    return jnp.mean(values)
  mask = complete[..., None].astype(values.dtype)
  return jnp.sum(mask * values) / jnp.maximum(values.shape[-1] * jnp.sum(mask), 1.0)


def data_term(renderings: Sequence, target, penalty: str = 'mse', eps: float = 1e-3,
              coarse_weight: float = 1.0):
  """The reconstruction term: the mean penalty of each level's colours against the target, summed over
  levels with weight `coarse_weight` on all but the finest (the NeRF paper sums coarse and fine, Eq. 6).
  Rays marked incomplete are left out of their level's mean."""
  if penalty not in DATA_PENALTIES:
    raise ConfigError(f'config.loss.data must be one of {sorted(DATA_PENALTIES)}, got {penalty!r}.')
  level_terms = [_masked_mean(DATA_PENALTIES[penalty](r.rgb - target, eps), r.complete)
                 for r in renderings if r.rgb is not None]
  return sum(coarse_weight * term for term in level_terms[:-1]) + level_terms[-1]


def level_mses(renderings: Sequence, target):
  """The mean squared error of each level's colours, [levels with colour] (incomplete rays left out)."""
  return jnp.stack([_masked_mean((r.rgb - target)**2, r.complete) for r in renderings if r.rgb is not None])


def _intervals(renderings: Sequence, term: str):
  if any(r.s_edges is None for r in renderings):
    raise ConfigError(f'config.loss.{term}_weight needs a renderer that samples intervals (nerf, mipnerf, '
                      'proposal); packed samples (occupancy_grid) have no interval edges.')
  return renderings


def interlevel_term(renderings: Sequence):
  """mip-NeRF 360's proposal loss (Eq. 14), summed over the levels before the final one: each must bound
  the final level's weights (stepfun.interlevel_loss; gradients reach only the earlier levels)."""
  renderings = _intervals(renderings, 'interlevel')
  final = renderings[-1]
  return sum(stepfun.interlevel_loss(final.s_edges, final.w, r.s_edges, r.w) for r in renderings[:-1])


def distortion_term(renderings: Sequence):
  """mip-NeRF 360's distortion regulariser (Eq. 15) of the final level, in normalised distance, mean over
  rays."""
  final = _intervals(renderings, 'distortion')[-1]
  return jnp.mean(stepfun.distortion_loss(final.s_edges, final.w))


def total_loss(renderings: Sequence, target, loss_config) -> Dict[str, jnp.ndarray]:
  """The terms `loss_config` (config.loss) asks for (those of zero weight are not computed), weighted, by
  name ('loss_data', 'loss_interlevel', ...), and their sum as 'loss'."""
  terms = {'data': data_term(renderings, target, loss_config.data, loss_config.charbonnier_eps,
                             loss_config.coarse_weight)}
  if loss_config.interlevel_weight > 0:
    terms['interlevel'] = loss_config.interlevel_weight * interlevel_term(renderings)
  if loss_config.distortion_weight > 0:
    terms['distortion'] = loss_config.distortion_weight * distortion_term(renderings)
  return {'loss': sum(terms.values()), **{f'loss_{name}': value for name, value in terms.items()}}
