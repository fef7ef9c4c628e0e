"""Tests of sampling inside a scene box: camera.clip_to_box against dense marching along each ray, NeRF's
scene_box (samples only inside the box, background elsewhere), and models.trunc_exp."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxnerf import models
from jaxnerf.ops import camera
from jaxnerf.ops.camera import ANY_CAMERA
from jaxnerf.ops.camera import Rays

BOX = (-1.0, -0.5, 0.0, 1.0, 1.5, 0.8)
BOX_MIN, BOX_MAX = np.array(BOX[:3]), np.array(BOX[3:])

_clip = jax.jit(camera.clip_to_box, static_argnums=4)


def _marched_hull(origin, direction, near, far, box_min, box_max, num_steps=4001):
  """t in [near, far] (a grid of num_steps) where the point is inside the box: (first, last), or None."""
  t = np.linspace(near, far, num_steps)
  points = origin + t[:, None] * direction
  inside = np.all((points >= box_min) & (points <= box_max), axis=-1)
  return (t[inside][0], t[inside][-1]) if inside.any() else None


def _check_against_marching(origins, directions, near, far):
  """The clipped segment holds every marched t inside a slightly shrunk box and lies within the marched
  hull of a slightly grown box (robust to rays that graze the box); misses are exactly (far, far)."""
  new_near, new_far = (np.asarray(a) for a in _clip(jnp.asarray(origins, jnp.float32),
                                                     jnp.asarray(directions, jnp.float32),
                                                     jnp.asarray(near, jnp.float32),
                                                     jnp.asarray(far, jnp.float32), BOX))
  chex.assert_shape([new_near, new_far], near.shape)
  eps = 1e-3
  outcomes = []
  for index in np.ndindex(origins.shape[:-1]):
    o, d, n, f = origins[index], directions[index], near[index][0], far[index][0]
    got_near, got_far = new_near[index][0], new_far[index][0]
    step = (f - n) / 4000
    strict = _marched_hull(o, d, n, f, BOX_MIN + eps, BOX_MAX - eps)
    loose = _marched_hull(o, d, n, f, BOX_MIN - eps, BOX_MAX + eps)
    assert n - 1e-5 <= got_near <= got_far <= f + 1e-5, (index, got_near, got_far)
    if got_near == got_far:  # A miss.
      assert got_near == np.float32(f), index
      assert strict is None, (index, strict)
      outcomes.append('miss')
    else:
      assert loose is not None, index
      tol = step + 1e-4
      assert loose[0] - tol <= got_near and got_far <= loose[1] + tol, (index, loose, got_near, got_far)
      if strict is not None:
        assert got_near <= strict[0] + tol and strict[1] - tol <= got_far, (index, strict, got_near, got_far)
      outcomes.append('hit')
  return outcomes


def _random_directions(rng, count):
  d = rng.normal(size=(count, 3))
  return d / np.linalg.norm(d, axis=-1, keepdims=True) * rng.uniform(0.5, 2.0, (count, 1))  # Not unit length.


def test_clip_to_box_matches_marching_random_rays():
  rng = np.random.default_rng(0)
  center, half = (BOX_MIN + BOX_MAX) / 2, (BOX_MAX - BOX_MIN) / 2
  # From outside towards a point well inside: hits.
  unit = rng.normal(size=(20, 3))
  start = center + 3.0 * unit / np.linalg.norm(unit, axis=-1, keepdims=True)
  target = center + rng.uniform(-0.8, 0.8, (20, 3)) * half
  towards = (target - start) / np.linalg.norm(target - start, axis=-1, keepdims=True) * rng.uniform(0.5, 2, (20, 1))
  # Starting inside the box, any direction: hits from t = near = 0.
  inside = center + rng.uniform(-0.9, 0.9, (20, 3)) * half
  # From outside, pointing away from the box: misses.
  away = -towards
  # Anywhere, any direction: a mix.
  anywhere = rng.uniform(-3.0, 3.0, (40, 3))
  origins = np.concatenate([start, inside, start, anywhere])
  directions = np.concatenate([towards, _random_directions(rng, 20), away, _random_directions(rng, 40)])
  near = np.zeros((100, 1))
  far = np.full((100, 1), 12.0)  # Reaches past the box along every ray that points at it.
  outcomes = _check_against_marching(origins.reshape(2, 50, 3), directions.reshape(2, 50, 3),
                                     near.reshape(2, 50, 1), far.reshape(2, 50, 1))
  assert outcomes[:40] == ['hit'] * 40
  assert outcomes[40:60] == ['miss'] * 20
  assert 'hit' in outcomes[60:] and 'miss' in outcomes[60:]
  # Rays starting inside enter at near exactly.
  new_near, new_far = _clip(jnp.asarray(inside, jnp.float32), jnp.asarray(directions[20:40], jnp.float32),
                            jnp.zeros((20, 1)), jnp.full((20, 1), 12.0), BOX)
  np.testing.assert_array_equal(new_near, 0.0)
  assert np.all(new_far < 12.0)  # And leave the box before far.


def test_clip_to_box_axis_parallel_rays():
  origins = np.array([
      [-3.0, 0.2, 0.1],  # Along +x through the box: enters at x = -1 (t = 2), leaves at x = 1 (t = 4).
      [0.5, 3.0, 0.4],  # Along -y, direction length 2: y = 1.5 at t = 0.75, y = -0.5 at t = 1.75.
      [-3.0, 2.0, 0.1],  # Along +x but outside the y slab: misses.
      [0.0, 0.0, 0.4],  # Inside, along +z: leaves at z = 0.8, t = 0.4.
      [0.9, 1.4, -2.0],  # Diagonal in x-z (zero y component), inside the y slab.
      [1.5, 0.0, 0.4],  # Along -z outside the x slab: misses.
      [1.0, 0.2, -3.0],  # In the plane of the x_max face, along +z: z = 0 at t = 3, z = 0.8 at t = 3.8.
      [-1.0, 0.2, -3.0],  # The same in the plane of the x_min face: both faces belong to the box.
      [0.3, 1.5, -1.0],  # In the plane of the y_max face, along +z with length 2: t in [0.5, 0.9].
  ])
  directions = np.array([
      [1.0, 0.0, 0.0],
      [0.0, -2.0, 0.0],
      [1.0, 0.0, 0.0],
      [0.0, -0.0, 1.0],
      [-0.6, 0.0, 0.8],
      [0.0, 0.0, -1.0],
      [0.0, 0.0, 1.0],
      [-0.0, 0.0, 1.0],
      [0.0, 0.0, 2.0],
  ])
  near, far = np.zeros((9, 1)), np.full((9, 1), 10.0)
  outcomes = _check_against_marching(origins, directions, near, far)
  assert outcomes == ['hit', 'hit', 'miss', 'hit', 'hit', 'miss', 'hit', 'hit', 'hit']
  new_near, new_far = _clip(jnp.asarray(origins, jnp.float32), jnp.asarray(directions, jnp.float32),
                            jnp.asarray(near, jnp.float32), jnp.asarray(far, jnp.float32), BOX)
  # Closed forms; the diagonal ray enters at z = 0 (t = 2.5) and leaves at x = -1 (t = 1.9 / 0.6), before
  # reaching z = 0.8 (t = 3.5).
  np.testing.assert_allclose(new_near[:, 0], [2.0, 0.75, 10.0, 0.0, 2.5, 10.0, 3.0, 3.0, 0.5], atol=1e-6)
  np.testing.assert_allclose(new_far[:, 0], [4.0, 1.75, 10.0, 0.4, 1.9 / 0.6, 10.0, 3.8, 3.8, 0.9], atol=1e-6)
  chex.assert_tree_all_finite((new_near, new_far))


def test_clip_to_box_respects_near_and_far():
  # Along +x through the box: inside for t in [2, 4].
  origins = np.tile([[-3.0, 0.2, 0.1]], (5, 1))
  directions = np.tile([[1.0, 0.0, 0.0]], (5, 1))
  near = np.array([[2.5], [0.0], [2.5], [4.5], [0.0]])
  far = np.array([[10.0], [3.0], [3.5], [6.0], [1.5]])
  outcomes = _check_against_marching(origins, directions, near, far)
  assert outcomes == ['hit', 'hit', 'hit', 'miss', 'miss']  # Box before near; box beyond far.
  new_near, new_far = _clip(jnp.asarray(origins, jnp.float32), jnp.asarray(directions, jnp.float32),
                            jnp.asarray(near, jnp.float32), jnp.asarray(far, jnp.float32), BOX)
  # Cut by near / far: those bounds come back exactly.
  np.testing.assert_array_equal(new_near[:, 0], [2.5, 2.0, 2.5, 6.0, 1.5])
  np.testing.assert_array_equal(new_far[:, 0], [4.0, 3.0, 3.5, 6.0, 1.5])


class _ConstantField(nn.Module):
  """Dense and coloured everywhere; records the points it was asked about."""

  raw_rgb: tuple = (2.0, -1.0, 0.5)
  raw_density: float = 1e3
  density_activation: str = 'relu'

  @nn.compact
  def __call__(self, samples, rng=None):
    points = samples.points()
    self.sow('intermediates', 'points', points)
    rgb = nn.sigmoid(jnp.broadcast_to(jnp.asarray(self.raw_rgb, jnp.float32), points.shape))
    raw_density = jnp.full(points.shape[:-1], self.raw_density, jnp.float32)
    return models.FieldOutputs(models.density_activation(self.density_activation)(raw_density), rgb)


def _rays(origins, directions, near, far):
  origins, directions = jnp.asarray(origins, jnp.float32), jnp.asarray(directions, jnp.float32)
  viewdirs = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
  return Rays(origins, directions, viewdirs, jnp.full(origins.shape[:-1] + (1,), near, jnp.float32),
              jnp.full(origins.shape[:-1] + (1,), far, jnp.float32), jnp.full(origins.shape[:-1] + (1,), 1e-3),
              jnp.full(origins.shape[:-1] + (1,), ANY_CAMERA, jnp.int32))


@pytest.mark.parametrize('stochastic', [False, True])
def test_nerf_with_scene_box_renders_only_inside_it(stochastic):
  model = models.NeRF(coarse_field=_ConstantField(), fine_field=_ConstantField(), num_coarse_samples=16,
                      num_fine_samples=16, scene_box=BOX)
  rng = np.random.default_rng(1)
  center, half = (BOX_MIN + BOX_MAX) / 2, (BOX_MAX - BOX_MIN) / 2
  start = center + 4.0 * _random_directions(rng, 8)
  target = center + rng.uniform(-0.8, 0.8, (8, 3)) * half
  origins = np.concatenate([start, start, [[-3.0, 0.2, 0.1], [-3.0, 0.2, 0.1]]])
  directions = np.concatenate([target - start, start - target,  # Hits, then misses pointing away.
                               [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # A hit; a miss parallel to the box.
  hit = np.array([True] * 8 + [False] * 8 + [True, False])
  rays = _rays(origins, directions, 0.0, 8.0)
  background = jnp.array([0.1, 0.2, 0.9])
  key = jax.random.PRNGKey(2) if stochastic else None
  renderings, state = jax.jit(lambda r: model.apply({}, key, r, background, mutable=['intermediates']))(rays)
  near, far = (np.asarray(a)[:, 0] for a in _clip(rays.origins, rays.directions, rays.near, rays.far, BOX))
  assert np.all(near[hit] < far[hit]) and np.all(near[~hit] == 8.0) and np.all(far[~hit] == 8.0)
  opaque = 1.0 / (1.0 + np.exp(-np.array(_ConstantField.raw_rgb)))
  for level, rendered in enumerate(renderings):
    np.testing.assert_allclose(rendered.rgb[hit], np.broadcast_to(opaque, (hit.sum(), 3)), atol=1e-5)
    np.testing.assert_allclose(rendered.acc[hit], 1.0, atol=1e-5)
    # Rays that miss see the background: their samples all sit at `far`, outside the box, where the
    # density is masked to zero (the field says 1e3 there).
    np.testing.assert_allclose(rendered.rgb[~hit], np.broadcast_to(background, ((~hit).sum(), 3)), atol=1e-6)
    np.testing.assert_array_equal(rendered.acc[~hit], 0.0)
    # Opaque from the first sample on: the depth is the entry point, within one coarse bin.
    depth = np.asarray(rendered.depth)
    bin_width = (far - near) / 16
    assert np.all(depth[hit] >= near[hit] - 1e-5), level
    assert np.all(depth[hit] <= near[hit] + bin_width[hit] + 1e-5), level
  for level, name in enumerate(['coarse_field', 'fine_field']):
    (points,) = state['intermediates'][name]['points']
    points = np.asarray(points)
    chex.assert_shape(points, (18, 16 if level == 0 else 32, 3))
    # Every sample of a ray that hits lies in the box (up to float32 rounding of o + t d).
    assert np.all(points[hit] >= BOX_MIN - 1e-5) and np.all(points[hit] <= BOX_MAX + 1e-5), level
    # Every sample of a ray that misses is its far point, outside the box.
    expected = origins[~hit] + 8.0 * directions[~hit]
    np.testing.assert_allclose(points[~hit], np.broadcast_to(expected[:, None], points[~hit].shape), atol=1e-5)
    assert not np.any(np.all((expected >= BOX_MIN) & (expected <= BOX_MAX), axis=-1))


def test_nerf_without_scene_box_samples_the_full_range():
  # The control for the test above: without the box, the same rays are opaque from near on.
  model = models.NeRF(coarse_field=_ConstantField(), fine_field=None, num_coarse_samples=16)
  rays = _rays([[-3.0, 0.2, 0.1], [-3.0, 0.2, 0.1]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], 0.0, 8.0)
  (rendered,) = jax.jit(lambda r: model.apply({}, None, r, jnp.zeros(3)))(rays)
  np.testing.assert_allclose(rendered.acc, 1.0, atol=1e-6)
  assert np.all(rendered.depth < 0.5 + 1e-5)  # First bin centre: 8 / 16 / 2 = 0.25.


def test_trunc_exp():
  x = jnp.array([-30.0, -1.0, 0.0, 1.0, 10.0, 14.9, 15.0, 15.1, 20.0, 80.0, 100.0])
  value = jax.jit(models.trunc_exp)(x)
  np.testing.assert_allclose(value, jnp.exp(x), rtol=1e-6)
  assert np.isinf(value[-1])  # exp(100) overflows float32 in the forward pass (documented).
  grad = jax.jit(jax.vmap(jax.grad(models.trunc_exp)))(x)
  chex.assert_tree_all_finite(grad)
  expected = np.exp(np.minimum(np.asarray(x, np.float64), 15.0))
  np.testing.assert_allclose(grad, expected, rtol=1e-6)
  assert not np.allclose(grad[-4:], np.exp(np.asarray(x[-4:], np.float64)), rtol=1e-3)  # Truncated above 15.
  # Forward mode agrees, and the gradient flows through a composition (chain rule applies the truncation).
  _, tangent = jax.jvp(models.trunc_exp, (x,), (jnp.full_like(x, 2.0),))
  np.testing.assert_allclose(tangent, 2.0 * expected, rtol=1e-6)
  grad_composed = jax.grad(lambda y: jnp.sum(models.trunc_exp(3.0 * y)))(jnp.array([1.0, 10.0]))
  np.testing.assert_allclose(grad_composed, 3.0 * np.exp([3.0, 15.0]), rtol=1e-6)
  # The config name 'trunc_exp' selects this activation: its gradient is truncated too.
  activation = models.density_activation('trunc_exp')
  np.testing.assert_allclose(jax.vmap(jax.grad(activation))(x), expected, rtol=1e-6)


@pytest.mark.parametrize('name', ['nerf', 'occupancy_grid'])
def test_unknown_density_activation_is_a_config_error(name):
  config = default.get_config().model
  config.update(name=name, field='hash_grid', density_activation='exp')
  with pytest.raises(models.ConfigError, match=r"config.model.density_activation must be one of .*'exp'"):
    models.make_model(config, (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))


def test_thin_medium_in_a_box_stays_transparent_up_to_the_box_exit():
  """A homogeneous thin medium fills the box: the opacity is 1 - exp(-sigma |d| L'), where L' runs from the
  first sample (half a bin past the entry) to the box's exit. With the paper's 1e10 last interval the
  last sample would make every such ray opaque and hide the background."""
  raw_density = -2.0  # trunc_exp: sigma = exp(-2).
  model = models.NeRF(coarse_field=_ConstantField(raw_density=raw_density, density_activation='trunc_exp'),
                      fine_field=None, num_coarse_samples=32, scene_box=BOX)
  rays = _rays([[-3.0, 0.2, 0.1]], [[2.0, 0.0, 0.0]], 0.0, 8.0)  # Along x with |d| = 2.
  (rendered,) = jax.jit(lambda r: model.apply({}, None, r, jnp.zeros(3)))(rays)
  near, far = (float(np.asarray(a)[0, 0]) for a in _clip(rays.origins, rays.directions, rays.near, rays.far,
                                                         BOX))
  half_bin = (far - near) / 32 / 2
  expected = 1.0 - np.exp(-np.exp(raw_density) * 2.0 * (far - near - half_bin))
  np.testing.assert_allclose(rendered.acc, [expected], rtol=1e-5)
  assert 0.05 < expected < 0.95
