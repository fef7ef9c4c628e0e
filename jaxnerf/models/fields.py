"""Fields: networks that map points (and view directions) along rays to raw colour and raw density.

- `MLPField`: the NeRF paper's (Mildenhall et al. 2020, Fig. 7): positional encoding and an 8x256 MLP.
- `HashGridField`: instant-ngp's (Mueller et al. 2022): a multiresolution hash encoding of the point, a tiny
  density MLP, and a tiny colour MLP that also sees the encoded view direction.

Compute runs in `dtype` (bfloat16 for mixed precision); parameters, encodings, and everything after the
last layer stay float32.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import coord
from jaxnerf import encoding
from jaxnerf import hash_grid
from jaxnerf.errors import ConfigError


def _dense(units, dtype, name):
  return nn.Dense(units, dtype=dtype, param_dtype=jnp.float32, name=name)


class MLPField(nn.Module):
  """NeRF's field: positional encodings (Eq. 4), then a trunk of `depth` ReLU layers of `width` units; the
  output of trunk layer k * skip_every (counting from 0: the 5th layer with the paper's 4) is concatenated
  with the encoded point, so the next layer (the 6th) reads it again; density from the trunk; colour from a
  `width_view`-unit layer that also sees the encoded view direction."""

  point_min_deg: int = 0
  point_max_deg: int = 10
  view_min_deg: int = 0
  view_max_deg: int = 4
  depth: int = 8
  width: int = 256
  skip_every: int = 4
  width_view: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, points, viewdirs):
    """Raw outputs at points [..., 3] seen along unit viewdirs [..., 3] (one per point).

    Returns:
      raw_rgb: [..., 3] (pre-sigmoid); raw_density: [...] (pre-activation); both float32.
    """
    point_features = encoding.positional_encoding(points, self.point_min_deg, self.point_max_deg)
    view_features = encoding.positional_encoding(viewdirs, self.view_min_deg, self.view_max_deg)
    inputs = point_features.astype(self.dtype)
    x = inputs
    for i in range(self.depth):
      x = nn.relu(_dense(self.width, self.dtype, f'trunk_{i}')(x))
      if i > 0 and i % self.skip_every == 0:  # The paper's code, JaxNeRF and multinerf skip here.
        x = jnp.concatenate([x, inputs], axis=-1)
    raw_density = _dense(1, self.dtype, 'density')(x)[..., 0]
    bottleneck = _dense(self.width, self.dtype, 'bottleneck')(x)
    x = jnp.concatenate([bottleneck, view_features.astype(self.dtype)], axis=-1)
    x = nn.relu(_dense(self.width_view, self.dtype, 'view')(x))
    raw_rgb = _dense(3, self.dtype, 'rgb')(x)
    return raw_rgb.astype(jnp.float32), raw_density.astype(jnp.float32)


class HashGridField(nn.Module):
  """instant-ngp's field: hash-encoded point -> `density_width` hidden units -> raw density and
  `geo_features` features; those and the encoded view direction -> `color_depth` hidden layers of
  `color_width` units -> raw colour. Points are mapped from `scene_box` onto the unit cube.

  View directions are encoded with spherical harmonics of `sh_degree` bands (instant-ngp's choice) when
  `view_encoding` is 'sh', or positionally with `view_max_deg` octaves when it is 'positional'.
  """

  scene_box: Sequence[float] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)  # (x_min, y_min, z_min, x_max, ...).
  num_levels: int = 16
  features_per_level: int = 2
  log2_table_size: int = 15
  min_resolution: int = 16
  max_resolution: int = 512
  density_width: int = 64
  geo_features: int = 15
  color_depth: int = 2
  color_width: int = 64
  view_encoding: str = 'positional'
  view_max_deg: int = 4
  sh_degree: int = 4
  dtype: Any = jnp.float32

  def setup(self):
    if self.view_encoding not in ('sh', 'positional'):
      raise ConfigError("config.model.hash_grid.view_encoding must be 'sh' or 'positional', "
                        f'got {self.view_encoding!r}.')
    self.resolutions = hash_grid.level_resolutions(self.num_levels, self.min_resolution,
                                                   self.max_resolution)
    sizes = hash_grid.level_table_sizes(self.resolutions, 2**self.log2_table_size)
    # The paper initialises entries uniformly in [-1e-4, 1e-4].
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1e-4, 1e-4)
    self.tables = [self.param(f'table_{level}', init, (size, self.features_per_level))
                   for level, size in enumerate(sizes)]
    self.density_hidden = _dense(self.density_width, self.dtype, 'density_hidden')
    self.density_out = _dense(1 + self.geo_features, self.dtype, 'density_out')
    self.color_hidden = [_dense(self.color_width, self.dtype, f'color_hidden_{i}')
                         for i in range(self.color_depth)]
    self.color_out = _dense(3, self.dtype, 'color_out')

  def density(self, points):
    """Raw density [...] (float32) at points [..., 3], and the geometry features [..., geo_features] that
    the colour network reads."""
    unit_points = coord.to_unit_cube(points, self.scene_box)
    features = hash_grid.encode(unit_points, self.tables, self.resolutions).astype(self.dtype)
    x = self.density_out(nn.relu(self.density_hidden(features)))
    return x[..., 0].astype(jnp.float32), x[..., 1:]

  def __call__(self, points, viewdirs):
    """Raw outputs at points [..., 3] seen along unit viewdirs [..., 3]; as MLPField."""
    raw_density, geometry = self.density(points)
    if self.view_encoding == 'sh':
      view_features = encoding.spherical_harmonics(viewdirs, self.sh_degree)
    else:
      view_features = encoding.positional_encoding(viewdirs, 0, self.view_max_deg)
    x = jnp.concatenate([geometry, view_features.astype(self.dtype)], axis=-1)
    for layer in self.color_hidden:
      x = nn.relu(layer(x))
    return self.color_out(x).astype(jnp.float32), raw_density
