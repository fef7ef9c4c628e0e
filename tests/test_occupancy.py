"""Tests of jaxnerf.ops.occupancy and the occupancy-grid renderer: cell maths by hand, the grid update against a
direct computation, sampling of cells, and OccupancyGridNeRF against dense rendering of the same field."""

import dataclasses
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf import models
from jaxnerf.ops import camera
from jaxnerf.ops.camera import ANY_CAMERA
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from jaxnerf.ops import marching
from jaxnerf.ops import occupancy
from jaxnerf.outputs import chunked
from jaxnerf import parallel
from jaxnerf.training import steps

BOX = (-1.0, -2.0, 0.0, 1.0, 2.0, 4.0)


def test_cells_by_hand():
  points = jnp.array([[-1.0, -2.0, 0.0], [0.99, 1.99, 3.99], [0.0, 0.0, 2.0], [1.0, 2.0, 4.0],
                      [1.01, 0.0, 2.0], [0.0, -2.5, 2.0]])
  cell, inside = occupancy.cell_of(points, BOX, 4)
  np.testing.assert_array_equal(cell[:4], [[0, 0, 0], [3, 3, 3], [2, 2, 2], [3, 3, 3]])
  np.testing.assert_array_equal(inside, [True, True, True, True, False, False])
  index = occupancy.flat_index(cell, 4)
  np.testing.assert_array_equal(index[:3], [0, 63, 2 + 4 * (2 + 4 * 2)])
  np.testing.assert_array_equal(occupancy.unflatten_index(jnp.arange(64), 4),
                                np.stack(np.meshgrid(range(4), range(4), range(4), indexing='ij')[::-1],
                                         -1).reshape(-1, 3))


def test_is_occupied_reads_the_bit_field():
  occupied = jnp.zeros(64, bool).at[occupancy.flat_index(jnp.array([2, 1, 3]), 4)].set(True)
  points = jnp.array([[0.25, -0.5, 3.5], [0.25, -0.5, 2.5], [1.5, -0.5, 3.5]])  # Cell (2, 1, 3), (2, 1, 2).
  np.testing.assert_array_equal(occupancy.is_occupied(occupied, points, BOX, 4), [True, False, False])


def test_random_points_lie_in_their_cells():
  cells = jnp.arange(4**3)
  points = occupancy.random_points_in_cells(jax.random.key(0), cells, BOX, 4)
  cell, inside = occupancy.cell_of(points, BOX, 4)
  assert bool(jnp.all(inside))
  np.testing.assert_array_equal(occupancy.flat_index(cell, 4), cells)


def test_update_density_matches_direct_computation():
  rng = np.random.default_rng(0)
  old = rng.uniform(0, 10, 27).astype(np.float32)
  cells = np.array([3, 5, 5, 26, 0, 3, 3])  # Repeats: a cell measured three times decays once.
  densities = rng.uniform(0, 12, cells.size).astype(np.float32)
  new = np.asarray(occupancy.update_density(jnp.asarray(old), jnp.asarray(cells), jnp.asarray(densities), 0.9))
  expected = old.copy()
  for c in set(cells.tolist()):
    expected[c] = max(0.9 * old[c], densities[cells == c].max())
  np.testing.assert_allclose(new, expected, rtol=1e-6)


def test_threshold_uses_the_smaller_of_mean_and_threshold():
  ema = jnp.array([0.0, 1.0, 2.0, 9.0, occupancy.UNMEASURED])  # Mean of the measured cells: 3.
  np.testing.assert_array_equal(occupancy.threshold_occupied(ema, 5.0), [False, False, False, True, True])
  np.testing.assert_array_equal(occupancy.threshold_occupied(ema, 0.5), [False, True, True, True, True])
  # A measurement replaces the unmeasured mark whatever the decay.
  updated = occupancy.update_density(ema, jnp.array([4]), jnp.array([0.25]), 0.5)
  np.testing.assert_allclose(updated, [0.0, 1.0, 2.0, 9.0, 0.25])


