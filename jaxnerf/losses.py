"""The training loss: a registry of named, weighted terms over a batch's ray history (`config.loss`).

Naming conventions:
- `history`: the renderer's ray history, one compositing.RenderedRays per level, coarse first, the final
  output last, with rgb [..., 3] (None on density-only levels), `complete` [...] (None: every ray was
  rendered with all its samples), and `s_edges` [..., N + 1] and `w` [..., N], the intervals' edges in
  normalised distance and their weights (None for packed samples).
- `batch`: what the step trains on: 'rgb' [..., 3], the colours the rays should render (on the batch's
  background), 'rays' (camera.Rays, fields [..., C]), and the batch's other arrays ('alpha', ...).
- a *term* is a pure function (history, batch, loss_config) -> scalar, registered with `register_loss_term`
  under a name, with what it needs from the renderer (`NEEDS`); its weight is `config.loss.<name>_weight`
  (the data term's is config.loss.data_weight, 1 by default). The loss is the sum of the weighted terms.
  A term that regularises a parameter group's arrays (training/parameter_groups.py) is registered with
  `reads_params=<group>` and gets them as a fourth argument; it is computed only where that group trains.
  `check_terms` refuses, when the model is built, a term of non-zero weight that the renderer cannot feed.
Statistics that are not trained on (MSE and PSNR per level) are computed apart, in `level_mses`.
"""

from typing import Callable, Dict, FrozenSet, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
from jaxnerf.ops import stepfun
from jaxnerf.values import NON_NEGATIVE
from jaxnerf.values import one_of
from jaxnerf.values import POSITIVE


def charbonnier(residual, eps: float):
  """sqrt(residual^2 + eps^2), a smooth L1 (Charbonnier 1994; mip-NeRF 360's data term, eps = 1e-3)."""
  return jnp.sqrt(residual**2 + eps**2)


# Per-channel penalties of a residual (rendered - target), [..., 3] -> [..., 3].
DATA_PENALTIES = {
    'mse': lambda residual, eps: residual**2,  # The NeRF paper's (Eq. 6).
    'charbonnier': charbonnier,
}

# The data term's penalty (its weight, data_weight, is registered with the term below).
config_groups.register('loss', owner=__name__, settings=dict(
    data=Setting('mse', "Penalty of the colour residual: 'mse' (the NeRF paper's) or 'charbonnier' (mip-NeRF "
                 "360's).", one_of(DATA_PENALTIES)),
    charbonnier_eps=Setting(1e-3, "eps of the Charbonnier penalty sqrt(residual^2 + eps^2) (loss.data="
                            "'charbonnier'; mip-NeRF 360's 1e-3).", POSITIVE),
))


def _masked_mean(values, complete):
  """Mean of values [..., 3] over the rays whose `complete` [...] is True (all rays when it is None)."""
  if complete is None:
    return jnp.mean(values)
  mask = complete[..., None].astype(values.dtype)
  return jnp.sum(mask * values) / jnp.maximum(values.shape[-1] * jnp.sum(mask), 1.0)


# What a term can need of the renderer: renderers declare what they provide (their PROVIDES).
NEEDS = {
    'intervals': 'interval edges and weights per level (renderers that sample intervals: nerf, mipnerf, '
                 'proposal; packed samples have none)',
    'normals': "per-sample normals of the density (config.model.normals='density')",
    'predicted_normals': "per-sample predicted normals (config.model.appearance='refnerf' reflecting about them, "
                         "or config.model.predicted_normals=True)",
}


class LossTerm(NamedTuple):
  compute: Callable  # (history, batch, loss_config[, arrays of reads_params]) -> scalar, unweighted.
  needs: Union[FrozenSet[str], Callable]  # Keys of NEEDS, or loss_config -> keys (a term with options).
  default_weight: float  # Its weight where the config has no <name>_weight (the registered default).
  reads_params: Optional[str] = None  # The trained arrays it reads: a label of TrainState.trainable.

  def needs_for(self, loss_config) -> FrozenSet[str]:
    return frozenset(self.needs(loss_config)) if callable(self.needs) else self.needs


LOSS_TERMS: Dict[str, LossTerm] = {}


