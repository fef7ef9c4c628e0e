"""Fields: networks from positions along rays (and view directions) to density and colour, on FieldBase
(field_base.py: the contract every field keeps, geometry apart from appearance).

- `MLPField`: the NeRF paper's (Mildenhall et al. 2020, Fig. 7): positional encoding and an 8x256 MLP; with
  `encoding='integrated'` it reads Gaussians through mip-NeRF's integrated encoding (Barron et al. 2021).
- `HashGridField`: instant-ngp's (Mueller et al. 2022): a multiresolution hash encoding of the point, a tiny
  density MLP, and a tiny colour MLP that also sees the encoded view direction.
"""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
# What every field shares, also found here (fields.FieldBase, fields.FieldOutputs, ...).
from jaxnerf.models.field_base import FieldBase
from jaxnerf.models.field_base import FieldOutputs  # noqa: F401  pylint: disable=unused-import
from jaxnerf.models.field_base import NORMALS  # noqa: F401  pylint: disable=unused-import
from jaxnerf.models.field_base import PredictedNormals  # noqa: F401  pylint: disable=unused-import
from jaxnerf.models.field_base import safe_normalize  # noqa: F401  pylint: disable=unused-import
from jaxnerf.models.field_base import warp_inputs
from jaxnerf.models.field_base import WARPS  # noqa: F401  pylint: disable=unused-import
from jaxnerf.models.field_base import with_condition
from jaxnerf.models.layers import LAYER_KINDS
from jaxnerf.ops import coord
from jaxnerf.ops import encoding
from jaxnerf.ops import hash_grid
from jaxnerf.ops import quantization
from jaxnerf.ops.ray_samples import Gaussians
from jaxnerf import values

TABLE_BITS = (0, 4, 8)  # HashGridField.table_bits: float32, or integers of 4 or 8 bits.

# The settings of a field's layers (layers.py), which every field's group holds (the proposal fields' groups
# their own `layers`).
LAYERS_RULE = values.one_of(LAYER_KINDS, ordered=True)
ACTIVATION_BITS_RULE = (lambda v: values.is_positive_int(v) and 2 <= v <= 8, 'an integer in [2, 8]')
LAYER_SETTINGS = dict(
    layers=Setting('dense', "The field's dense layers: 'dense' (full precision) or 'ternary' (BitNet b1.58's "
                   'quantisation-aware layers: RMSNorm, absmax activations, ternary weights), except those '
                   'full_precision_layers names.', LAYERS_RULE),
    full_precision_layers=Setting(('input', 'output'), "layers='ternary': layers kept in full precision, by role "
                                  "('input', 'hidden', 'output') or by name (e.g. 'trunk_5')."),
    activation_bits=Setting(8, "layers='ternary': bits of the ternary layers' absmax-quantised activations.",
                            ACTIVATION_BITS_RULE),
)

config_groups.register('model.mlp', owner=__name__, settings=dict(
    point_min_deg=Setting(0, 'Positional encoding of points: the lowest octave (frequencies 2^k for k from '
                          'point_min_deg up to point_max_deg, excluded).'),
    point_max_deg=Setting(10, 'Positional encoding of points: one past the highest octave.'),
    view_min_deg=Setting(0, 'Positional encoding of view directions: the lowest octave.'),
    view_max_deg=Setting(4, 'Positional encoding of view directions: one past the highest octave.'),
    depth=Setting(8, 'Layers of the trunk that gives density and features.'),
    width=Setting(256, 'Units of each trunk layer.'),
    skip_every=Setting(4, 'The encoded position is concatenated to the output of every skip_every-th trunk '
                       "layer, counting from 0 (the paper's 4: the 6th layer reads it again)."),
    width_view=Setting(128, 'Units of the view-dependent colour layer.'),
    encoding=Setting('positional', "'positional' (NeRF's encoding of points; of Gaussians, their means) or "
                     "'integrated' (mip-NeRF's integrated positional encoding of Gaussians).",
                     values.one_of(('positional', 'integrated'), ordered=True)),
    use_viewdirs=Setting(True, 'False: colour from the trunk alone, with no view direction (the tiny_nerf '
                         "notebook's model).", values.BOOL),
    **LAYER_SETTINGS,
), small=dict(depth=2, width=32, width_view=16, point_max_deg=6))