def test_cells_to_update_draws_occupied_cells_only_from_the_occupied():
  occupied = jnp.zeros(1000, bool).at[jnp.array([7, 300, 999])].set(True)
  cells = np.asarray(jax.jit(occupancy.cells_to_update, static_argnums=(2, 3))(
      jax.random.key(1), occupied, 50, 3000))
  uniform, among_occupied = cells[:50], cells[50:]
  assert set(among_occupied.tolist()) == {7, 300, 999}
  counts = np.bincount(among_occupied, minlength=1000)[[7, 300, 999]]
  assert counts.min() > 800  # Each about 1000 of 3000.
  assert len(set(uniform.tolist())) > 40 and uniform.min() >= 0 and uniform.max() < 1000
  # With nothing occupied, both groups are uniform.
  cells = occupancy.cells_to_update(jax.random.key(2), jnp.zeros(1000, bool), 10, 500)
  assert len(set(np.asarray(cells).tolist())) > 300


# Rendering images with the training buffers (the module's eval defaults are the config's, 48 slots a ray).
RENDER_AS_TRAINING = dict(eval_march_samples_per_ray=None, eval_render_samples_per_ray=None)


class _BallField(nn.Module):
  """A dense ball of radius 0.5 at (0.2, -0.3, 2.1) in a softly coloured fog-free box; the colour depends on
  position and view direction. Exposes `density` like models.HashGridField."""

  @nn.compact
  def density(self, points):
    scale = self.param('scale', nn.initializers.ones, ())
    distance = jnp.linalg.norm(points - jnp.array([0.2, -0.3, 2.1]), axis=-1)
    raw = jnp.where(distance < 0.5, 3.0, -20.0) * scale  # Density e^3 inside, ~0 outside.
    return models.trunc_exp(raw), jnp.stack([points[..., 0], points[..., 1]], axis=-1)

  def __call__(self, samples, rng=None):
    return _BallField.shade(self, *self.density(samples.points()), samples.per_sample(samples.viewdirs))

  def shade(self, density, features, viewdirs, cam_idx=None):
    raw_rgb = jnp.concatenate([features, viewdirs[..., :1]], axis=-1)
    return models.FieldOutputs(density, nn.sigmoid(raw_rgb))


class _TwoPassBallField(_BallField):
  """The same field, for renderers that cannot shade from a first pass's geometry."""
  shade = None


def _rays(num_rays, seed=0):
  rng = np.random.default_rng(seed)
  origins = np.tile(np.array([[0.0, 0.0, -2.0]], np.float32), (num_rays, 1))
  targets = np.stack([rng.uniform(-0.6, 0.9, num_rays), rng.uniform(-1.0, 0.5, num_rays),
                      np.full(num_rays, 2.0)], -1).astype(np.float32)
  directions = (targets - origins) / 4.0  # Unit length along z: t is depth.
  viewdirs = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
  return Rays(jnp.asarray(origins), jnp.asarray(directions), jnp.asarray(viewdirs),
              jnp.full((num_rays, 1), 1.0), jnp.full((num_rays, 1), 8.0), jnp.full((num_rays, 1), 1e-3),
              jnp.full((num_rays, 1), ANY_CAMERA, jnp.int32))


@functools.partial(jax.jit, static_argnames=('resolution', 'step_size'))  # Op by op, ~100 tiny compiles.
def _dense_reference(field_vars, occupied, resolution, rays, step_size):
  """Every marching step evaluated, with no density in the grid's empty cells, composited with
  volume_render: what marching renders, bar early termination."""
  num_steps = marching.num_steps_for(float(np.linalg.norm(np.subtract(BOX[3:], BOX[:3]))), step_size)
  near, far = camera.clip_to_box(rays.origins, rays.directions, rays.near, rays.far, BOX)
  norm = jnp.linalg.norm(rays.directions, axis=-1)
  s = marching.step_distances(near[:, 0] * norm, jnp.full(norm.shape, 0.5), step_size,
                              marching.step_indices(num_steps))
  points = rays.origins[:, None] + s[..., None] * rays.viewdirs[:, None]
  field_out = _BallField().apply(field_vars, *_BallField().apply(field_vars, points, method='density'),
                                 jnp.broadcast_to(rays.viewdirs[:, None], points.shape), method='shade')
  density = jnp.where((s < (far[:, 0] * norm)[:, None]) & occupancy.is_occupied(occupied, points, BOX, resolution),
                      field_out.density, 0.0)
  # Distances s along unit view directions, so every sample's interval is one step; depth is s / |d|.
  out = compositing.volume_render(field_out.rgb, density, s, rays.viewdirs, jnp.ones(3), step_size)
  return out._replace(depth=out.depth / norm)


