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

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.ops import camera
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from jaxnerf.ops import marching
from jaxnerf.ops import occupancy
from jaxnerf.ops.ray_samples import RaySamples
from jaxnerf import values


_PROBE_BLOCK_STEPS = 32  # Steps marched at once by `occupied_steps` (16-32 fastest on the 2-core CPU).

# name='occupancy_grid': OccupancyGridNeRF's settings (it covers the top-level scene_box).
config_groups.register('model.occupancy_grid', owner=__name__, settings=dict(
    grid_resolution=Setting(64, 'Cells per side of the occupancy grid over the scene box.', values.POSITIVE_INT),
    step_size=Setting(0.01, 'Marching step in world units; each evaluated sample stands for one step.',
                      values.POSITIVE),
    march_samples_per_ray=Setting(64.0, 'Training: buffer slots per ray, on average over a batch, for the '
                                  'density pass over the occupied steps.', values.POSITIVE),
    render_samples_per_ray=Setting(24.0, 'Training: buffer slots per ray, on average over a batch, for the pass '
                                   'with gradients (the steps left after early termination).', values.POSITIVE),
    eval_march_samples_per_ray=Setting(48.0, "march_samples_per_ray when rendering images, per ray of an eval "
                                       'chunk that meets an occupied cell (others show the background).',
                                       values.POSITIVE),
    eval_render_samples_per_ray=Setting(48.0, 'render_samples_per_ray when rendering images, per ray of an eval '
                                        'chunk that meets an occupied cell.', values.POSITIVE),
    eval_steps_per_round=Setting(24, "Images are rendered in rounds of this many steps of each ray, a ray's next "
                                 'round resuming where light still arrives (0: one call per ray).',
                                 values.NON_NEGATIVE_INT),
    min_transmittance=Setting(1e-4, 'Early ray termination: steps are dropped once less light than this '
                              'arrives.'),
    update_every=Setting(16, 'Training steps between grid updates.', values.POSITIVE_INT),
    warmup_steps=Setting(256, 'Until this step updates sweep all cells in turn; later they draw cells at random.'),
    update_fraction=Setting(0.25, 'Cells measured per update: this fraction of all cells uniformly, and as many '
                            'occupied ones.'),
    density_decay=Setting(0.95, "Moving-average decay of a cell's density at each measurement."),
    opacity_threshold=Setting(0.01, 'A cell is empty when a step through it is more transparent than this '
                              'opacity, or than the mean cell.'),
), small=dict(grid_resolution=16, step_size=0.04, march_samples_per_ray=64.0, render_samples_per_ray=48.0,
              update_every=4, warmup_steps=16, density_decay=0.8))


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
  eval_march_samples_per_ray: Optional[float] = 48.0
  eval_render_samples_per_ray: Optional[float] = 48.0
  min_transmittance: float = 1e-4
  # Rendering images in rounds (`render_round`, outputs/chunked.py): the steps a round marches. 0: each
  # ray in one call of __call__.
  eval_steps_per_round: int = 24
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

  def _march(self, rays: Rays, offset, first_step=None, num_steps: Optional[int] = None):
    """Steps along rays [...] through the box, starting `offset` [...] (in [0, 1)) of a step in: all of
    them, or `num_steps` from first_step [...] (a window).

    Returns:
      direction_norm [...]; s_near [...], the distance along the unit directions of step 0 (t = s /
      direction_norm is NeRF's depth); far [..., 1], the t where the ray leaves the box (or its far bound);
      m [..., K], the steps' indices; selected [..., K], the steps before `far` in occupied cells.
    """
    direction_norm = jnp.linalg.norm(rays.directions, axis=-1)
    near, far = camera.clip_to_box(rays.origins, rays.directions, rays.near, rays.far, self.scene_box)
    s_near, s_far = near[..., 0] * direction_norm, far[..., 0] * direction_norm
    m = marching.step_indices(num_steps or self._num_steps(), first_step)
    s = marching.step_distances(s_near, offset, self.step_size, m)
    points = rays.origins[..., None, :] + s[..., None] * _unit_directions(rays)[..., None, :]
    selected = (s < s_far[..., None]) & occupancy.is_occupied(
        self.occupied.value, points, self.scene_box, self.grid_resolution)
    return direction_norm, s_near, far, m, selected

  def occupied_steps(self, rays: Rays) -> Dict[str, jax.Array]:
    """What rendering an image needs to know of rays [R] before it calls the field, marching them as
    deterministic rendering does: {'samples': int32 [R], how many of their steps lie in occupied cells (the
    slots a ray takes when rendered in one call), 'far': [R] the depth a ray with none renders at (its far
    t, in the box), and its state before its first round of `render_round` (which starts at its first
    occupied step)}. A ray with no occupied step renders as the background, with no field call."""
    offset = jnp.full(rays.origins.shape[:-1], 0.5)
    num_steps = self._num_steps()

    def march_block(block, counts):  # (A loop over blocks of steps: 1.45x faster than one [R, M] march.)
      samples, first_step = counts
      start = jnp.full(offset.shape, block * _PROBE_BLOCK_STEPS, jnp.int32)
      _, _, _, m, selected = self._march(rays, offset, start, _PROBE_BLOCK_STEPS)
      selected = selected & (m < num_steps)
      return (samples + jnp.sum(selected, axis=-1, dtype=jnp.int32),
              jnp.minimum(first_step, jnp.min(jnp.where(selected, m, num_steps), axis=-1)))

    samples, first_step = jax.lax.fori_loop(
        0, -(-num_steps // _PROBE_BLOCK_STEPS), march_block,
        (jnp.zeros(offset.shape, jnp.int32), jnp.full(offset.shape, num_steps, jnp.int32)))
    _, _, far, _, first_round = self._march(rays, offset, first_step, self.eval_steps_per_round or 1)
    return {'samples': samples, 'far': far[..., 0], 'first_step': first_step,
            'transmittance': jnp.ones(offset.shape), 'remaining': samples,
            'round_samples': jnp.sum(first_round, axis=-1, dtype=jnp.int32)}

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

  def _render_marched(self, rays: Rays, marched: marching.PackedSamples, s_near, offset, direction_norm,
                      far, background, render_capacity: int, rendering_images: bool, transmittance=None,
                      progress=1.0):
    """Renders the packed steps `marched` of rays [G, R] (both passes; see the class docstring), at training
    progress `progress` (handed to the field with the samples).

    `transmittance` [G, R]: the light still arriving at each ray's first step (rays resumed by
    `render_round`; None: all of it); early termination counts it in, the composite does not. Returns
    (RenderedRays of [G, R] rays over the kept slots, the kept slots' t [G, C], the kept PackedSamples).
    """
    num_rays = rays.origins.shape[1]
    per_group = lambda fn, *args: jax.vmap(fn)(*args)

    def sample(packed):
      s = per_group(lambda p, s0, o: marching.packed_distances(p, s0, o, self.step_size), packed, s_near,
                    offset)
      # Distances along the unit directions: the cone's radius per unit of them.
      radii = rays.radii / direction_norm[..., None]
      gathered = [per_group(marching.gather_rays, x, packed)
                  for x in (rays.origins, _unit_directions(rays), rays.viewdirs, radii, rays.cam_idx)]
      # Each step stands for the next step_size along the unit direction.
      return RaySamples(*gathered[:4], s, s + self.step_size, gathered[4], jnp.asarray(progress, jnp.float32))

    def light_arrives(density, packed):
      arriving = per_group(compositing.compute_weights_packed, density, jnp.full(density.shape, self.step_size),
                           packed.ray_index)[1]
      if transmittance is not None:
        arriving = arriving * per_group(marching.gather_rays, transmittance, packed)
      return arriving > self.min_transmittance

    samples = sample(marched)
    if (rendering_images and getattr(self.field, 'shade', None) is not None
        and getattr(self.field, 'normals', 'none') == 'none'):
      # Rendering images, with a field that shades from its geometry (FieldBase.shade) and outputs no
      # density normals: one pass. The density at every occupied step gives the transmittance, and its
      # features the colour where light still arrives; a second pass would evaluate the same geometry again
      # (on lego_ngp:cpu that made renders 3 times slower).
      density, features = self.field.density(samples.points())
      density = jnp.where(marched.valid, density, 0.0)
      # (Slots past a ray's termination keep their place, at zero density: compositing needs the slots in
      # ray order.)
      kept = marched._replace(valid=marched.valid & light_arrives(density, marched))
      out = self.field.shade(density, features, samples.viewdirs, cam_idx=samples.cam_idx)
    else:
      # Pass 1: the transmittance at every occupied step.
      density = jnp.where(marched.valid, jax.lax.stop_gradient(self._density(samples.points())), 0.0)
      # Pass 2: the field where light still arrives.
      kept = per_group(lambda p, k: marching.repack(p, k, render_capacity), marched,
                       light_arrives(density, marched))
      samples = sample(kept)
      out = self.field(samples)
    density = jnp.where(kept.valid, out.density, 0.0)
    t = samples.t_starts / per_group(marching.gather_rays, direction_norm, kept)
    rendered = per_group(
        lambda *a: compositing.volume_render_packed(*a[:5], num_rays, *a[5:]), out.rgb, density, t,
        jnp.full(density.shape, self.step_size), kept.ray_index, background, far[..., 0], out.extras)
    return rendered._replace(complete=kept.complete), t, kept

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background, progress=1.0):
    """Renders rays [R] or [G, R]; as NeRF.__call__, returning one RenderedRays with `complete` set."""
    grouped = rays.origins.ndim == 3
    if not grouped:
      rays = jax.tree.map(lambda x: x[None], rays)
    num_groups, num_rays = rays.origins.shape[:2]
    background = jnp.broadcast_to(jnp.asarray(background, jnp.float32), (num_groups, num_rays, 3))
    march_capacity, render_capacity = self._capacities(num_rays, rendering=rng is None)
    offset = (jnp.full((num_groups, num_rays), 0.5) if rng is None
              else jax.random.uniform(rng, (num_groups, num_rays)))
    direction_norm, s_near, far, _, selected = self._march(rays, offset)
    marched = jax.vmap(lambda x: marching.pack(x, march_capacity))(selected)
    rendered, _, kept = self._render_marched(rays, marched, s_near, offset, direction_norm, far, background,
                                             render_capacity, rendering_images=rng is None, progress=progress)

    self.sow('diagnostics', 'marched_samples_per_ray', jnp.sum(marched.valid) / (num_groups * num_rays))
    self.sow('diagnostics', 'rendered_samples_per_ray', jnp.sum(kept.valid) / (num_groups * num_rays))
    self.sow('diagnostics', 'complete_rays', jnp.mean(kept.complete))
    if not grouped:
      rendered = jax.tree.map(lambda x: x[0], rendered)
    return [rendered]

  def round_rays(self, chunk_size: int) -> int:
    """Rays per group of a call of `render_round` that stands in for rendering `chunk_size` rays (per
    group) in one call: as many as its slots (`round_capacity`, the same number) hold at half of
    `eval_steps_per_round` each (rays whose steps are not all occupied fill them too)."""
    return max(2 * self.eval_march_capacity(chunk_size) // self.eval_steps_per_round, 1)

  def round_capacity(self, num_rays: int) -> int:
    """Slots per group of a call of `render_round` for `num_rays` rays per group (`round_rays`)."""
    return max(num_rays * self.eval_steps_per_round // 2, self.eval_steps_per_round)

  def render_round(self, rays: Rays, first_step, transmittance, remaining, round_samples, background,
                   capacity: int) -> Dict[str, jax.Array]:
    """One round of rendering rays [G, R] of images in rounds (outputs/chunked.py drives them): each ray
    resumes at step first_step [G, R] with `transmittance` [G, R] of its light left, evaluates its occupied
    steps among the next `eval_steps_per_round` (round_samples [G, R] of them; packed, `capacity` slots per
    group) and stops where light runs out. remaining [G, R]: its occupied steps not yet evaluated.

    In rounds a ray is evaluated little past where its light runs out, which rendering it in one call
    cannot know in advance: on lego_ngp:cpu the rays that meet the scene have 49 occupied steps and are
    opaque after 26.

    Returns {name: [G, R, ...]}: what the round adds to the ray's composites (colour, 'acc', the weighted
    sum of depths 'weighted_depth' and the field's extras, each scaled by the light that arrived; colour
    includes the background once the ray is done), its state for the next round (the four arguments),
    'done' (no light left, or no occupied step left before the ray leaves the box) and 'complete' (False:
    the round's steps did not fit `capacity` and it must run again; its state is then unchanged).
    """
    del round_samples  # (What the caller filled the buffer by.)
    num_groups, num_rays = rays.origins.shape[:2]
    offset = jnp.full((num_groups, num_rays), 0.5)
    direction_norm, s_near, far, _, selected = self._march(rays, offset, first_step, self.eval_steps_per_round)
    marched = jax.vmap(lambda x: marching.pack(x, capacity))(selected)
    # Slots name the march's step, not the window's (the same distances as a whole march; marching.py).
    window_start = jax.vmap(marching.gather_rays)(first_step, marched)
    marched = marched._replace(step_index=jnp.where(marched.valid, marched.step_index + window_start, 0))
    rendered, t, kept = self._render_marched(rays, marched, s_near, offset, direction_norm, far,
                                             jnp.zeros((num_groups, num_rays, 3)), capacity,
                                             rendering_images=True, transmittance=transmittance)
    weighted_depth = jax.vmap(lambda w, t, p: compositing.composite_packed(w, t[:, None], p.ray_index,
                                                                           num_rays)[:, 0])(rendered.w, t, kept)
    complete = rendered.complete
    left = transmittance * (1.0 - rendered.acc)
    remaining_after = remaining - jnp.sum(selected, axis=-1, dtype=jnp.int32)
    next_step = jnp.where(complete, first_step + self.eval_steps_per_round, first_step)
    # A ray is also done once its next window starts where it has left the box: `remaining` comes from the
    # probe's march, which another compiled program can round differently at a cell's or the box's edge, so
    # a count alone can stay above 0 for ever (nearly transparent rays of an early model never stop on light).
    past_exit = marching.step_distances(s_near, offset, self.step_size, next_step[..., None])[..., 0] >= (
        far[..., 0] * direction_norm)
    done = complete & ((left <= self.min_transmittance) | (remaining_after <= 0) | past_exit)
    _, _, _, _, next_selected = self._march(rays, offset, next_step, self.eval_steps_per_round)
    background = jnp.broadcast_to(jnp.asarray(background, jnp.float32), (num_groups, num_rays, 3))
    scaled = lambda x: transmittance.reshape(transmittance.shape + (1,) * (x.ndim - 2)) * x
    return {**{k: scaled(v) for k, v in (rendered.extras or {}).items()},
            'rgb': scaled(rendered.rgb) + jnp.where(done, left, 0.0)[..., None] * background,
            'acc': scaled(rendered.acc), 'weighted_depth': scaled(weighted_depth),
            'first_step': next_step, 'transmittance': jnp.where(complete, left, transmittance),
            'remaining': jnp.where(complete, remaining_after, remaining),
            'round_samples': jnp.sum(next_selected, axis=-1, dtype=jnp.int32),
            'done': done, 'complete': complete}

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
