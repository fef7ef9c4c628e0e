"""Step functions: brute-force references, Monte Carlo checks, invariants and extreme magnitudes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import stepfun

pytestmark = pytest.mark.device  # Numerics that GPUs compute their own way (benchmarks/gpu_check.py).


def random_step_function(rng, num_rays, num_intervals, zero_fraction=0.3, t_min=0.0, t_max=10.0):
  """Random edges [num_rays, N + 1] (some intervals of zero width) and weights [num_rays, N] summing to at
  most 1 (some exactly zero, always those of zero width, as volume rendering gives them)."""
  widths = rng.exponential(1.0, (num_rays, num_intervals))
  widths[rng.random(widths.shape) < 0.1] = 0.0
  t = np.concatenate([np.zeros((num_rays, 1)), np.cumsum(widths, axis=-1)], axis=-1)
  t = t_min + (t_max - t_min) * t / np.maximum(t[:, -1:], 1e-9)
  w = rng.random((num_rays, num_intervals)) * (rng.random((num_rays, num_intervals)) > zero_fraction)
  w[np.diff(t, axis=-1) == 0] = 0.0
  w = w / np.maximum(w.sum(-1, keepdims=True), 1e-9) * rng.uniform(0.2, 1.0, (num_rays, 1))
  return t.astype(np.float32), w.astype(np.float32)


def test_distortion_loss_equals_the_brute_force_double_sum():
  rng = np.random.default_rng(0)
  t, w = random_step_function(rng, 20, 17)
  middle = 0.5 * (t[:, 1:] + t[:, :-1])
  expected = [sum(w[r, i] * w[r, j] * abs(middle[r, i] - middle[r, j]) for i in range(17) for j in range(17))
              + sum(w[r, i] ** 2 * (t[r, i + 1] - t[r, i]) for i in range(17)) / 3 for r in range(20)]
  chex.assert_trees_all_close(stepfun.distortion_loss(jnp.asarray(t), jnp.asarray(w)),
                              np.array(expected, np.float32), rtol=1e-5, atol=1e-6)


def test_distortion_loss_equals_the_integral_it_stands_for():
  """Eq. 15 is the double integral of w(u) w(v) |u - v| over the step function; check by Monte Carlo."""
  rng = np.random.default_rng(1)
  t, w = random_step_function(rng, 1, 6, zero_fraction=0.0)
  t, w = t[0].astype(np.float64), w[0].astype(np.float64)
  num = 2_000_000
  interval = rng.choice(6, size=(2, num), p=w / w.sum())
  points = t[interval] + rng.random((2, num)) * np.diff(t)[interval]
  monte_carlo = w.sum() ** 2 * np.mean(np.abs(points[0] - points[1]))
  np.testing.assert_allclose(float(stepfun.distortion_loss(jnp.asarray(t, jnp.float32),
                                                           jnp.asarray(w, jnp.float32))),
                             monte_carlo, rtol=5e-3)


def test_outer_bound_equals_the_brute_force_overlap_sum_and_bounds_a_coarser_envelope():
  rng = np.random.default_rng(2)
  t, _ = random_step_function(rng, 10, 12)
  t_env, w_env = random_step_function(rng, 10, 7)
  bound = np.asarray(stepfun.outer_bound(jnp.asarray(t), jnp.asarray(t_env), jnp.asarray(w_env)))
  for r in range(10):
    for i in range(12):
      overlapping = [j for j in range(7) if t_env[r, j] < t[r, i + 1] and t_env[r, j + 1] > t[r, i]]
      np.testing.assert_allclose(bound[r, i], sum(w_env[r, j] for j in overlapping), atol=1e-6)


def test_outer_bound_holds_for_any_step_function_resampled_from_its_envelope():
  """The weight of a fine step function that refines the envelope's edges never exceeds the bound."""
  rng = np.random.default_rng(3)
  t_env, w_env = random_step_function(rng, 50, 9, zero_fraction=0.0)
  # A refinement: every envelope interval cut in 3 with its weight shared out at random.
  shares = rng.dirichlet(np.ones(3), size=(50, 9)).astype(np.float32)
  t = np.concatenate([np.stack([t_env[:, :-1] + k / 3 * np.diff(t_env) for k in range(3)], -1).reshape(50, -1),
                      t_env[:, -1:]], axis=-1)
  w = (w_env[..., None] * shares).reshape(50, -1)
  bound = stepfun.outer_bound(jnp.asarray(t), jnp.asarray(t_env), jnp.asarray(w_env))
  assert np.all(np.asarray(w) <= np.asarray(bound) + 1e-6)
  assert float(stepfun.interlevel_loss(jnp.asarray(t), jnp.asarray(w), jnp.asarray(t_env),
                                       jnp.asarray(w_env))) < 1e-10