def register_loss_term(name: str, needs: Sequence[str] = (), default_weight: float = 0.0, *, meaning: str,
                       reads_params: Optional[str] = None):
  """Registers the decorated function (history, batch, loss_config) -> scalar as loss term `name`, weighted
  by config.loss.<name>_weight (default `default_weight`), needing `needs` (keys of NEEDS, or a function of
  the loss config that gives them, for a term whose options change what it reads). The weight's key is
  registered in group 'loss' (config_groups) with `meaning`: one line of what the term is and the paper's
  weight. With `reads_params` (a parameter group's name, or 'model'), the function takes that label's trained
  arrays as a fourth argument, and the term is computed only in runs that train them."""
  unknown = set() if callable(needs) else set(needs) - set(NEEDS)
  if unknown:
    raise ValueError(f'loss term {name!r} needs {sorted(unknown)}, which no renderer declares; known: '
                     f'{sorted(NEEDS)}.')

  def register(compute):
    config_groups.register('loss', owner=compute.__module__, settings={
        f'{name}_weight': Setting(default_weight, meaning, NON_NEGATIVE)})
    LOSS_TERMS[name] = LossTerm(compute, needs if callable(needs) else frozenset(needs), default_weight,
                                reads_params)
    return compute

  return register


def term_weights(loss_config) -> Dict[str, float]:
  """{name: weight} of the registered terms that `loss_config` weighs above zero."""
  weights = {name: float(loss_config.get(f'{name}_weight', term.default_weight))
             for name, term in LOSS_TERMS.items()}
  return {name: weight for name, weight in weights.items() if weight > 0}


def check_terms(loss_config, provides: FrozenSet[str], renderer: str):
  """Raises ConfigError, before anything compiles, for a term of non-zero weight that `renderer` (which
  provides `provides`, keys of NEEDS) cannot feed, and for an unknown data penalty."""
  if loss_config.data not in DATA_PENALTIES:
    raise ConfigError(f'config.loss.data must be one of {sorted(DATA_PENALTIES)}, got {loss_config.data!r}.')
  for name, weight in term_weights(loss_config).items():
    for need in sorted(LOSS_TERMS[name].needs_for(loss_config) - provides):
      raise ConfigError(f'config.loss.{name}_weight={weight:g} needs {NEEDS[need]}, which the {renderer} '
                        'renderer does not provide; set it to 0 or choose another config.model.name.')


@register_loss_term('data', default_weight=1.0, meaning="Weight of the whole data term (the paper's 1); "
                    'loss.coarse_weight scales its coarser levels.')
def data_term(history: Sequence, batch: Dict, loss_config):
  """The reconstruction term: the mean penalty (config.loss.data: 'mse', the NeRF paper's Eq. 6, or
  'charbonnier', mip-NeRF 360's, with `charbonnier_eps`) of each level's colours against batch['rgb'],
  summed over levels with weight `coarse_weight` on all but the finest (the NeRF paper sums coarse and fine).
  Rays marked incomplete are left out of their level's mean."""
  penalty = DATA_PENALTIES[loss_config.data]
  level_terms = [_masked_mean(penalty(r.rgb - batch['rgb'], loss_config.charbonnier_eps), r.complete)
                 for r in history if r.rgb is not None]
  return sum(loss_config.coarse_weight * term for term in level_terms[:-1]) + level_terms[-1]


config_groups.register('loss', owner=__name__, settings=dict(
    coarse_weight=Setting(1.0, 'Weight of every level but the finest in the data term (the paper sums them) '
                          'and in the orientation and predicted_normals terms.', NON_NEGATIVE),
))


def level_mses(history: Sequence, target):
  """The mean squared error of each level's colours, [levels with colour] (incomplete rays left out)."""
  return jnp.stack([_masked_mean((r.rgb - target)**2, r.complete) for r in history if r.rgb is not None])


@register_loss_term('interlevel', needs=('intervals',), meaning="mip-NeRF 360's proposal loss, which alone "
                    "trains the proposal levels (the paper's weight 1).")
def interlevel_term(history: Sequence, batch: Dict = None, loss_config=None):
  """mip-NeRF 360's proposal loss (Eq. 14), summed over the levels before the final one: each must bound
  the final level's weights (stepfun.interlevel_loss; gradients reach only the earlier levels)."""
  del batch, loss_config
  final = history[-1]
  return sum(stepfun.interlevel_loss(final.s_edges, final.w, r.s_edges, r.w) for r in history[:-1])


@register_loss_term('distortion', needs=('intervals',), meaning="mip-NeRF 360's distortion regulariser on "
                    "the final level (the paper's weight 0.01).")
def distortion_term(history: Sequence, batch: Dict = None, loss_config=None):
  """mip-NeRF 360's distortion regulariser (Eq. 15) of the final level, in normalised distance, mean over
  rays."""
  del batch, loss_config
  final = history[-1]
  return jnp.mean(stepfun.distortion_loss(final.s_edges, final.w))


def _over_levels(history: Sequence, key: str, loss_config, per_sample):
  """sum_i w_i per_sample(samples)_i, mean over rays, of each level whose samples hold `key`, summed with
  weight config.loss.coarse_weight on all but the last (multinerf's coarse multipliers for Ref-NeRF are a
  tenth of the fine ones, as mip-NeRF's coarse_weight). The weights w [..., N] are held constant: these
  terms shape the normals, not where the weight lies."""
  levels = [r for r in history if r.samples is not None and key in r.samples]
  terms = [jnp.mean(jnp.sum(jax.lax.stop_gradient(r.w) * per_sample(r.samples), axis=-1)) for r in levels]
  return sum(loss_config.coarse_weight * term for term in terms[:-1]) + terms[-1]


