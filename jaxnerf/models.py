"""Flax models. They wire the pure functions of encoding.py, hash_grid.py, sampling.py and rendering.py.

A *field* maps points and view directions along rays to raw colour and raw density:
- `MLPField`: the NeRF paper's (Mildenhall et al. 2020, Fig. 7): positional encoding and an 8x256 MLP.
- `HashGridField`: instant-ngp's (Mueller et al. 2022): a multiresolution hash encoding of the point, a tiny
  density MLP, and a tiny colour MLP that also sees the encoded view direction.
`NeRF` renders rays coarse-to-fine with one field per level: stratified samples for the coarse level, then
samples drawn from the coarse weights for the fine level (paper, Sec. 5.2). `OccupancyGridNeRF` renders
rays as instant-ngp does: fixed steps, skipping empty space by an occupancy grid, with packed samples.

Renderers are called as model.apply(variables, rng, rays, background) and return a list of RenderedRays,
the finest last. Rays may carry one leading *group* axis, [G, R]: groups are rendered independently (the
train step makes one group per device, so packing never crosses devices).

Compute runs in `dtype` (bfloat16 for mixed precision); parameters, encodings, and everything after the
last layer stay float32.
"""

import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import camera
from jaxnerf import coord
from jaxnerf import encoding
from jaxnerf import hash_grid
from jaxnerf import marching
from jaxnerf import occupancy
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


def density_activation(name: str):
  """The activation called `name` in DENSITY_ACTIVATIONS; a ConfigError naming the choices otherwise."""
  if name not in DENSITY_ACTIVATIONS:
    raise ConfigError(f'config.model.density_activation must be one of {sorted(DENSITY_ACTIVATIONS)}, '
                      f'got {name!r}.')
  return DENSITY_ACTIVATIONS[name]


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
    raw_rgb, raw_density = field(points, jnp.broadcast_to(rays.viewdirs[..., None, :], points.shape))
    if rng is not None and self.density_noise_std > 0:
      raw_density += self.density_noise_std * jax.random.normal(rng, raw_density.shape)
    density = density_activation(self.density_activation)(raw_density)
    if self.scene_box is not None:
      density = jnp.where(coord.inside_unit_cube(coord.to_unit_cube(points, self.scene_box)), density, 0.0)
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
    density_activation(self.density_activation)  # Fails early on an unknown name.
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