def test_interlevel_loss_penalises_weight_outside_the_proposal_and_trains_only_the_proposal():
  t = jnp.array([[0.0, 1.0, 2.0, 3.0]])
  w = jnp.array([[0.0, 0.0, 1.0]])  # All the NeRF weight in [2, 3].
  t_proposal = jnp.array([[0.0, 1.5, 3.0]])
  loss = lambda w_proposal, w: stepfun.interlevel_loss(t, w, t_proposal, w_proposal)
  np.testing.assert_allclose(loss(jnp.array([[1.0, 0.0]]), w), 1.0, rtol=1e-6)  # Bound 0: (1 - 0)^2 / 1.
  np.testing.assert_allclose(loss(jnp.array([[0.0, 1.0]]), w), 0.0, atol=1e-7)
  grad_proposal, grad_nerf = jax.grad(loss, argnums=(0, 1))(jnp.array([[0.5, 0.5]]), w)
  assert float(grad_proposal[0, 1]) < 0  # Raising the proposal's weight over [2, 3] lowers the loss.
  chex.assert_trees_all_close(grad_nerf, jnp.zeros_like(w))


def test_samples_follow_the_step_function():
  """Histogram of many jittered samples against the step function's probabilities (Monte Carlo)."""
  t = jnp.array([0.0, 1.0, 1.5, 4.0, 4.0, 5.0])
  w = jnp.array([0.1, 0.4, 0.2, 0.0, 0.3])
  samples = stepfun.sample(jax.random.key(0), jnp.broadcast_to(t, (4000, 6)), jnp.broadcast_to(w, (4000, 5)),
                           64)
  counts, _ = np.histogram(np.asarray(samples).ravel(), bins=np.array([0.0, 1.0, 1.5, 4.0, 5.0]))
  np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.4, 0.2, 0.3], atol=3e-3)
  # Within an interval, uniform: half the samples of [1.5, 4] lie below its middle.
  inside = np.asarray(samples)[(samples > 1.5) & (samples < 4.0)]
  np.testing.assert_allclose(np.mean(inside < 2.75), 0.5, atol=0.01)
  assert np.all(np.diff(np.asarray(samples), axis=-1) >= 0)


@pytest.mark.parametrize('single_jitter', [False, True])
def test_deterministic_and_jittered_samples_land_one_per_quantile_stratum(single_jitter):
  t = jnp.linspace(0.0, 1.0, 11)[None]
  w = jnp.full((1, 10), 0.1)  # Uniform: a sample's position is its quantile.
  sample = jax.jit(stepfun.sample, static_argnums=(3, 4))  # Op by op, sampling compiles ~60 tiny programs.
  centres = sample(None, t, w, 8)
  chex.assert_trees_all_close(centres, ((jnp.arange(8) + 0.5) / 8)[None], atol=1e-6)
  jittered = np.asarray(sample(jax.random.key(1), jnp.broadcast_to(t, (100, 11)), jnp.broadcast_to(w, (100, 10)),
                               8, single_jitter))
  np.testing.assert_array_equal(np.floor(jittered * 8), np.broadcast_to(np.arange(8), (100, 8)))
  if single_jitter:
    np.testing.assert_allclose(np.diff(jittered, axis=-1), 1 / 8, atol=1e-5)


def test_sample_intervals_gives_sorted_edges_inside_the_domain_around_the_samples():
  rng = np.random.default_rng(4)
  t, w = random_step_function(rng, 30, 16, t_min=2.0, t_max=6.0)
  # Compiled: op by op, sampling compiles ~70 tiny programs.
  sample_intervals = jax.jit(stepfun.sample_intervals, static_argnames=('num_samples', 'padding'))
  edges = sample_intervals(jax.random.key(2), jnp.asarray(t), jnp.asarray(w), num_samples=24, padding=0.01)
  chex.assert_shape(edges, (30, 25))
  edges = np.asarray(edges)
  assert np.all(np.diff(edges, axis=-1) >= 0)
  assert np.all(edges >= 2.0) and np.all(edges <= 6.0 + 1e-5)
  # Weightless rays sample their whole extent uniformly (padding adds weight per interval: equal widths).
  expected = jnp.array([[2.0, 3.0, 4.0, 5.0, 6.0]])
  for t, padding in ((jnp.array([[2.0, 2.5, 4.0, 5.0, 6.0]]), 0.0), (expected, 0.01)):
    uniform = sample_intervals(None, t, jnp.zeros((1, 4)), num_samples=4, padding=padding)
    chex.assert_trees_all_close(uniform, expected, atol=1e-5)