@pytest.mark.device
@pytest.mark.parametrize('groups', [1, 2])
def test_occupancy_grid_nerf_matches_dense_marching(groups):
  rays = _rays(64)
  model = models.OccupancyGridNeRF(field=_BallField(), scene_box=BOX, grid_resolution=16, step_size=0.02,
                                   march_samples_per_ray=400.0, render_samples_per_ray=400.0,
                                   warmup_steps=10**6, update_fraction=0.5)  # One update sweeps all cells.
  variables = jax.jit(model.init)(jax.random.key(0), None, rays, jnp.ones(3))
  params, state = variables['params'], {'occupancy': variables['occupancy']}
  assert bool(jnp.all(state['occupancy']['occupied']))  # Nothing is skipped before the first update.
  assert bool(jnp.all(state['occupancy']['density_ema'] == occupancy.UNMEASURED))
  state = jax.jit(model.update_state)(params, state, jax.random.key(1), 0)
  occupied = state['occupancy']['occupied']
  # The ball's cells: all those deep inside it, none far from it (a cell that the ball only grazes is found
  # when its random point falls inside the ball).
  cells = occupancy.unflatten_index(jnp.arange(16**3), 16)
  centres = jnp.asarray(BOX[:3]) + (cells + 0.5) / 16 * (jnp.asarray(BOX[3:]) - jnp.asarray(BOX[:3]))
  distance = np.asarray(jnp.linalg.norm(centres - jnp.array([0.2, -0.3, 2.1]), axis=-1))
  occupied_np = np.asarray(occupied)
  assert occupied_np[distance < 0.3].all() and not occupied_np[distance > 0.8].any()

  grouped = jax.tree.map(lambda x: x.reshape((groups, -1) + x.shape[1:]), rays)
  (out,), sown = jax.jit(lambda v, r: model.apply(v, None, r, jnp.ones(3), mutable=['diagnostics']))(
      {'params': params, **state}, grouped)
  out = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), out._replace(w=jnp.zeros(groups)))
  assert bool(jnp.all(out.complete))
  reference = _dense_reference({'params': params['field']}, occupied, resolution=16, rays=rays, step_size=0.02)
  np.testing.assert_allclose(out.rgb, reference.rgb, atol=2e-3)
  np.testing.assert_allclose(out.acc, reference.acc, atol=2e-3)
  hit = np.asarray(reference.acc) > 0.5
  assert 10 < hit.sum() < 60  # Some rays hit the ball, some miss it.
  np.testing.assert_allclose(np.asarray(out.depth)[hit], np.asarray(reference.depth)[hit], rtol=1e-3)
  # Skipping and early termination evaluate far fewer samples than the dense march (348 steps a ray).
  marched = float(sown['diagnostics']['marched_samples_per_ray'][0])
  rendered = float(sown['diagnostics']['rendered_samples_per_ray'][0])
  assert rendered < marched < 40, (rendered, marched)
  if groups == 1:
    # Shading from the first pass's geometry (FieldBase.shade) renders what a second pass of the whole
    # field renders.
    (two_pass,) = jax.jit(lambda v, r: model.clone(field=_TwoPassBallField()).apply(v, None, r, jnp.ones(3)))(
        {'params': params, **state}, rays)
    per_ray = lambda r: (r.rgb, r.depth, r.acc, r.complete)  # (The per-sample buffers are laid out apart.)
    chex.assert_trees_all_close(per_ray(out), per_ray(two_pass), atol=1e-6)


def test_occupancy_grid_nerf_overflow_marks_rays_incomplete():
  rays = _rays(32, seed=3)
  model = models.OccupancyGridNeRF(field=_BallField(), scene_box=BOX, step_size=0.02,
                                   march_samples_per_ray=2.0, render_samples_per_ray=1.0)
  variables = jax.jit(model.init)(jax.random.key(0), None, rays, jnp.ones(3))
  (out,) = jax.jit(model.apply)(variables, jax.random.key(1), rays, jnp.ones(3))
  complete = np.asarray(out.complete)
  assert complete[0] and not complete.all()  # At least one whole ray always fits; later ones are cut.
  assert np.all(np.diff(complete.astype(int)) <= 0)  # Packed in ray order: complete rays come first.
  chex.assert_tree_all_finite(out._replace(complete=None))