ORIENTATION_TARGETS = {'normals_pred': 'predicted_normals', 'normals': 'normals'}  # Sample key: its need.

config_groups.register('loss', owner=__name__, settings=dict(
    orientation_target=Setting('normals_pred', "The normals the orientation term penalises: 'normals_pred' (the "
                               "paper's) or 'normals' (the density's: multinerf's where Ref-NeRF reflects about "
                               "them, model.refnerf.reflect_about='density').", one_of(ORIENTATION_TARGETS)),
))


def _orientation_needs(loss_config):
  target = loss_config.get('orientation_target', 'normals_pred')
  if target not in ORIENTATION_TARGETS:
    raise ConfigError(f'config.loss.orientation_target must be one of {sorted(ORIENTATION_TARGETS)}, '
                      f'got {target!r}.')
  return (ORIENTATION_TARGETS[target],)


@register_loss_term('orientation', needs=_orientation_needs, meaning="Ref-NeRF's penalty on normals "
                    "(loss.orientation_target) facing away from the camera (the paper's weight 0.1).")
def orientation_term(history: Sequence, batch: Dict, loss_config):
  """Ref-NeRF's orientation loss (Eq. 10): sum_i w_i max(0, n_i . d)^2 with d the ray's view direction and n
  the normals named by config.loss.orientation_target: 'normals_pred', the predicted normals (the paper's,
  which reflect the view direction), or 'normals', the density's (multinerf's choice where the view
  direction is reflected about them). A normal facing away from the camera where the ray sees the surface
  is penalised. (Ref-NeRF's weight 0.1.)"""
  viewdirs = batch['rays'].viewdirs[..., None, :]
  key = loss_config.get('orientation_target', 'normals_pred')
  return _over_levels(history, key, loss_config, lambda samples: jnp.maximum(
      jnp.sum(samples[key] * viewdirs, axis=-1), 0.0)**2)


@register_loss_term('predicted_normals', needs=('normals', 'predicted_normals'), meaning="Ref-NeRF's tie of "
                    "the predicted normals to the density's (the paper's weight 3e-4).")
def predicted_normals_term(history: Sequence, batch: Dict, loss_config):
  """Ref-NeRF's predicted-normal loss (Eq. 11): sum_i w_i |n_i - n'_i|^2, tying the predicted normals n' to
  the density's normals n. Gradients reach both (the paper's), or with
  config.loss.predicted_normals_shape_density False only n' (the density's normals are themselves a
  gradient: shaping them takes second derivatives of the geometry, fields.FieldBase.NORMALS_AUTODIFF).
  (Ref-NeRF's weight 3e-4.)"""
  del batch
  to_density = loss_config.get('predicted_normals_shape_density', True)
  normals = lambda samples: samples['normals'] if to_density else jax.lax.stop_gradient(samples['normals'])
  return _over_levels(history, 'normals_pred', loss_config, lambda samples: jnp.sum(
      (normals(samples) - samples['normals_pred'])**2, axis=-1))


config_groups.register('loss', owner=__name__, settings=dict(
    predicted_normals_shape_density=Setting(True, "Whether the predicted-normal tie also shapes the density (the "
                                            "paper's), through second derivatives of the geometry "
                                            '(fields.FieldBase.NORMALS_AUTODIFF); False: it trains only the '
                                            'predicted normals.'),
))


def _weighed_term(name: str, history: Sequence, batch: Dict, loss_config, trained: Optional[Dict]):
  term = LOSS_TERMS[name]
  if term.reads_params is None:
    return term.compute(history, batch, loss_config)
  return term.compute(history, batch, loss_config, trained[term.reads_params])


def total_loss(history: Sequence, batch: Dict, loss_config, trained: Optional[Dict] = None
               ) -> Dict[str, jnp.ndarray]:
  """The registered terms that `loss_config` (config.loss) weighs above zero (the others are not computed),
  weighted, by name ('loss_data', 'loss_interlevel', ...), and their sum as 'loss'. `trained` is
  {label: arrays} of the run's trained arrays ('model', and each parameter group's): a term that reads a
  label it lacks is left out."""
  trained = trained or {}
  terms = {name: weight * _weighed_term(name, history, batch, loss_config, trained)
           for name, weight in term_weights(loss_config).items()
           if LOSS_TERMS[name].reads_params in (None, *trained)}
  return {'loss': sum(terms.values()), **{f'loss_{name}': value for name, value in terms.items()}}