def test_blur_weights_spreads_each_peak_to_its_neighbours():
  w = jnp.array([0.0, 0.0, 1.0, 0.0, 0.0])
  chex.assert_trees_all_close(stepfun.blur_weights(w), jnp.array([0.0, 0.5, 1.0, 0.5, 0.0]))
  chex.assert_trees_all_close(stepfun.blur_weights(jnp.ones(4), padding=0.01), jnp.full(4, 1.01))


def test_median_of_a_step_function():
  t = jnp.array([[1.0, 2.0, 3.0, 5.0]])
  w = jnp.array([[0.25, 0.25, 0.5]])
  chex.assert_trees_all_close(stepfun.weighted_percentile(t, w, [0, 50, 75, 100]),
                              jnp.array([[1.0, 3.0, 4.0, 5.0]]), atol=1e-6)


@pytest.mark.parametrize('scale', [1e-4, 1.0, 1e4])
def test_losses_and_samples_stay_finite_with_finite_gradients_at_extreme_distances(scale):
  rng = np.random.default_rng(5)
  t, w = random_step_function(rng, 8, 32, t_max=scale)
  t, w = jnp.asarray(t), jnp.asarray(w)
  t_env, w_env = jnp.asarray(t[:, ::4]), jnp.asarray(w.reshape(8, 8, 4).sum(-1))

  def total(t, w, t_env, w_env, scale):
    return (jnp.sum(stepfun.distortion_loss(t, w)) / scale
            + stepfun.interlevel_loss(t, w, t_env, w_env))

  # One program (op by op, these calls compiled ~100 tiny ones), the same for every scale: the session's
  # compilation cache compiles it once.
  @jax.jit
  def grads_samples_and_median(t, w, t_env, w_env, scale):
    return (jax.grad(total, argnums=(0, 1, 3))(t, w, t_env, w_env, scale),
            stepfun.sample_intervals(jax.random.key(0), t, jnp.zeros_like(w), 16),
            stepfun.weighted_percentile(t, jnp.zeros_like(w), [50]))

  grads, samples, median = grads_samples_and_median(t, w, t_env, w_env, scale)
  chex.assert_tree_all_finite(grads)
  chex.assert_tree_all_finite(samples)
  chex.assert_tree_all_finite(median)


def test_interpolate_matches_np_interp():
  rng = np.random.default_rng(12)
  xp = np.cumsum(rng.uniform(0.01, 1.0, (2, 3, 9)), axis=-1).astype(np.float32)
  fp = rng.normal(size=(2, 3, 9)).astype(np.float32)
  # Queries inside and beyond both ends, exactly on knots, and unsorted.
  x = rng.uniform(xp[..., :1] - 1.0, xp[..., -1:] + 1.0, (2, 3, 40)).astype(np.float32)
  x[..., :9] = xp
  actual = np.asarray(jax.jit(stepfun.interpolate)(x, xp, fp))
  chex.assert_shape(actual, x.shape)
  for index in np.ndindex(2, 3):
    np.testing.assert_allclose(actual[index], np.interp(x[index], xp[index], fp[index]), rtol=1e-5, atol=1e-5)


def test_interpolate_repeated_knots():
  # Repeated knots are zero-width intervals, as the CDF has over empty bins without eps.
  xp = np.array([0.0, 0.0, 1.0, 1.0, 2.0], np.float32)
  fp = np.arange(5.0, dtype=np.float32)
  x = np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0], np.float32)
  np.testing.assert_allclose(stepfun.interpolate(x, xp, fp), np.interp(x, xp, fp), atol=1e-6)
  # Repeated last knots: finite, and on one side of the jump (np.interp and jnp.interp disagree here).
  xp, fp = np.array([0.0, 0.5, 1.0, 1.0], np.float32), np.arange(4.0, dtype=np.float32)
  out = np.asarray(stepfun.interpolate(np.array([1.0, 2.0], np.float32), xp, fp))
  chex.assert_tree_all_finite(out)
  assert np.all((out == 2.0) | (out == 3.0)), out