class OccupancyGridNeRF(nn.Module):
  """instant-ngp's renderer (Mueller et al. 2022, Sec. 5.3 and App. E).

  Rays are marched through `scene_box` in steps of `step_size` (world units). Steps in cells that the
  occupancy grid marks empty are skipped. The rest go through two packed passes:
  1. density only, without gradients, at every step in an occupied cell (up to `march_samples_per_ray`
     slots per ray on average), which gives each step's transmittance;
  2. the full field, with gradients, at the steps whose transmittance is still above `min_transmittance`
     (instant-ngp's early ray termination; up to `render_samples_per_ray` slots per ray on average),
     composited per ray.
  Rays whose samples do not fit come back with `complete` False: the loss leaves them out and the image
  renderer renders them again. A buffer always holds at least one whole ray.

  The grid is the 'occupancy' variable collection ({'density_ema', 'occupied'}, see occupancy.py), updated
  by `update_occupancy` every `update_every` steps of training (`update_model_state`).
  """

  field: nn.Module
  scene_box: Sequence[float]
  grid_resolution: int = 64
  step_size: float = 0.01
  march_samples_per_ray: float = 64.0
  render_samples_per_ray: float = 24.0
  # The same when rendering images (rng None; None: as in training). Rays that cross only empty cells are
  # not rendered there, so the rays that are need more slots than a training batch's average.
  eval_march_samples_per_ray: Optional[float] = None
  eval_render_samples_per_ray: Optional[float] = None
  min_transmittance: float = 1e-4
  density_activation: str = 'trunc_exp'
  rgb_padding: float = 0.0
  update_every: int = 16
  warmup_steps: int = 256  # Updates sweep all cells until then; later they draw cells at random.
  update_fraction: float = 0.25  # Cells measured per update: twice this fraction of all cells.
  density_decay: float = 0.95
  # Cells are empty when a step through them would be more transparent than this (or than the mean cell,
  # early in training when that is lower; see occupancy.threshold_occupied).
  opacity_threshold: float = 0.01

  def setup(self):
    self.activate_density = density_activation(self.density_activation)
    num_cells = self.grid_resolution**3
    # Nothing is measured yet, so everything is occupied.
    self.density_ema = self.variable('occupancy', 'density_ema', jnp.full, (num_cells,),
                                     occupancy.UNMEASURED, jnp.float32)
    self.occupied = self.variable('occupancy', 'occupied', jnp.ones, (num_cells,), bool)

  def _density(self, points):
    return self.activate_density(self.field.density(points)[0])

  def _num_steps(self) -> int:
    return marching.num_steps_for(math.dist(self.scene_box[:3], self.scene_box[3:]), self.step_size)

  def _march(self, rays: Rays, offset):
    """Steps along rays [...] through the box, starting `offset` [...] (in [0, 1)) of a step in.

    Returns:
      direction_norm [...]; s_near [...], the first step's distance along the unit viewdirs (t = s /
      direction_norm is NeRF's depth); far [..., 1], the t where the ray leaves the box (or its far bound);
      selected [..., num_steps], the steps before `far` that lie in occupied cells.
    """
    direction_norm = jnp.linalg.norm(rays.directions, axis=-1)
    near, far = camera.clip_to_box(rays.origins, rays.directions, rays.near, rays.far, self.scene_box)
    s_near, s_far = near[..., 0] * direction_norm, far[..., 0] * direction_norm
    s = marching.step_distances(s_near, offset, self.step_size, self._num_steps())
    points = rays.origins[..., None, :] + s[..., None] * rays.viewdirs[..., None, :]
    selected = (s < s_far[..., None]) & occupancy.is_occupied(
        self.occupied.value, points, self.scene_box, self.grid_resolution)
    return direction_norm, s_near, far, selected

  def empty_rays(self, rays: Rays):
    """Which rays [R] cross no occupied cell, as deterministic rendering marches them, and the depth they
    are rendered at (their far t, in the box). Such a ray renders as the background, with no field call."""
    _, _, far, selected = self._march(rays, jnp.full(rays.origins.shape[:-1], 0.5))
    return ~jnp.any(selected, axis=-1), far[..., 0]

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background):
    """Renders rays [R] or [G, R]; as NeRF.__call__, returning one RenderedRays with `complete` set."""
    grouped = rays.origins.ndim == 3
    if not grouped:
      rays = jax.tree.map(lambda x: x[None], rays)
    num_groups, num_rays = rays.origins.shape[:2]
    background = jnp.broadcast_to(jnp.asarray(background, jnp.float32), (num_groups, num_rays, 3))
    num_steps = self._num_steps()
    march_per_ray, render_per_ray = self.march_samples_per_ray, self.render_samples_per_ray
    if rng is None:  # Rendering images.
      march_per_ray = self.eval_march_samples_per_ray or march_per_ray
      render_per_ray = self.eval_render_samples_per_ray or render_per_ray
    march_capacity = max(int(num_rays * march_per_ray), num_steps)
    render_capacity = max(int(num_rays * render_per_ray), num_steps)
    offset = (jnp.full((num_groups, num_rays), 0.5) if rng is None
              else jax.random.uniform(rng, (num_groups, num_rays)))
    direction_norm, s_near, far, selected = self._march(rays, offset)

    per_group = lambda fn, *args: jax.vmap(fn)(*args)
    def sample(packed):
      s = per_group(lambda p, s0, o: marching.packed_distances(p, s0, o, self.step_size), packed, s_near,
                    offset)
      origins, viewdirs = (per_group(marching.gather_rays, x, packed) for x in (rays.origins, rays.viewdirs))
      return s, origins + s[..., None] * viewdirs, viewdirs

    # Pass 1: the transmittance at every occupied step.
    marched = per_group(lambda x: marching.pack(x, march_capacity), selected)
    _, marched_points, _ = sample(marched)
    density = jnp.where(marched.valid, jax.lax.stop_gradient(self._density(marched_points)), 0.0)
    _, transmittance = per_group(rendering.compute_weights_packed, density,
                                 jnp.full(density.shape, self.step_size), marched.ray_index)
    # Pass 2: the field where light still arrives.
    kept = per_group(lambda p, k: marching.repack(p, k, render_capacity), marched,
                     transmittance > self.min_transmittance)
    s, points, viewdirs = sample(kept)
    raw_rgb, raw_density = self.field(points, viewdirs)
    density = jnp.where(kept.valid, self.activate_density(raw_density), 0.0)
    rgb = nn.sigmoid(raw_rgb) * (1 + 2 * self.rgb_padding) - self.rgb_padding
    t = s / per_group(marching.gather_rays, direction_norm, kept)
    rendered = per_group(
        lambda *a: rendering.volume_render_packed(*a[:5], num_rays, *a[5:]), rgb, density, t,
        jnp.full(density.shape, self.step_size), kept.ray_index, background, far[..., 0])
    rendered = rendered._replace(complete=kept.complete)

    self.sow('diagnostics', 'marched_samples_per_ray', jnp.sum(marched.valid) / (num_groups * num_rays))
    self.sow('diagnostics', 'rendered_samples_per_ray', jnp.sum(kept.valid) / (num_groups * num_rays))
    self.sow('diagnostics', 'complete_rays', jnp.mean(kept.complete))
    if not grouped:
      rendered = jax.tree.map(lambda x: x[0], rendered)
    return [rendered]

  def update_occupancy(self, rng: jax.Array, step):
    """Measures the density in 2 * update_fraction of the cells and updates the grid (occupancy.py).

    Until `warmup_steps` the cells are swept in order, so that every cell is measured every
    1 / (2 * update_fraction) updates (instant-ngp measures all cells at each warm-up update; a fixed count
    keeps one compiled program, half the size). Later, half are drawn uniformly and half among the occupied.
    """
    num_cells = self.grid_resolution**3
    count = max(1, int(self.update_fraction * num_cells))
    cells_key, points_key = jax.random.split(rng)
    sweep = (jnp.arange(2 * count, dtype=jnp.int32) + (step // self.update_every) * 2 * count) % num_cells
    drawn = occupancy.cells_to_update(cells_key, self.occupied.value, count, count)
    cells = jnp.where(step < self.warmup_steps, sweep, drawn)
    points = occupancy.random_points_in_cells(points_key, cells, self.scene_box, self.grid_resolution)
    density_ema = occupancy.update_density(self.density_ema.value, cells,
                                           jax.lax.stop_gradient(self._density(points)), self.density_decay)
    self.density_ema.value = density_ema
    self.occupied.value = occupancy.threshold_occupied(density_ema, self.opacity_threshold / self.step_size)


def update_model_state(model: nn.Module, params, model_state, rng: jax.Array, step):
  """The model's non-trained variables (e.g. an occupancy grid) for training step `step` (a traced int).

  Models without such variables get them back unchanged.
  """
  if not isinstance(model, OccupancyGridNeRF):
    return model_state

  def update(_):
    _, updated = model.apply({'params': params, **model_state}, rng, step,
                             method=OccupancyGridNeRF.update_occupancy, mutable=['occupancy'])
    return updated

  return jax.lax.cond(step % model.update_every == 0, update, lambda _: model_state, None)


DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
FIELDS = {'mlp': MLPField, 'hash_grid': HashGridField}


def make_model(model_config, scene_box: Sequence[float] = ()) -> nn.Module:
  """Builds the renderer that `model_config` (config.model) describes, for a scene inside `scene_box`
  ((x_min, y_min, z_min, x_max, y_max, z_max); empty for unbounded sampling between near and far).

  config.model.name picks the renderer: 'nerf' (coarse-to-fine, `NeRF`) or 'occupancy_grid'
  (instant-ngp's marching, `OccupancyGridNeRF`, with its settings in config.model.occupancy_grid).
  """
  if model_config.name not in ('nerf', 'occupancy_grid'):
    raise ConfigError(f"config.model.name: unknown model {model_config.name!r}; expected 'nerf' or "
                      "'occupancy_grid'.")
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
  field = FIELDS[model_config.field]
  if model_config.name == 'occupancy_grid':
    if model_config.field != 'hash_grid':
      raise ConfigError("config.model.name=occupancy_grid needs config.model.field='hash_grid': it measures "
                        'density on its own, which only the hash grid exposes.')
    return OccupancyGridNeRF(field=field(**field_kwargs), scene_box=scene_box,
                             density_activation=model_config.density_activation,
                             rgb_padding=model_config.rgb_padding, **model_config.occupancy_grid)
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
