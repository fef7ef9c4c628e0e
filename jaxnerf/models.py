"""Flax models. They wire the pure functions of encoding.py, hash_grid.py, sampling.py and rendering.py.

A *field* maps points and view directions along rays to raw colour and raw density:
- `MLPField`: the NeRF paper's (Mildenhall et al. 2020, Fig. 7): positional encoding and an 8x256 MLP.
- `HashGridField`: instant-ngp's (Mueller et al. 2022): a multiresolution hash encoding of the point, a tiny
  density MLP, and a tiny colour MLP that also sees the encoded view direction.
`NeRF` renders rays coarse-to-fine with one field per level: stratified samples for the coarse level, then
samples drawn from the coarse weights for the fine level (paper, Sec. 5.2).

Compute runs in `dtype` (bfloat16 for mixed precision); parameters, encodings, and everything after the
last layer stay float32.
"""

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import camera
from jaxnerf import encoding
from jaxnerf import hash_grid
from jaxnerf import rendering
from jaxnerf import sampling
from jaxnerf.camera import Rays
from jaxnerf.errors import ConfigError


@jax.custom_jvp
def trunc_exp(x):
  """exp(x), with its gradient computed from exp(min(x, 15)) so that it cannot overflow (instant-ngp)."""
  return jnp.exp(x)


@trunc_exp.defjvp
def _trunc_exp_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  return jnp.exp(x), jnp.exp(jnp.minimum(x, 15.0)) * dx


DENSITY_ACTIVATIONS = {
    'relu': nn.relu,  # The paper's.
    'softplus': lambda x: nn.softplus(x - 1.0),  # mip-NeRF's shifted softplus: smooth, starts near zero.
    'trunc_exp': trunc_exp,  # instant-ngp's.
}


def _dense(units, dtype, name):
  return nn.Dense(units, dtype=dtype, param_dtype=jnp.float32, name=name)