def test_grid_updates_every_n_steps_and_sweeps_all_cells_in_warm_up():
  rays = _rays(8)
  model = models.OccupancyGridNeRF(field=_BallField(), scene_box=BOX, grid_resolution=8, update_every=4,
                                   warmup_steps=8, update_fraction=0.25)
  variables = jax.jit(model.init)(jax.random.key(0), None, rays, jnp.ones(3))
  params, state = variables['params'], {'occupancy': variables['occupancy']}
  update = jax.jit(model.update_state)
  unchanged = update(params, state, jax.random.key(1), 3)
  chex.assert_trees_all_equal(unchanged, state)
  # Warm-up: each update measures the next half of the cells, so two updates measure them all once.
  first = update(params, state, jax.random.key(1), 0)['occupancy']['density_ema']
  second = update(params, {'occupancy': {**state['occupancy'], 'density_ema': first}},
                  jax.random.key(2), 4)['occupancy']['density_ema']
  first, second = np.asarray(first), np.asarray(second)
  assert np.all(first[:256] >= 0) and np.all(first[256:] == occupancy.UNMEASURED)
  assert np.all(second > 0)  # trunc_exp densities are positive.
  np.testing.assert_array_equal(second[:256], first[:256])
  # Cells not yet measured stay occupied, so the first updates never hide anything.
  occupied = update(params, state, jax.random.key(1), 0)['occupancy']['occupied']
  assert bool(jnp.all(occupied[256:]))


def _image_steps(model, mesh, probe: bool, rounds: bool = False):
  """What chunked.render_image needs of steps.CompiledSteps, for `model` on `mesh`."""
  render_rays = jax.jit(steps.make_render_rays(model, jnp.ones(3), mesh.size))
  probe_rays = jax.jit(steps.make_probe_rays(model, jnp.ones(3))) if probe else None
  compiled = steps.CompiledSteps(None, render_rays, probe_rays, parallel.batch_sharded(mesh),
                                 parallel.replicated(mesh), model.eval_march_capacity if probe else None)
  if not rounds:
    return compiled
  return compiled._replace(render_round=jax.jit(steps.make_render_round(model, jnp.ones(3), mesh.size)),
                           round_rays=model.round_rays, round_capacity=model.round_capacity)


@pytest.mark.device
def test_image_renderer_re_renders_rays_that_overflowed():
  """Rendering with buffers too small for a chunk gives the same image as with ample buffers, whether
  chunks take a fixed number of rays or as many as their probed samples fit (probe)."""
  rays = jax.tree.map(lambda x: x.reshape((8, 8) + x.shape[1:]), _rays(64, seed=4))
  mesh = parallel.make_mesh()
  images = []
  for samples_per_ray, probe in ((400.0, False), (2.0, False), (2.0, True)):
    model = models.OccupancyGridNeRF(field=_BallField(), scene_box=BOX, step_size=0.02,
                                     march_samples_per_ray=samples_per_ray,
                                     render_samples_per_ray=samples_per_ray)
    variables = jax.jit(model.init)(jax.random.key(0), None, _rays(2), jnp.ones(3))
    images.append(chunked.render_image(_image_steps(model, mesh, probe), variables, rays, 16))
  for image in images[1:]:
    chex.assert_trees_all_close(image, images[0], atol=1e-5)
  assert images[0]['acc'].max() > 0.5 and images[0]['acc'].min() < 0.01  # Ball and empty space.


@functools.partial(jax.jit, static_argnums=0)  # Op by op, its march compiles ~50 tiny programs.
def _occupied_steps(model, variables, rays):
  return model.apply(variables, rays, method=model.occupied_steps)


def _ball_in_its_cells(field=None, size: int = 10, **settings):
  """(model, variables, rays [size, size]): the ball with only the grid cells near it occupied, seen from
  (0, 0, -2) by an image spanning the box's far face (some rays pass far from the ball)."""
  resolution = 16
  model = models.OccupancyGridNeRF(field=field or _BallField(), scene_box=BOX, step_size=0.02,
                                   grid_resolution=resolution, march_samples_per_ray=400.0,
                                   render_samples_per_ray=400.0, **{**RENDER_AS_TRAINING, **settings})
  variables = jax.jit(model.init)(jax.random.key(0), None, _rays(2), jnp.ones(3))

  @jax.jit
  def cells_near_ball(key):
    centres = occupancy.random_points_in_cells(key, jnp.arange(resolution**3), BOX, resolution)
    return jnp.linalg.norm(centres - jnp.array([0.2, -0.3, 2.1]), axis=-1) < 0.5 + 0.4  # Cell diagonal: 0.375.

  near_ball = cells_near_ball(jax.random.key(0))
  variables = {**variables, 'occupancy': {**variables['occupancy'], 'occupied': near_ball}}
  x, y = np.meshgrid(np.linspace(-0.95, 0.95, size), np.linspace(-1.9, 1.9, size))
  targets = np.stack([x, y, np.full((size, size), 4.0)], -1).astype(np.float32)
  directions = (targets - [0.0, 0.0, -2.0]) / 6.0
  rays = Rays(jnp.broadcast_to(jnp.array([0.0, 0.0, -2.0]), directions.shape), jnp.asarray(directions),
              jnp.asarray(directions / np.linalg.norm(directions, axis=-1, keepdims=True)),
              jnp.full((size, size, 1), 1.0), jnp.full((size, size, 1), 8.0), jnp.full((size, size, 1), 1e-3),
              jnp.full((size, size, 1), ANY_CAMERA, jnp.int32))
  return model, variables, rays


