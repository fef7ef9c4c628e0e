"""Flax models: fields and the renderers that sample and composite them, found by name.

They wire the pure functions of encoding.py, hash_grid.py, sampling.py, marching.py and rendering.py:
- activations.py: density activations;
- fields.py: networks from points (and view directions) to raw colour and density (`FIELDS`);
- renderers.py: sampling, field calls and compositing along rays, and the update of a renderer's
  non-trained state (`RENDERERS`).
`make_model(config.model, scene_box)` builds the renderer a config names.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxnerf.errors import ConfigError
from jaxnerf.models.activations import DENSITY_ACTIVATIONS
from jaxnerf.models.activations import density_activation
from jaxnerf.models.activations import trunc_exp
from jaxnerf.models.fields import HashGridField
from jaxnerf.models.fields import MLPField
from jaxnerf.models.renderers import NeRF
from jaxnerf.models.renderers import OccupancyGridNeRF

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
FIELDS = {'mlp': MLPField, 'hash_grid': HashGridField}


def _occupancy_grid(model_config, make_field, scene_box) -> nn.Module:
  if model_config.field != 'hash_grid':
    raise ConfigError("config.model.name=occupancy_grid needs config.model.field='hash_grid': it measures "
                      'density on its own, which only the hash grid exposes.')
  return OccupancyGridNeRF(field=make_field(), scene_box=scene_box,
                           density_activation=model_config.density_activation,
                           rgb_padding=model_config.rgb_padding, **model_config.occupancy_grid)


def _nerf(model_config, make_field, scene_box) -> nn.Module:
  return NeRF(
      coarse_field=make_field(),
      fine_field=make_field() if model_config.num_fine_samples > 0 else None,
      num_coarse_samples=model_config.num_coarse_samples,
      num_fine_samples=model_config.num_fine_samples,
      lindisp=model_config.lindisp,
      scene_box=scene_box,
      density_activation=model_config.density_activation,
      density_noise_std=model_config.density_noise_std,
      rgb_padding=model_config.rgb_padding)


# config.model.name -> (model_config, make_field, scene_box) -> renderer.
RENDERERS = {'nerf': _nerf, 'occupancy_grid': _occupancy_grid}


def make_model(model_config, scene_box: Sequence[float] = ()) -> nn.Module:
  """Builds the renderer that `model_config` (config.model) describes, for a scene inside `scene_box`
  ((x_min, y_min, z_min, x_max, y_max, z_max); empty for unbounded sampling between near and far).

  config.model.name picks the renderer in RENDERERS: 'nerf' (coarse-to-fine, `NeRF`) or 'occupancy_grid'
  (instant-ngp's marching, `OccupancyGridNeRF`, with its settings in config.model.occupancy_grid);
  config.model.field picks its field in FIELDS, with its settings in config.model.<field>.
  """
  if model_config.name not in RENDERERS:
    raise ConfigError(f'config.model.name: unknown model {model_config.name!r}; expected one of '
                      f'{sorted(RENDERERS)}.')
  if model_config.dtype not in DTYPES:
    raise ConfigError(f'config.model.dtype must be one of {sorted(DTYPES)}, got {model_config.dtype!r}.')
  if model_config.field not in FIELDS:
    raise ConfigError(f'config.model.field must be one of {sorted(FIELDS)}, got {model_config.field!r}.')
  density_activation(model_config.density_activation)
  scene_box = tuple(float(v) for v in scene_box) or None
  if scene_box is not None and len(scene_box) != 6:
    raise ConfigError(f'config.scene_box must hold 6 numbers (min x, y, z, then max x, y, z), got {scene_box}.')
  if model_config.field == 'hash_grid' and scene_box is None:
    raise ConfigError('config.model.field=hash_grid needs config.scene_box: the hash grid covers that box.')
  field_kwargs = dict(model_config[model_config.field], dtype=DTYPES[model_config.dtype])
  if model_config.field == 'hash_grid':
    field_kwargs['scene_box'] = scene_box
  make_field = lambda: FIELDS[model_config.field](**field_kwargs)
  return RENDERERS[model_config.name](model_config, make_field, scene_box)
