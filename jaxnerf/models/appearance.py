"""Appearance modules: what a field's colour is made of, from its geometry features and the view direction.

A field with an `appearance` module (fields.FieldBase.appearance) hands it the geometry features [..., F]
and unit view directions [..., 3]; the module returns the linear colour [..., 3] and its other per-sample
outputs by name, which the renderers keep in the ray history and composite per ray. The same module works
over any geometry (the NeRF MLP's trunk, the hash grid's features).

- `RefNeRFAppearance`: Ref-NeRF's (Verbin et al. 2022, Sec. 4, Fig. 3): the colour is a diffuse colour plus
  a specular tint times a specular colour, and the specular colour is a function of the view direction
  reflected about a normal (a predicted one, the paper's, or the density's, which the field passes),
  encoded by the integrated directional encoding of a predicted roughness
  (encoding.integrated_directional_encoding), and of n . w_o.
"""

import math
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
from jaxnerf.models.fields import safe_normalize
from jaxnerf.ops import encoding
from jaxnerf import values


REFLECT_ABOUT = ('predicted', 'density')


class RefNeRFAppearance(nn.Module):
  """Ref-NeRF's appearance. From the geometry features: a diffuse colour (sigmoid, biased by -log 3 so that
  it starts dark), a specular tint (sigmoid), a roughness (softplus, biased by `roughness_bias`), a
  predicted normal (normalised; only when `reflect_about` is 'predicted') and a `bottleneck_width`
  bottleneck; then a directional MLP of `depth` x `width` ReLU layers (the bottleneck and its input again
  after every `skip_every`-th layer) reads the bottleneck, the IDE of the reflected direction with
  `ide_levels` degrees, and n . w_o, and gives the specular colour (sigmoid). Linear colour = diffuse + tint *
  specular (before the field's tone mapping).

  A condition [..., D] (the field's per-image conditioning, models/conditioning.py) is read by the diffuse
  head and by the directional MLP (multinerf feeds its per-image vectors to the latter), so that a
  per-image change of colour can reach the diffuse colour as well as the specular one.

  Called as (features [..., F], unit viewdirs [..., 3], density normals [..., 3] or None, condition
  [..., D] or None); returns
  (linear rgb [..., 3], {'normals_pred' [..., 3] (when predicted), 'roughness' [..., 1], 'diffuse' [..., 3],
  'tint' [..., 3], 'specular' [..., 3]: tint x specular colour, what the reflection adds}).
  """

  bottleneck_width: int = 128
  depth: int = 8
  width: int = 256
  skip_every: int = 4
  ide_levels: int = 5
  roughness_bias: float = -1.0
  # Which normals the view direction is reflected about: 'predicted' (the paper's n', from this module's
  # head) or 'density' (the density's normals, which the field passes; multinerf's enable_pred_normals=False:
  # the colour loss then shapes the geometry through them).
  reflect_about: str = 'predicted'
  dtype: Any = jnp.float32

  def provides(self) -> set:
    """What it adds to the ray history for loss terms (losses.NEEDS): its predicted normals, where it reflects
    about them."""
    return {'predicted_normals'} if self.reflect_about == 'predicted' else set()

  def setup(self):
    dense = lambda features, name: nn.Dense(features, dtype=self.dtype, param_dtype=jnp.float32, name=name)
    self.diffuse_out, self.tint_out = dense(3, 'diffuse'), dense(3, 'tint')
    self.roughness_out = dense(1, 'roughness')
    if self.reflect_about not in REFLECT_ABOUT:
      raise ConfigError(f'config.model.refnerf.reflect_about must be one of {list(REFLECT_ABOUT)}, '
                        f'got {self.reflect_about!r}.')
    if self.reflect_about == 'predicted':
      self.normals_out = dense(3, 'normals_pred')
    self.bottleneck = dense(self.bottleneck_width, 'bottleneck')
    self.directional = [dense(self.width, f'directional_{i}') for i in range(self.depth)]
    self.specular_out = dense(3, 'specular')

  def __call__(self, features, viewdirs, density_normals=None, condition=None):
    as_float = lambda x: x.astype(jnp.float32)
    with_condition = lambda x: x if condition is None else jnp.concatenate([x, condition.astype(x.dtype)], -1)
    diffuse = nn.sigmoid(as_float(self.diffuse_out(with_condition(features))) - math.log(3.0))
    tint = nn.sigmoid(as_float(self.tint_out(features)))
    roughness = nn.softplus(as_float(self.roughness_out(features)) + self.roughness_bias)
    extras = {}
    if self.reflect_about == 'predicted':
      normals = extras['normals_pred'] = safe_normalize(as_float(self.normals_out(features)))
    elif density_normals is None:
      raise ConfigError("config.model.refnerf.reflect_about='density' needs the density's normals: set "
                        "config.model.normals='density'.")
    else:
      normals = density_normals
    reflected = encoding.reflect(viewdirs, normals)
    n_dot_v = jnp.sum(-viewdirs * normals, axis=-1, keepdims=True)
    inputs = with_condition(jnp.concatenate(
        [self.bottleneck(features).astype(jnp.float32),
         encoding.integrated_directional_encoding(reflected, roughness, self.ide_levels), n_dot_v],
        axis=-1).astype(self.dtype))
    x = inputs
    for i, layer in enumerate(self.directional):
      x = nn.relu(layer(x))
      if i > 0 and i % self.skip_every == 0 and i + 1 < self.depth:
        x = jnp.concatenate([x, inputs], axis=-1)
    specular = tint * nn.sigmoid(as_float(self.specular_out(x)))
    extras.update(roughness=roughness, diffuse=diffuse, tint=tint, specular=specular)
    return diffuse + specular, extras