def test_image_renderer_gives_rays_through_empty_cells_the_background_without_rendering_them():
  model, variables, rays = _ball_in_its_cells()
  mesh = parallel.make_mesh()
  rendered_rays = []
  with_probe = _image_steps(model, mesh, probe=True)
  counting = with_probe._replace(render_rays=lambda v, r: rendered_rays.append(1) or with_probe.render_rays(v, r))
  told = []
  probed = next(chunked.render_images(counting, variables, [rays], 16, on_rays=told.append))
  plain = chunked.render_image(_image_steps(model, mesh, probe=False), variables, rays, 16)
  chex.assert_trees_all_close(probed, plain, atol=1e-6)  # The same image, depth included...
  samples = _occupied_steps(model, variables, jax.tree.map(lambda x: x.reshape(100, -1), rays))['samples']
  empty = np.asarray(samples) == 0
  assert 10 < empty.sum() < 90, empty.sum()
  np.testing.assert_array_equal(np.asarray(plain['acc']).reshape(-1)[empty], 0.0)
  assert len(rendered_rays) == -(-int((~empty).sum()) // 16) < -(-100 // 16)  # ...from fewer chunks.
  chunks = len(rendered_rays)  # Progress: the background rays once probed, then each chunk's.
  assert told == [empty.sum()] + [16] * (chunks - 1) + [(~empty).sum() - 16 * (chunks - 1)]


@pytest.mark.device
def test_image_renderer_in_rounds_gives_the_one_call_image_and_stops_where_light_runs_out(monkeypatch):
  """Rendering in rounds of a few steps per ray, each resumed where light still arrives (on the two devices'
  groups), gives the image of rendering each ray in one call, depth included; it evaluates none of the steps
  behind the opaque ball, and rounds that overflow their buffer (smaller than the host was told) run again.
  (A field's second pass, where it has one, takes the same path in rounds as in one call: see
  test_occupancy_grid_nerf_matches_dense_marching.)"""
  model, variables, rays = _ball_in_its_cells(size=12, eval_steps_per_round=4)
  mesh = parallel.make_mesh()
  one_call = chunked.render_image(_image_steps(model, mesh, probe=True), variables, rays, 16)
  monkeypatch.setattr(chunked, '_MIN_ROUND_CALLS', 0)  # Rounds, however few the image's steps.
  in_rounds = _image_steps(model, mesh, probe=True, rounds=True)
  evaluated, calls = [], []

  def counting_round(variables, chunk, state):
    result = in_rounds.render_round(variables, chunk, state)
    # (Padding rays and rounds that overflowed evaluate nothing: their `remaining` stays.)
    evaluated.append(int(np.sum(np.asarray(state['remaining']) - np.asarray(result['remaining']))))
    calls.append(bool(np.all(result['complete'])))
    return result

  rounds_image = chunked.render_image(in_rounds._replace(render_round=counting_round), variables, rays, 16)
  chex.assert_trees_all_close(rounds_image, one_call, atol=2e-5)
  flat = jax.tree.map(lambda x: x.reshape(144, -1), rays)
  occupied = int(np.sum(_occupied_steps(model, variables, flat)['samples']))
  # An opaque ray (the light below 1e-3 within the ball) has at least the occupied cells behind the ball
  # (0.4 deep: 20 steps) past where its light runs out, less a round of 4 steps begun before.
  opaque = int(np.sum(np.asarray(one_call['acc']) > 0.999))
  assert opaque > 10 and occupied - sum(evaluated) > 15 * opaque, (opaque, sum(evaluated), occupied)
  assert len(calls) > 5 and all(calls)

  small_buffers = _WithRoundBuffersOfOneRay(**{f.name: getattr(model, f.name) for f in dataclasses.fields(model)
                                              if f.name not in ('parent', 'name')})
  in_rounds = in_rounds._replace(render_round=jax.jit(steps.make_render_round(small_buffers, jnp.ones(3),
                                                                              mesh.size)))
  calls.clear()
  chex.assert_trees_all_close(chunked.render_image(in_rounds._replace(render_round=counting_round), variables,
                                                   rays, 16), one_call, atol=2e-5)
  assert not all(calls)


@pytest.mark.device
def test_image_renderer_in_rounds_ends_on_an_untrained_grid_and_counts_progress_in_rays(monkeypatch):
  """An untrained grid (every cell occupied: sweeps, time budgets and prune make such models) leaves the
  rays that miss the ball transparent to the box's far side. They end where they leave the box even when
  the probe counted a step more than the rounds find (another compiled march can round a step at a cell's
  edge differently: lego_ngp early in training then rendered for ever), within a bounded number of calls,
  and the image is the one-call image. The progress told to `on_rays` moves call after call and sums to
  the image's rays."""
  model, variables, rays = _ball_in_its_cells(size=12, eval_steps_per_round=4)
  untrained = {**variables, 'occupancy': {**variables['occupancy'],
                                          'occupied': jnp.ones_like(variables['occupancy']['occupied'])}}
  mesh = parallel.make_mesh()
  one_call = chunked.render_image(_image_steps(model, mesh, probe=True), untrained, rays, 16)
  monkeypatch.setattr(chunked, '_MIN_ROUND_CALLS', 0)
  in_rounds = _image_steps(model, mesh, probe=True, rounds=True)
  # Every ray leaves the box within its longest chord's steps; all 144 rays fit one call.
  max_calls = -(-marching.num_steps_for(float(np.linalg.norm(np.subtract(BOX[3:], BOX[:3]))), 0.02) // 4) + 1
  calls, told = [], []

  def probe_counting_one_more(variables, chunk):
    probed = in_rounds.probe_rays(variables, chunk)
    return {**probed, 'remaining': probed['remaining'] + (probed['samples'] > 0)}

  def bounded_round(variables, chunk, state):
    calls.append(1)
    assert len(calls) <= max_calls, 'rays never end'
    return in_rounds.render_round(variables, chunk, state)

  counting = in_rounds._replace(probe_rays=probe_counting_one_more, render_round=bounded_round)
  image = next(chunked.render_images(counting, untrained, [rays], 16,
                                     on_rays=lambda n: told.append((len(calls), n))))
  chex.assert_trees_all_close(image, one_call, atol=2e-5)
  assert 0.1 < float(np.mean(one_call['acc'] < 0.01)) < 0.9  # Rays through the ball, and transparent ones.
  assert len(calls) > 10
  assert sum(n for _, n in told) == 144
  assert len({call for call, _ in told}) > len(calls) // 2  # Told at most calls, not only at the end.


class _WithRoundBuffersOfOneRay(models.OccupancyGridNeRF):
  """Rounds with buffers of one ray's window, however many rays the host fills them with."""

  def round_capacity(self, num_rays: int) -> int:
    return self.eval_steps_per_round


def test_occupancy_grid_nerf_marches_along_directions_not_viewdirs():
  """NDC rays keep the world's view directions in `viewdirs`, apart from their `directions`: samples must
  follow the directions (density, opacity and depth do not depend on viewdirs)."""
  rays = _rays(64)
  model = models.OccupancyGridNeRF(field=_BallField(), scene_box=BOX, grid_resolution=16, step_size=0.02,
                                   march_samples_per_ray=400.0, render_samples_per_ray=400.0, **RENDER_AS_TRAINING)
  variables = jax.jit(model.init)(jax.random.key(0), None, rays, jnp.ones(3))
  other = rays._replace(viewdirs=jnp.broadcast_to(jnp.array([0.6, 0.0, -0.8]), rays.viewdirs.shape))
  render = jax.jit(lambda r: model.apply(variables, None, r, jnp.ones(3))[0])
  expected, actual = render(rays), render(other)
  assert 10 < int(jnp.sum(expected.acc > 0.5)) < 60
  np.testing.assert_allclose(actual.acc, expected.acc, atol=1e-5)
  np.testing.assert_allclose(actual.depth, expected.depth, rtol=1e-5)