class MLPField(FieldBase):
  """NeRF's field: encoded positions, then a trunk of `depth` ReLU layers of `width` units; the output of
  trunk layer k * skip_every (counting from 0: the 5th layer with the paper's 4) is concatenated with the
  encoded position, so the next layer (the 6th) reads it again; density from the trunk; colour from a
  `width_view`-unit layer that also sees the encoded view direction.

  `encoding` 'positional' (NeRF, Eq. 4; of Gaussians, their means) or 'integrated' (mip-NeRF's IPE, Eq. 14;
  points count as Gaussians of zero extent). mip-NeRF 360's proposal MLP is this field, narrower, asked
  only for density.
  """

  point_min_deg: int = 0
  point_max_deg: int = 10
  view_min_deg: int = 0
  view_max_deg: int = 4
  depth: int = 8
  width: int = 256
  skip_every: int = 4
  width_view: int = 128
  encoding: str = 'positional'
  # False: colour from the trunk's features alone, with no view direction (the tiny_nerf notebook's model;
  # JaxNeRF's use_viewdirs=False): no bottleneck or view layer.
  use_viewdirs: bool = True
  REMATS = True

  def setup(self):
    if self.encoding not in ('positional', 'integrated'):
      raise ConfigError("config.model.mlp.encoding must be 'positional' or 'integrated', "
                        f'got {self.encoding!r}.')
    view_layers = [('bottleneck', self.width, 'hidden'), ('view', self.width_view, 'hidden')]
    layers = self._make_layers([(f'trunk_{i}', self.width, 'input' if i == 0 else 'hidden')
                                 for i in range(self.depth)] +
                               [('density', 1, 'output')] + (view_layers if self.use_viewdirs else []) +
                               [('rgb', 3, 'output')])
    self.trunk = [layers[f'trunk_{i}'] for i in range(self.depth)]
    self.density_out, self.rgb_out = layers['density'], layers['rgb']
    if self.use_viewdirs:
      self.bottleneck, self.view_hidden = layers['bottleneck'], layers['view']

  def _encode(self, inputs, progress=1.0):
    inputs = warp_inputs(inputs, self.warp, self.contract_radius)
    window = self.encoding_window(progress, self.point_max_deg - self.point_min_deg)
    if self.encoding == 'integrated':
      if not isinstance(inputs, Gaussians):
        inputs = Gaussians(inputs, jnp.zeros_like(inputs))
      return encoding.windowed_features(encoding.integrated_positional_encoding(
          inputs.mean, inputs.cov_diag, self.point_min_deg, self.point_max_deg), window, 3, include_input=False)
    points = inputs.mean if isinstance(inputs, Gaussians) else inputs
    return encoding.windowed_features(encoding.positional_encoding(points, self.point_min_deg, self.point_max_deg),
                                      window, 3)

  def geometry(self, inputs, progress=1.0):
    """Raw density [...] and the trunk's features [..., width] at points [..., 3] or Gaussians, with the
    encoding's octaves weighted for training progress `progress` (FieldBase.encoding_window)."""
    encoded = self._encode(inputs, progress).astype(self.dtype)
    # Remat keeps only `encoded` for the backward pass, which runs the trunk again: per sample 63 numbers
    # instead of about depth x width (the layers' inputs and ReLU masks).
    x = self._trunk_in_chunks(encoded) if self.remat else MLPField._trunk(self, encoded)
    return self.density_out(x)[..., 0], x

  def _trunk(self, encoded):
    """The trunk's features [..., width] from the encoded input [..., E]."""
    x = encoded
    for i, layer in enumerate(self.trunk):
      x = nn.relu(layer(x))
      if i > 0 and i % self.skip_every == 0:  # The paper's code, JaxNeRF and multinerf skip here.
        x = jnp.concatenate([x, encoded], axis=-1)
    return x

  def _trunk_in_chunks(self, encoded):
    """`_trunk` in a loop over chunks of about REMAT_CHUNK samples whose body is rematerialised: the backward
    pass keeps only the encoded inputs and recomputes one chunk's activations at a time. (A remat of the
    whole trunk saves nothing on XLA's CPU backend, which merges the recomputation back into the forward
    pass, and little elsewhere: the recomputed trunk holds all its activations at once.)

    Samples [..., S, E] of rays are chunked along S (k samples of every ray a chunk, k dividing S), so that
    the rays keep their split over devices; flat samples [M, E] in consecutive chunks, the last one padded.
    """
    body = nn.remat(lambda module, carry, x: (carry, MLPField._trunk(module, x)))
    if encoded.ndim >= 3:
      *rays, num_samples, _ = encoded.shape
      per_chunk = max(1, min(num_samples, self.REMAT_CHUNK // max(1, math.prod(rays))))
      k = max(d for d in range(1, per_chunk + 1) if num_samples % d == 0)
      chunks = jnp.moveaxis(encoded.reshape(*rays, num_samples // k, k, -1), -3, 0)  # [S / k, ..., k, E]
    else:
      num_samples = encoded.shape[0]
      k = min(self.REMAT_CHUNK, num_samples)
      padded = jnp.pad(encoded, ((0, -num_samples % k), (0, 0)))
      chunks = padded.reshape(-1, k, encoded.shape[-1])
    scan = nn.scan(body, variable_broadcast='params', split_rngs={'params': False}, length=chunks.shape[0])
    _, features = scan(self, None, chunks)
    if encoded.ndim >= 3:
      return jnp.moveaxis(features, 0, -3).reshape(*encoded.shape[:-1], -1)
    return features.reshape(-1, features.shape[-1])[:num_samples]

  def color(self, features, viewdirs, condition=None):
    """Raw colour [..., 3] from the trunk's features (through a bottleneck), encoded unit viewdirs and the
    condition [..., D] (or None), or from the features (and the condition) alone where the field does not
    use view directions."""
    if not self.use_viewdirs:
      return self.rgb_out(with_condition(features, condition))
    view_features = encoding.positional_encoding(viewdirs, self.view_min_deg, self.view_max_deg)
    x = jnp.concatenate([self.bottleneck(features), view_features.astype(self.dtype)], axis=-1)
    return self.rgb_out(nn.relu(self.view_hidden(with_condition(x, condition))))


config_groups.register('model.hash_grid', owner=__name__, settings=dict(
    num_levels=Setting(16, 'Levels of the multiresolution hash encoding.'),
    features_per_level=Setting(2, 'Features of each table entry.'),
    log2_table_size=Setting(19, 'Each level has a table of up to 2^log2_table_size entries (fewer where its grid '
                            'has fewer vertices).'),
    min_resolution=Setting(16, 'Cells per side of the coarsest level.'),
    max_resolution=Setting(2048, 'Cells per side of the finest level (levels grow geometrically in between).'),
    density_width=Setting(64, 'Units of the hidden layer of the density MLP.'),
    geo_features=Setting(15, 'Geometry features the density MLP outputs beside the density, read by the colour '
                         'MLP.'),
    hidden_features=Setting(False, "True: the colour network (or Ref-NeRF's heads) also reads the density MLP's "
                            'hidden layer (density_width units) beside the geo_features: a wide geometry feature '
                            'instead of a narrow one.', values.BOOL),
    color_depth=Setting(2, 'Hidden layers of the colour MLP (0: no colour network, density only).'),
    color_width=Setting(64, 'Units of each hidden layer of the colour MLP.'),
    view_encoding=Setting('positional', "Encoding of view directions: 'positional' (view_max_deg octaves) or "
                          "'sh' (spherical harmonics of sh_degree bands, instant-ngp's).",
                          values.one_of(('positional', 'sh'), ordered=True)),
    view_max_deg=Setting(4, "view_encoding='positional': one past the highest octave of view directions."),
    sh_degree=Setting(4, "view_encoding='sh': bands of spherical harmonics (instant-ngp's 4: 16 numbers)."),
    **LAYER_SETTINGS,
    table_bits=Setting(0, 'The tables: 0 (float32), or 8 or 4 bits per entry with a scale per level, trained '
                       'through the straight-through estimator (export.py --format=packed stores the integers).',
                       values.one_of(TABLE_BITS, ordered=True)),
), small=dict(num_levels=4, log2_table_size=12, min_resolution=4, max_resolution=64, density_width=16,
              geo_features=7, color_depth=1, color_width=32, view_max_deg=2))


class HashGridField(FieldBase):
  """instant-ngp's field: hash-encoded point -> `density_width` hidden units -> raw density and
  `geo_features` features; those and the encoded view direction -> `color_depth` hidden layers of
  `color_width` units -> raw colour.

  The grid covers `scene_box`: with warp 'none' points are mapped from it onto the unit cube; with warp
  'contract' all of space is contracted into the ball of radius 2 * contract_radius, and the grid covers
  that ball's cube (scene_box is then unused). View directions are encoded with spherical harmonics of
  `sh_degree` bands (instant-ngp's choice) when `view_encoding` is 'sh', or positionally with
  `view_max_deg` octaves when it is 'positional'. With `color_depth` 0 the field has no colour network
  (nerfacto's proposal grids: density only).
  """

  scene_box: Sequence[float] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)  # (x_min, y_min, z_min, x_max, ...).
  num_levels: int = 16
  features_per_level: int = 2
  log2_table_size: int = 19
  min_resolution: int = 16
  max_resolution: int = 2048
  density_width: int = 64
  geo_features: int = 15
  # True: the features the colour reads are the density MLP's hidden layer [..., density_width] and its
  # geo_features outputs, concatenated; False: the outputs alone (instant-ngp's). Ref-NeRF's heads (diffuse,
  # tint, roughness, normal, bottleneck) are single dense layers of these, so their rank is bounded by it.
  hidden_features: bool = False
  color_depth: int = 2
  color_width: int = 64
  view_encoding: str = 'positional'
  view_max_deg: int = 4
  sh_degree: int = 4
  density_activation: str = 'trunc_exp'  # instant-ngp's (the base's default is NeRF's relu).
  # 0: float32 tables; 4 or 8: each level's table is used as `table_bits`-bit integers times a scale
  # (quantization.absmax_table), trained through the straight-through estimator into float32 master tables;
  # an exported model holds the integers ('table_<level>_int') and scales ('table_<level>_scale') instead.
  table_bits: int = 0
  NORMALS_AUTODIFF = 'forward'  # See FieldBase.
  COVERS_BOX = True

  def setup(self):
    if self.view_encoding not in ('sh', 'positional'):
      raise ConfigError("config.model.hash_grid.view_encoding must be 'sh' or 'positional', "
                        f'got {self.view_encoding!r}.')
    self.resolutions = hash_grid.level_resolutions(self.num_levels, self.min_resolution,
                                                   self.max_resolution)
    sizes = hash_grid.level_table_sizes(self.resolutions, 2**self.log2_table_size)
    if self.table_bits not in TABLE_BITS:
      raise ConfigError(f'config.model.hash_grid.table_bits must be one of {list(TABLE_BITS)}, got '
                        f'{self.table_bits!r}.')
    self.tables = [self._table(level, size) for level, size in enumerate(sizes)]
    # The colour network reads the density head's features (and the view direction): its first layer is
    # a hidden one.
    layers = self._make_layers([('density_hidden', self.density_width, 'input'),
                                 ('density_out', 1 + self.geo_features, 'output')] +
                          [(f'color_hidden_{i}', self.color_width, 'hidden') for i in range(self.color_depth)] +
                          [('color_out', 3, 'output')])
    self.density_hidden, self.density_out = layers['density_hidden'], layers['density_out']
    self.color_hidden = [layers[f'color_hidden_{i}'] for i in range(self.color_depth)]
    self.color_out = layers['color_out']

  def _table(self, level: int, size: int):
    """Level `level`'s table [size, features_per_level] as the field uses it (see `table_bits`)."""
    if self.table_bits and self.has_variable('params', f'table_{level}_int'):  # An exported model.
      q = self.get_variable('params', f'table_{level}_int').astype(jnp.float32)
      return q * self.get_variable('params', f'table_{level}_scale')
    # The paper initialises entries uniformly in [-1e-4, 1e-4].
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1e-4, 1e-4)
    table = self.param(f'table_{level}', init, (size, self.features_per_level))
    if not self.table_bits:
      return table
    q, table_scale = quantization.absmax_table(table, self.table_bits)
    return quantization.straight_through(table, q * table_scale)

  def _grid_box(self):
    if self.warp == 'contract':
      return (-2.0 * self.contract_radius,) * 3 + (2.0 * self.contract_radius,) * 3
    return self.scene_box

  def geometry(self, inputs, progress=1.0):
    """Raw density [...] at points [..., 3] (or Gaussians: at their means), and the geometry features
    [..., geo_features] that the colour network reads (with `hidden_features`, the hidden layer's before them,
    [..., density_width + geo_features]); the levels beyond the coarsest weighted for training
    progress `progress` (FieldBase.encoding_window: BARF's annealing, as levels instead of octaves)."""
    points = inputs.mean if isinstance(inputs, Gaussians) else inputs
    unit_points = coord.to_unit_cube(warp_inputs(points, self.warp, self.contract_radius), self._grid_box())
    features = hash_grid.encode(unit_points, self.tables, self.resolutions)
    if self.encoding_annealing[1] > self.encoding_annealing[0]:
      window = jnp.concatenate([jnp.ones((1,)), self.encoding_window(progress, self.num_levels - 1)])
      features = features * jnp.repeat(window, self.features_per_level).astype(features.dtype)
    hidden = nn.relu(self.density_hidden(features.astype(self.dtype)))
    x = self.density_out(hidden)
    if self.hidden_features:
      return x[..., 0], jnp.concatenate([hidden, x[..., 1:]], axis=-1)
    return x[..., 0], x[..., 1:]

  def color(self, features, viewdirs, condition=None):
    """Raw colour [..., 3] from the geometry features, the encoded unit viewdirs and the condition [..., D]
    (or None)."""
    if self.color_depth == 0:
      raise ConfigError('A hash grid with color_depth=0 has no colour network: only its density can be asked.')
    if self.view_encoding == 'sh':
      view_features = encoding.spherical_harmonics(viewdirs, self.sh_degree)
    else:
      view_features = encoding.positional_encoding(viewdirs, 0, self.view_max_deg)
    x = with_condition(jnp.concatenate([features, view_features.astype(self.dtype)], axis=-1), condition)
    for layer in self.color_hidden:
      x = nn.relu(layer(x))
    return self.color_out(x)
