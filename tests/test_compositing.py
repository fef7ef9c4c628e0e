"""Tests of jaxnerf.ops.compositing: volume rendering against closed forms, a brute-force Eq. 3 and extremes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import compositing

pytestmark = pytest.mark.device  # Numerics that GPUs compute their own way (benchmarks/gpu_check.py).

_render = jax.jit(compositing.volume_render, static_argnums=(5,))
_weights = jax.jit(compositing.compute_weights)


def _brute_force_weights(density, delta):
  """NeRF Eq. 3, one sample at a time: w_i = T_i alpha_i with T_i = prod_{j<i} (1 - alpha_j), float64."""
  w = np.zeros(np.shape(density))
  for index in np.ndindex(np.shape(density)[:-1]):
    transmittance = 1.0
    for i in range(np.shape(density)[-1]):
      alpha = 1.0 - np.exp(-float(density[index][i]) * float(delta[index][i]))
      w[index][i] = transmittance * alpha
      transmittance *= 1.0 - alpha
  return w


def test_sample_deltas_by_hand():
  t = jnp.array([[1.0, 2.0, 4.0]])
  directions = jnp.array([[0.0, 3.0, 4.0]])  # Norm 5.
  np.testing.assert_allclose(compositing.sample_deltas(t, directions), [[5.0, 10.0, 5e10]], rtol=1e-6)
  np.testing.assert_allclose(compositing.sample_deltas(t, directions, far_delta=0.5), [[5.0, 10.0, 2.5]],
                             rtol=1e-6)


def test_sample_deltas_scale_with_direction_norm():
  rng = np.random.default_rng(0)
  t = np.sort(rng.uniform(1.0, 5.0, (4, 3, 9)), axis=-1).astype(np.float32)
  directions = rng.normal(size=(4, 3, 3)).astype(np.float32)
  scale = rng.uniform(0.1, 10.0, (4, 3, 1)).astype(np.float32)
  base = compositing.sample_deltas(t, directions)
  chex.assert_shape(base, (4, 3, 9))
  np.testing.assert_allclose(compositing.sample_deltas(t, directions * scale), base * scale, rtol=1e-5)
  unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
  np.testing.assert_allclose(compositing.sample_deltas(t, unit)[..., :-1], np.diff(t, axis=-1), rtol=1e-5)


@pytest.mark.parametrize('sigma', [0.05, 0.7, 3.0])
def test_homogeneous_medium_closed_form(sigma):
  # Density sigma on [a, b] along a direction of norm 2; none at the last sample so nothing lies past b.
  a, b, n = 1.0, 3.0, 257
  direction = np.array([[0.0, 1.2, -1.6]], np.float32)  # Norm 2.
  t = np.linspace(a, b, n, dtype=np.float32)[None]
  density = np.full((1, n), sigma, np.float32)
  density[:, -1] = 0.0
  colour, background = np.array([0.2, 0.5, 0.9], np.float32), np.array([1.0, 0.25, 0.0], np.float32)
  rgb = np.broadcast_to(colour, (1, n, 3))
  out = _render(rgb, density, t, direction, background, compositing.FAR_DELTA)
  opacity = 1.0 - np.exp(-sigma * (b - a) * 2.0)
  np.testing.assert_allclose(out.acc, [opacity], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.rgb[0], colour * opacity + background * (1 - opacity), atol=1e-5)
  # Expected termination depth of a truncated exponential (rate lambda = 2 sigma per unit t) on [a, b];
  # each interval's weight sits at its left end, biasing the discrete depth by about -step / 2.
  lam, length, step = 2.0 * sigma, b - a, (b - a) / (n - 1)
  continuous = a + 1 / lam - length * np.exp(-lam * length) / (1 - np.exp(-lam * length))
  np.testing.assert_allclose(out.depth, [continuous - step / 2], atol=step / 10)


def test_homogeneous_medium_with_last_interval_as_far_delta():
  # With far_delta equal to the spacing, the last sample's interval is one more step of the same medium.
  a, b, n, sigma = 0.5, 2.5, 101, 1.3
  step = (b - a) / (n - 1)
  t = np.linspace(a, b, n, dtype=np.float32)[None]
  density = np.full((1, n), sigma, np.float32)
  out = _render(np.ones((1, n, 3), np.float32), density, t, np.array([[0.0, 0.0, -1.0]], np.float32),
                np.zeros(3, np.float32), step)
  opacity = 1.0 - np.exp(-sigma * (b - a + step))
  np.testing.assert_allclose(out.acc, [opacity], rtol=1e-5)
  np.testing.assert_allclose(out.rgb[0], [opacity] * 3, rtol=1e-5)
  # With the default far_delta the last sample is opaque: the ray always terminates.
  out = _render(np.ones((1, n, 3), np.float32), density, t, np.array([[0.0, 0.0, -1.0]], np.float32),
                np.zeros(3, np.float32), compositing.FAR_DELTA)
  np.testing.assert_allclose(out.acc, [1.0], rtol=1e-6)
  np.testing.assert_allclose(out.w[0, -1], np.exp(-sigma * (b - a)), rtol=1e-4)


def test_zero_density_gives_background():
  rng = np.random.default_rng(1)
  t = np.sort(rng.uniform(2.0, 6.0, (5, 12)), axis=-1).astype(np.float32)
  rgb = rng.uniform(size=(5, 12, 3)).astype(np.float32)
  background = rng.uniform(size=(5, 3)).astype(np.float32)
  directions = rng.normal(size=(5, 3)).astype(np.float32)
  out = _render(rgb, np.zeros((5, 12), np.float32), t, directions, background, compositing.FAR_DELTA)
  chex.assert_shape([out.rgb, out.depth, out.acc, out.w], [(5, 3), (5,), (5,), (5, 12)])
  np.testing.assert_array_equal(out.w, 0.0)
  np.testing.assert_array_equal(out.acc, 0.0)
  np.testing.assert_array_equal(out.rgb, background)
  np.testing.assert_array_equal(out.depth, t[:, -1])  # Documented: t_last where acc is 0.


@pytest.mark.parametrize('k', [0, 3, 7])
def test_single_opaque_sample(k):
  rng = np.random.default_rng(2)
  t = np.sort(rng.uniform(1.0, 4.0, (3, 8)), axis=-1).astype(np.float32)
  rgb = rng.uniform(size=(3, 8, 3)).astype(np.float32)
  density = np.zeros((3, 8), np.float32)
  density[:, k] = 1e6  # Opaque over any of these intervals (k = 7 uses far_delta).
  directions = rng.normal(size=(3, 3)).astype(np.float32)
  out = _render(rgb, density, t, directions, np.array([1.0, 0.0, 1.0], np.float32), compositing.FAR_DELTA)
  np.testing.assert_allclose(out.w, np.eye(8)[k][None].repeat(3, 0), atol=1e-6)
  np.testing.assert_allclose(out.acc, 1.0, rtol=1e-6)
  np.testing.assert_allclose(out.depth, t[:, k], rtol=1e-6)
  np.testing.assert_allclose(out.rgb, rgb[:, k], atol=1e-6)


def test_sample_behind_an_opaque_one_is_hidden():
  t = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
  density = np.array([[0.0, 1e4, 1e4, 1e4]], np.float32)
  rgb = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float32)
  out = _render(rgb, density, t, np.array([[1.0, 0.0, 0.0]], np.float32), np.zeros(3, np.float32),
                compositing.FAR_DELTA)
  np.testing.assert_allclose(out.rgb, [[1.0, 0.0, 0.0]], atol=1e-6)
  np.testing.assert_allclose(out.depth, [2.0], rtol=1e-6)


@pytest.mark.parametrize('end', [0, -1])
def test_depth_within_sample_range_exactly(end):
  # All the weight on an end sample: sum(w * t) / acc rounds to either side of t_end; depth must not leave
  # [t_first, t_last] (documented clip).
  rng = np.random.default_rng(10)
  t = np.sort(rng.uniform(0.5, 5.0, (500, 4)), axis=-1).astype(np.float32)
  density = np.zeros((500, 4), np.float32)
  density[:, end] = rng.uniform(0.01, 3.0, 500) * (1.0 if end == 0 else 1e-10)
  directions = rng.normal(size=(500, 3)).astype(np.float32)
  out = _render(np.zeros((500, 4, 3), np.float32), density, t, directions, np.zeros(3, np.float32),
                compositing.FAR_DELTA)
  assert np.all(out.acc > 1e-8)
  assert np.all(out.depth >= t[:, 0]) and np.all(out.depth <= t[:, -1])
  np.testing.assert_allclose(out.depth, t[:, end], rtol=1e-6)


def test_weights_match_brute_force_eq3():
  rng = np.random.default_rng(3)
  density = rng.exponential(2.0, (4, 3, 16)) * (rng.uniform(size=(4, 3, 16)) > 0.3)
  delta = rng.uniform(0.01, 0.5, (4, 3, 16))
  delta[..., -1] = 1e10
  actual = _weights(density.astype(np.float32), delta.astype(np.float32))
  chex.assert_shape(actual, (4, 3, 16))
  np.testing.assert_allclose(actual, _brute_force_weights(density, delta), rtol=2e-5, atol=1e-6)


def test_volume_render_matches_brute_force():
  rng = np.random.default_rng(4)
  n = 10
  t = np.sort(rng.uniform(0.5, 3.0, (2, 3, n)), axis=-1)
  density = rng.exponential(1.0, (2, 3, n))
  rgb = rng.uniform(size=(2, 3, n, 3))
  directions = rng.normal(size=(2, 3, 3))
  background = np.array([0.3, 0.6, 0.9])
  out = _render(*(x.astype(np.float32) for x in (rgb, density, t, directions, background)), 1e10)
  delta = np.concatenate([np.diff(t, axis=-1), np.full((2, 3, 1), 1e10)], axis=-1)
  w = _brute_force_weights(density, delta * np.linalg.norm(directions, axis=-1, keepdims=True))
  acc = w.sum(-1)
  np.testing.assert_allclose(out.w, w, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(out.acc, acc, rtol=1e-5)
  np.testing.assert_allclose(out.rgb, np.sum(w[..., None] * rgb, -2) + (1 - acc[..., None]) * background,
                             rtol=1e-5)
  np.testing.assert_allclose(out.depth, np.sum(w * t, -1) / acc, rtol=1e-5)


def _extreme_inputs(seed, num_rays=64, n=24):
  rng = np.random.default_rng(seed)
  levels = np.array([0.0, 1e-8, 1e-4, 1e-2, 1.0, 1e2, 1e4, 1e8])
  density = rng.choice(levels, (num_rays, n))
  density[: len(levels)] = levels[:, None]  # Every ray of constant density, too.
  # t from 1e-3 to 1e3: log-spaced, linearly spaced and clustered.
  t = np.sort(10.0 ** rng.uniform(-3, 3, (num_rays, n)), axis=-1)
  t[-1] = np.geomspace(1e-3, 1e3, n)
  t[-2] = np.linspace(1e-3, 1e3, n)
  t[-3] = 1e-3 + 1e-3 * np.arange(n)
  directions = rng.normal(size=(num_rays, 3)) * 10.0 ** rng.uniform(-2, 2, (num_rays, 1))
  rgb = rng.uniform(size=(num_rays, n, 3))
  return tuple(x.astype(np.float32) for x in (rgb, density, t, directions))


@pytest.mark.parametrize('seed', [5, 6])
def test_extreme_inputs_finite_and_bounded(seed):
  rgb, density, t, directions = _extreme_inputs(seed)
  background = np.array([1.0, 1.0, 1.0], np.float32)
  out = _render(rgb, density, t, directions, background, compositing.FAR_DELTA)
  chex.assert_tree_all_finite(out)
  w, acc = np.asarray(out.w), np.asarray(out.acc)
  assert np.all(w >= 0)
  assert np.all(acc <= 1 + 1e-6) and np.all(acc >= 0)
  assert np.all(out.rgb >= -1e-6) and np.all(out.rgb <= 1 + 1e-6)  # Convex combination of [0, 1] colours.
  assert np.all(out.depth >= t[:, 0]) and np.all(out.depth <= t[:, -1])
  # Brute force agrees even here (float64 reference).
  delta = np.asarray(compositing.sample_deltas(t, directions), np.float64)
  np.testing.assert_allclose(w, _brute_force_weights(density.astype(np.float64), delta), rtol=1e-3, atol=1e-6)


@jax.jit
def _render_gradients(rgb, density, t, directions):
  def loss(rgb, density):
    out = compositing.volume_render(rgb, density, t, directions, jnp.ones(3))
    return jnp.sum(out.rgb) + jnp.sum(out.depth) + jnp.sum(out.acc) + jnp.sum(out.w ** 2)

  return jax.grad(loss, argnums=(0, 1))(rgb, density)


@pytest.mark.parametrize('seed', [7, 8])
def test_extreme_inputs_finite_gradients(seed):
  rgb, density, t, directions = _extreme_inputs(seed)
  g_rgb, g_density = _render_gradients(rgb, density, t, directions)
  chex.assert_tree_all_finite((g_rgb, g_density))
  # d rgb / d c_i = w_i: the colour gradient is the weight of each sample in every channel.
  w = _render(rgb, density, t, directions, np.ones(3, np.float32), compositing.FAR_DELTA).w
  g_colour_only = jax.jit(jax.grad(
      lambda c: jnp.sum(compositing.volume_render(c, density, t, directions, 1.0).rgb)))(rgb)
  np.testing.assert_allclose(g_colour_only, np.broadcast_to(np.asarray(w)[..., None], rgb.shape),
                             rtol=1e-5, atol=1e-7)


def test_density_gradient_matches_finite_differences():
  rng = np.random.default_rng(9)
  t = np.sort(rng.uniform(1.0, 2.0, (1, 6)), axis=-1)
  density = rng.uniform(0.1, 3.0, (1, 6))
  rgb = rng.uniform(size=(1, 6, 3))
  directions = np.array([[0.3, -0.4, 1.2]])

  @jax.jit
  def acc_rgb(density):
    out = compositing.volume_render(jnp.asarray(rgb, jnp.float32), density, jnp.asarray(t, jnp.float32),
                                  jnp.asarray(directions, jnp.float32), jnp.zeros(3), far_delta=0.1)
    return jnp.sum(out.rgb * jnp.array([1.0, 2.0, 3.0]))

  grad = jax.grad(acc_rgb)(jnp.asarray(density, jnp.float32))
  h = 1e-2
  for i in range(6):
    e = np.eye(6)[i][None] * h
    numeric = (acc_rgb(jnp.asarray(density + e, jnp.float32)) - acc_rgb(jnp.asarray(density - e, jnp.float32)))
    np.testing.assert_allclose(grad[0, i], numeric / (2 * h), rtol=2e-2, atol=1e-4)


def _frustum_points(rng, direction, t0, t1, radius, num):
  """Points drawn uniformly from the volume of the conical frustum t0 <= t <= t1 (apex at the origin,
  radius * t across at t, measured perpendicular to `direction`)."""
  # The cross-section grows as t^2: draw t by inverting its CDF (t^3 - t0^3) / (t1^3 - t0^3).
  t = np.cbrt(t0**3 + rng.random(num) * (t1**3 - t0**3))
  d = np.asarray(direction, np.float64)
  unit = d / np.linalg.norm(d)
  helper = np.array([1.0, 0.0, 0.0]) if abs(unit[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
  across_1 = np.cross(unit, helper)
  across_1 /= np.linalg.norm(across_1)
  across_2 = np.cross(unit, across_1)
  rho = radius * t * np.sqrt(rng.random(num))  # Uniform over the disc.
  phi = rng.uniform(0, 2 * np.pi, num)
  return (t[:, None] * d + rho[:, None] * (np.cos(phi)[:, None] * across_1 + np.sin(phi)[:, None] * across_2))


@pytest.mark.parametrize('t0, t1, radius', [(2.0, 2.5, 0.01), (0.5, 3.0, 0.2), (0.0, 1.0, 0.5)])
def test_frustum_gaussians_have_the_moments_of_points_sampled_in_the_frustum(t0, t1, radius):
  rng = np.random.default_rng(0)
  direction = np.array([0.3, -0.5, 0.8])  # Not unit length: t is measured along it.
  points = _frustum_points(rng, direction, t0, t1, radius, 1_000_000)
  mean, cov = compositing.conical_frustum_to_gaussian(jnp.asarray(direction, jnp.float32), jnp.array([t0]),
                                                    jnp.array([t1]), jnp.array([radius]), diagonal=False)
  _, cov_diag = compositing.conical_frustum_to_gaussian(jnp.asarray(direction, jnp.float32), jnp.array([t0]),
                                                      jnp.array([t1]), jnp.array([radius]))
  scale = np.linalg.norm(direction) * (t1 - t0) + radius * t1  # The frustum's size.
  np.testing.assert_allclose(mean[0], points.mean(0), atol=3e-3 * scale)
  np.testing.assert_allclose(cov[0], np.cov(points.T), atol=3e-3 * scale**2)
  np.testing.assert_allclose(cov_diag[0], np.diag(cov[0]), rtol=1e-5, atol=1e-9)


def test_frustum_gaussians_stay_finite_with_finite_gradients_at_extreme_distances():
  directions = jnp.array([[0.0, 0.0, 1.0], [1e-3, 2.0, -0.5]])

  def total(t, scale):
    mean, cov = compositing.conical_frustum_to_gaussian(directions, t[..., :-1], t[..., 1:], jnp.full((2, 1), 1e-3))
    return jnp.sum(mean) / scale + jnp.sum(cov) / scale**2, cov

  gradient_and_cov = jax.jit(jax.grad(total, has_aux=True))  # One program for every scale (op by op: ~60).
  for scale in (1e-6, 1.0, 1e6):
    t = scale * jnp.array([[0.0, 1e-7, 1.0, 1.0, 2.0], [1.0, 1.5, 2.0, 2.5, 100.0]])
    gradient, cov = gradient_and_cov(t, scale)
    chex.assert_tree_all_finite(gradient)
    assert np.all(np.asarray(cov) >= -1e-6 * scale**2)


@pytest.mark.parametrize('opaque_last', [False, True])
def test_interval_rendering_matches_the_closed_form_of_a_homogeneous_medium(opaque_last):
  """Intervals of a medium of density sigma from t = 1 to 5 along |d| = 2: opacity 1 - exp(-8 sigma), the
  weights of the intervals as closed-form differences of transmittance, the median where half the opacity
  lies; with opaque_last the last interval takes all the light left, and no background shows."""
  sigma, edges = 0.1, jnp.linspace(1.0, 5.0, 9)[None]
  directions = jnp.array([[0.0, 0.0, 2.0]])
  rgb = jnp.broadcast_to(jnp.array([1.0, 0.5, 0.0]), (1, 8, 3))
  out = compositing.render_intervals(rgb, jnp.full((1, 8), sigma), edges, directions, jnp.zeros(3), opaque_last)
  transmittance = np.exp(-sigma * 2.0 * (np.asarray(edges[0]) - 1.0))
  expected_w = transmittance[:-1] - transmittance[1:]
  if opaque_last:
    expected_w[-1] = transmittance[-2]
  np.testing.assert_allclose(out.w[0], expected_w, rtol=1e-5)
  np.testing.assert_allclose(out.acc, [expected_w.sum()], rtol=1e-5)
  np.testing.assert_allclose(out.rgb[0], expected_w.sum() * np.array([1.0, 0.5, 0.0]), rtol=1e-5)
  if not opaque_last:  # Half of the opacity 1 - exp(-8 sigma) lies before the median.
    median = 1.0 - np.log(1.0 - 0.5 * (1.0 - np.exp(-8 * sigma))) / (2.0 * sigma)
    np.testing.assert_allclose(compositing.median_depth(out), [median], atol=0.01)  # Linear within each interval.
  assert out.w.shape == (1, 8) and out.depth.shape == (1,)


def test_the_one_finisher_gives_the_dense_and_packed_paths_the_same_rays():
  """The dense path (`volume_render`) and the packed one (`volume_render_packed`) go through `finish` with
  their own per-ray sums: the same rays packed slot by slot render the same colour, opacity, depth and
  extras (up to float32 summation order); empty rays take their empty depth in both."""
  rng = np.random.default_rng(7)
  num_rays, num_samples = 5, 6
  t = np.sort(rng.uniform(2.0, 6.0, (num_rays, num_samples)), axis=-1).astype(np.float32)
  density = rng.uniform(0.0, 3.0, (num_rays, num_samples)).astype(np.float32)
  density[2] = 0.0  # An empty ray.
  rgb = rng.uniform(0, 1, (num_rays, num_samples, 3)).astype(np.float32)
  extras = {'normals': rng.normal(size=(num_rays, num_samples, 3)).astype(np.float32)}
  directions = np.tile([[0.0, 0.0, 1.0]], (num_rays, 1)).astype(np.float32)
  delta = np.concatenate([t[:, 1:] - t[:, :-1], np.full((num_rays, 1), 0.5, np.float32)], axis=-1)
  # Compiled (op by op, the two paths compiled ~130 tiny programs).
  dense = _render(rgb, density, t, directions, jnp.ones(3), 0.5, extras)
  flat = lambda x: x.reshape((num_rays * num_samples,) + x.shape[2:])
  ray_index = np.repeat(np.arange(num_rays), num_samples)
  packed = jax.jit(compositing.volume_render_packed, static_argnums=5)(
      flat(rgb), flat(density), flat(t), flat(delta), ray_index, num_rays, jnp.ones(3), t[:, -1],
      {'normals': flat(extras['normals'])})
  for name in ('rgb', 'acc', 'depth'):
    np.testing.assert_allclose(getattr(packed, name), getattr(dense, name), rtol=1e-5, atol=1e-6, err_msg=name)
  np.testing.assert_allclose(packed.extras['normals'], dense.extras['normals'], rtol=1e-5, atol=1e-6)
  assert float(dense.depth[2]) == float(packed.depth[2]) == float(t[2, -1])
  np.testing.assert_array_equal(dense.rgb[2], 1.0)


def test_the_hosts_expected_depth_is_the_devices():
  rng = np.random.default_rng(8)
  acc = np.concatenate([rng.uniform(0, 1, 6), [0.0, 1e-11]]).astype(np.float32)
  weighted = (acc * rng.uniform(2, 6, 8)).astype(np.float32)
  far = np.full(8, 6.0, np.float32)
  np.testing.assert_array_equal(compositing.expected_depth(weighted, acc, far, xnp=np),
                                compositing.expected_depth(jnp.asarray(weighted), jnp.asarray(acc), far))