class MLPField(nn.Module):
  """NeRF's field: positional encodings (Eq. 4), then a trunk of `depth` ReLU layers of `width` units that
  re-reads the encoded point after every `skip_every` layers; density from the trunk; colour from a
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
    """Raw outputs at points [..., S, 3] seen along viewdirs [..., 3].

    Returns:
      raw_rgb: [..., S, 3] (pre-sigmoid); raw_density: [..., S] (pre-activation); both float32.
    """
    point_features = encoding.positional_encoding(points, self.point_min_deg, self.point_max_deg)
    view_features = encoding.positional_encoding(viewdirs, self.view_min_deg, self.view_max_deg)
    inputs = point_features.astype(self.dtype)
    x = inputs
    for i in range(self.depth):
      if i > 0 and i % self.skip_every == 0:
        x = jnp.concatenate([x, inputs], axis=-1)
      x = nn.relu(_dense(self.width, self.dtype, f'trunk_{i}')(x))
    raw_density = _dense(1, self.dtype, 'density')(x)[..., 0]
    bottleneck = _dense(self.width, self.dtype, 'bottleneck')(x)
    view_features = jnp.broadcast_to(view_features[..., None, :],
                                     bottleneck.shape[:-1] + view_features.shape[-1:])
    x = jnp.concatenate([bottleneck, view_features.astype(self.dtype)], axis=-1)
    x = nn.relu(_dense(self.width_view, self.dtype, 'view')(x))
    raw_rgb = _dense(3, self.dtype, 'rgb')(x)
    return raw_rgb.astype(jnp.float32), raw_density.astype(jnp.float32)


class HashGridField(nn.Module):
  """instant-ngp's field: hash-encoded point -> `density_width` hidden units -> raw density and
  `geo_features` features; those and the encoded view direction -> `color_depth` hidden layers of
  `color_width` units -> raw colour. Points are mapped from `scene_box` onto the unit cube."""

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
  view_max_deg: int = 4
  dtype: Any = jnp.float32

  def setup(self):
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

  def __call__(self, points, viewdirs):
    """Raw outputs at points [..., S, 3] seen along viewdirs [..., 3]; as MLPField."""
    box = jnp.asarray(self.scene_box, jnp.float32)
    unit_points = (points - box[:3]) / (box[3:] - box[:3])
    features = hash_grid.encode(unit_points, self.tables, self.resolutions).astype(self.dtype)
    x = self.density_out(nn.relu(self.density_hidden(features)))
    raw_density, geometry = x[..., 0], x[..., 1:]
    view_features = encoding.positional_encoding(viewdirs, 0, self.view_max_deg)
    view_features = jnp.broadcast_to(view_features[..., None, :],
                                     geometry.shape[:-1] + view_features.shape[-1:])
    x = jnp.concatenate([geometry, view_features.astype(self.dtype)], axis=-1)
    for layer in self.color_hidden:
      x = nn.relu(layer(x))
    return self.color_out(x).astype(jnp.float32), raw_density.astype(jnp.float32)


class NeRF(nn.Module):
  """Coarse-to-fine NeRF over two fields. Calling it renders a batch of rays once per level."""

  coarse_field: nn.Module
  fine_field: Optional[nn.Module] = None
  num_coarse_samples: int = 64
  num_fine_samples: int = 128
  lindisp: bool = False
  scene_box: Optional[Sequence[float]] = None  # If set, sample only inside it; density outside is zero.
  density_activation: str = 'relu'
  density_noise_std: float = 0.0
  rgb_padding: float = 0.0  # mip-NeRF's widened sigmoid, which keeps colour gradients alive near 0 and 1.

  def _render_samples(self, field, rng, rays: Rays, t, far, background):
    points = rays.origins[..., None, :] + t[..., None] * rays.directions[..., None, :]
    raw_rgb, raw_density = field(points, rays.viewdirs)
    if rng is not None and self.density_noise_std > 0:
      raw_density += self.density_noise_std * jax.random.normal(rng, raw_density.shape)
    density = DENSITY_ACTIVATIONS[self.density_activation](raw_density)
    if self.scene_box is not None:
      box = jnp.asarray(self.scene_box, jnp.float32)
      density = jnp.where(jnp.all((points >= box[:3]) & (points <= box[3:]), axis=-1), density, 0.0)
    rgb = nn.sigmoid(raw_rgb) * (1 + 2 * self.rgb_padding) - self.rgb_padding
    # Inside a box the ray ends at its exit: the last sample's interval reaches it, not the paper's 1e10,
    # which would make the last sample opaque and hide the background behind haze.
    far_delta = rendering.FAR_DELTA if self.scene_box is None else far - t[..., -1:]
    return rendering.volume_render(rgb, density, t, rays.directions, background, far_delta)

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background):
    """Renders rays [...] with each level.

    Args:
      rng: key for stratified jitter, hierarchical draws and density noise; None for deterministic
        evaluation.
      rays: Rays with fields [..., C].
      background: [3] or [..., 3] colour composited behind the scene.

    Returns:
      A list of RenderedRays, coarse first, then fine when there is a fine field.
    """
    if self.density_activation not in DENSITY_ACTIVATIONS:
      raise ConfigError(f'config.model.density_activation must be one of {sorted(DENSITY_ACTIVATIONS)}, '
                        f'got {self.density_activation!r}.')
    keys = [None] * 4 if rng is None else list(jax.random.split(rng, 4))
    near, far = rays.near, rays.far
    if self.scene_box is not None:
      near, far = camera.clip_to_box(rays.origins, rays.directions, near, far, self.scene_box)
    t = sampling.stratified_samples(keys[0], near, far, self.num_coarse_samples, self.lindisp)
    renderings = [self._render_samples(self.coarse_field, keys[1], rays, t, far, background)]
    if self.fine_field is not None:
      t = sampling.hierarchical_samples(keys[2], t, renderings[0].w, self.num_fine_samples)
      renderings.append(self._render_samples(self.fine_field, keys[3], rays, t, far, background))
    return renderings


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
FIELDS = {'mlp': MLPField, 'hash_grid': HashGridField}


def make_model(model_config, scene_box: Sequence[float] = ()) -> NeRF:
  """Builds the NeRF that `model_config` (config.model) describes, for a scene inside `scene_box`
  ((x_min, y_min, z_min, x_max, y_max, z_max); empty for unbounded sampling between near and far)."""
  if model_config.name != 'nerf':
    raise ConfigError(f"config.model.name: unknown model {model_config.name!r}; expected 'nerf'.")
  if model_config.dtype not in DTYPES:
    raise ConfigError(f'config.model.dtype must be one of {sorted(DTYPES)}, got {model_config.dtype!r}.')
  if model_config.field not in FIELDS:
    raise ConfigError(f'config.model.field must be one of {sorted(FIELDS)}, got {model_config.field!r}.')
  scene_box = tuple(float(v) for v in scene_box) or None
  if scene_box is not None and len(scene_box) != 6:
    raise ConfigError(f'config.scene_box must hold 6 numbers (min x, y, z, then max x, y, z), got {scene_box}.')
  if model_config.field == 'hash_grid' and scene_box is None:
    raise ConfigError('config.model.field=hash_grid needs config.scene_box: the hash grid covers that box.')
  field_kwargs = dict(model_config[model_config.field], dtype=DTYPES[model_config.dtype])
  if model_config.field == 'hash_grid':
    field_kwargs['scene_box'] = scene_box
  field = FIELDS[model_config.field]
  return NeRF(
      coarse_field=field(**field_kwargs),
      fine_field=field(**field_kwargs) if model_config.num_fine_samples > 0 else None,
      num_coarse_samples=model_config.num_coarse_samples,
      num_fine_samples=model_config.num_fine_samples,
      lindisp=model_config.lindisp,
      scene_box=scene_box,
      density_activation=model_config.density_activation,
      density_noise_std=model_config.density_noise_std,
      rgb_padding=model_config.rgb_padding)
