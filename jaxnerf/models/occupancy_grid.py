"""instant-ngp's renderer: fixed steps along rays, skipping empty space by an occupancy grid, with the
surviving samples packed into fixed-size buffers (Mueller et al. 2022, Sec. 5.3 and App. E).

Rays may carry one leading *group* axis, [G, R]: groups are rendered independently (the train step makes one
group per device, so packing never crosses devices). The renderer owns the update of its grid between steps,
`update_state` (plain Python, called outside `apply`).
"""

import math
from typing import ClassVar, Dict, FrozenSet, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf.ops import camera
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from jaxnerf.ops import marching
from jaxnerf.ops import occupancy


def _unit_directions(rays: Rays):
  """[..., 3] the rays' directions at unit length: the marching direction. (Not `viewdirs`, which stay the
  world's view directions when rays are given in NDC.)"""
  return rays.directions / jnp.linalg.norm(rays.directions, axis=-1, keepdims=True)


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

  The grid is the 'occupancy' variable collection ({'density_ema', 'occupied'}, see ops/occupancy.py), updated
  by `update_occupancy` every `update_every` steps of training (`update_state`).
  """

  LEVEL_FIELDS: ClassVar[Dict[str, Tuple[str, ...]]] = {'fine': ('field',)}  # One level, one field.
  # What the ray history holds for loss terms (losses.NEEDS): packed samples keep no interval edges.
  PROVIDES: ClassVar[FrozenSet[str]] = frozenset()
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
  update_every: int = 16
  warmup_steps: int = 256  # Updates sweep all cells until then; later they draw cells at random.
  update_fraction: float = 0.25  # Cells measured per update: twice this fraction of all cells.
  density_decay: float = 0.95
  # Cells are empty when a step through them would be more transparent than this (or than the mean cell,
  # early in training when that is lower; see occupancy.threshold_occupied).
  opacity_threshold: float = 0.01

  def setup(self):
    num_cells = self.grid_resolution**3
    # Nothing is measured yet, so everything is occupied.
    self.density_ema = self.variable('occupancy', 'density_ema', jnp.full, (num_cells,),
                                     occupancy.UNMEASURED, jnp.float32)
    self.occupied = self.variable('occupancy', 'occupied', jnp.ones, (num_cells,), bool)

  def _density(self, points):
    return self.field.density(points)[0]

  def _num_steps(self) -> int:
    return marching.num_steps_for(math.dist(self.scene_box[:3], self.scene_box[3:]), self.step_size)

  def _march(self, rays: Rays, offset):
    """Steps along rays [...] through the box, starting `offset` [...] (in [0, 1)) of a step in.

    Returns:
      direction_norm [...]; s_near [...], the first step's distance along the unit directions (t = s /
      direction_norm is NeRF's depth); far [..., 1], the t where the ray leaves the box (or its far bound);
      selected [..., num_steps], the steps before `far` that lie in occupied cells.
    """
    direction_norm = jnp.linalg.norm(rays.directions, axis=-1)
    near, far = camera.clip_to_box(rays.origins, rays.directions, rays.near, rays.far, self.scene_box)
    s_near, s_far = near[..., 0] * direction_norm, far[..., 0] * direction_norm
    s = marching.step_distances(s_near, offset, self.step_size, self._num_steps())
    points = rays.origins[..., None, :] + s[..., None] * _unit_directions(rays)[..., None, :]
    selected = (s < s_far[..., None]) & occupancy.is_occupied(
        self.occupied.value, points, self.scene_box, self.grid_resolution)
    return direction_norm, s_near, far, selected

  def occupied_steps(self, rays: Rays):
    """How many steps of each ray [R] lie in occupied cells, as deterministic rendering marches them (the
    slots the ray takes in its first pass), int32 [R], and the depth a ray with none is rendered at (its far
    t, in the box). A ray with none renders as the background, with no field call."""
    _, _, far, selected = self._march(rays, jnp.full(rays.origins.shape[:-1], 0.5))
    return jnp.sum(selected, axis=-1, dtype=jnp.int32), far[..., 0]

  def _capacities(self, num_rays: int, rendering: bool) -> Tuple[int, int]:
    """Slots of the two passes' buffers for `num_rays` rays (per group), in training or rendering images;
    each holds at least one whole ray."""
    march, render = self.march_samples_per_ray, self.render_samples_per_ray
    if rendering:
      march, render = self.eval_march_samples_per_ray or march, self.eval_render_samples_per_ray or render
    return (max(int(num_rays * march), self._num_steps()), max(int(num_rays * render), self._num_steps()))

  def eval_march_capacity(self, num_rays: int) -> int:
    """Slots of the first pass's buffer when rendering `num_rays` rays (per group)."""
    return self._capacities(num_rays, rendering=True)[0]

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background, progress=1.0):
    """Renders rays [R] or [G, R]; as NeRF.__call__, returning one RenderedRays with `complete` set."""
    del progress
    grouped = rays.origins.ndim == 3
    if not grouped:
      rays = jax.tree.map(lambda x: x[None], rays)
    num_groups, num_rays = rays.origins.shape[:2]
    background = jnp.broadcast_to(jnp.asarray(background, jnp.float32), (num_groups, num_rays, 3))
    march_capacity, render_capacity = self._capacities(num_rays, rendering=rng is None)
    offset = (jnp.full((num_groups, num_rays), 0.5) if rng is None
              else jax.random.uniform(rng, (num_groups, num_rays)))
    direction_norm, s_near, far, selected = self._march(rays, offset)

    per_group = lambda fn, *args: jax.vmap(fn)(*args)
    def sample(packed):
      s = per_group(lambda p, s0, o: marching.packed_distances(p, s0, o, self.step_size), packed, s_near,
                    offset)
      origins, unit_directions, viewdirs = (per_group(marching.gather_rays, x, packed)
                                            for x in (rays.origins, _unit_directions(rays), rays.viewdirs))
      return s, origins + s[..., None] * unit_directions, viewdirs

    transmittance_of = lambda density, packed: per_group(
        compositing.compute_weights_packed, density, jnp.full(density.shape, self.step_size),
        packed.ray_index)[1]
    marched = per_group(lambda x: marching.pack(x, march_capacity), selected)
    s, marched_points, viewdirs = sample(marched)
    if (rng is None and getattr(self.field, 'shade', None) is not None
        and getattr(self.field, 'normals', 'none') == 'none'):
      # Rendering images, with a field that shades from its geometry (FieldBase.shade) and outputs no
      # density normals: one pass. The density at every occupied step gives the transmittance, and its
      # features the colour where light still arrives; a second pass would evaluate the same geometry again
      # (on lego_ngp:cpu that made renders 3 times slower).
      density, features = self.field.density(marched_points)
      density = jnp.where(marched.valid, density, 0.0)
      # (Slots past a ray's termination keep their place, at zero density: compositing needs the slots in
      # ray order.)
      kept = marched._replace(valid=marched.valid & (transmittance_of(density, marched) > self.min_transmittance))
      out = self.field.shade(density, features, viewdirs)
    else:
      # Pass 1: the transmittance at every occupied step.
      density = jnp.where(marched.valid, jax.lax.stop_gradient(self._density(marched_points)), 0.0)
      # Pass 2: the field where light still arrives.
      kept = per_group(lambda p, k: marching.repack(p, k, render_capacity), marched,
                       transmittance_of(density, marched) > self.min_transmittance)
      s, points, viewdirs = sample(kept)
      out = self.field(points, viewdirs)
    density = jnp.where(kept.valid, out.density, 0.0)
    t = s / per_group(marching.gather_rays, direction_norm, kept)
    rendered = per_group(
        lambda *a: compositing.volume_render_packed(*a[:5], num_rays, *a[5:]), out.rgb, density, t,
        jnp.full(density.shape, self.step_size), kept.ray_index, background, far[..., 0], out.extras)
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

  def update_state(self, params, model_state, rng: jax.Array, step):
    """The model's 'occupancy' variables for training step `step` (a traced int): `update_occupancy` every
    `update_every` steps, else unchanged. Called on the unbound module, outside `apply`."""

    def update(_):
      _, updated = self.apply({'params': params, **model_state}, rng, step,
                              method=OccupancyGridNeRF.update_occupancy, mutable=['occupancy'])
      return updated

    return jax.lax.cond(step % self.update_every == 0, update, lambda _: model_state, None)