APPEARANCES = {'nerf': None, 'refnerf': RefNeRFAppearance}  # 'nerf': the field's own colour network.


def _check_reflect_about(config) -> Optional[str]:
  """Ref-NeRF reflecting about the density's normals needs the fields to compute them."""
  if (config.model.get('appearance') == 'refnerf' and config.model.refnerf.get('reflect_about') == 'density'
      and config.model.normals != 'density'):
    return ("config.model.refnerf.reflect_about='density' reflects the view direction about the density's "
            f"normals, which config.model.normals={config.model.normals!r} does not compute: set "
            "config.model.normals='density'.")
  return None


config_groups.register('model', owner=__name__, settings=dict(
    appearance=Setting('nerf', "The colour model over the geometry (APPEARANCES): 'nerf' (the field's own "
                       "view-dependent colour network) or 'refnerf' (Ref-NeRF's, configured by model.refnerf).",
                       values.one_of(APPEARANCES)),
), checks=(_check_reflect_about,))

# appearance='refnerf': RefNeRFAppearance's settings.
config_groups.register('model.refnerf', owner=__name__, settings=dict(
    bottleneck_width=Setting(128, 'Units of the bottleneck of the geometry features that the directional MLP '
                             'reads.'),
    depth=Setting(8, 'Layers of the directional MLP that gives the specular colour.'),
    width=Setting(256, 'Units of each layer of the directional MLP.'),
    skip_every=Setting(4, "The directional MLP's input is concatenated again after every skip_every-th layer."),
    ide_levels=Setting(5, 'Levels of the integrated directional encoding of the reflected view direction '
                       "(degrees 1, 2, 4, ..., 2^(levels-1): 67 numbers for the paper's 5)."),
    roughness_bias=Setting(-1.0, 'Added to the raw roughness before its softplus (the default -1 starts with a '
                           'low roughness).'),
    reflect_about=Setting('predicted', "The normals the view direction is reflected about: 'predicted' (the "
                          "paper's n') or 'density' (multinerf's enable_pred_normals=False; needs "
                          "model.normals='density').", values.one_of(REFLECT_ABOUT, ordered=True)),
), small=dict(bottleneck_width=8, depth=2, width=16, ide_levels=3))
