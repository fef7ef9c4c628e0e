"""The contraction of unbounded scenes and the distance warps: invariants, finite differences, round trips."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import coord
def _points(seed, num=500):
  """Points at radii from 1e-3 to 1e6, in random directions."""
  rng = np.random.default_rng(seed)
  directions = rng.standard_normal((num, 3))
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  return jnp.asarray(directions * 10.0 ** rng.uniform(-3, 6, (num, 1)), jnp.float32)


def test_contraction_is_the_identity_inside_the_unit_ball_and_stays_within_radius_two():
  x = _points(0)
  contracted = coord.contract(x)
  norm = np.linalg.norm(np.asarray(x), axis=-1)
  inside = norm <= 1.0
  chex.assert_trees_all_close(contracted[inside], x[inside])
  contracted_norm = np.linalg.norm(np.asarray(contracted), axis=-1)
  assert np.all(contracted_norm < 2.0)
  np.testing.assert_allclose(contracted_norm[~inside], 2.0 - 1.0 / norm[~inside], rtol=1e-5)
  # Directions are kept, and the radius grows monotonically.
  np.testing.assert_allclose(np.asarray(contracted) / contracted_norm[:, None],
                             np.asarray(x) / norm[:, None], atol=1e-5)
  order = np.argsort(norm)
  assert np.all(np.diff(contracted_norm[order]) >= -1e-6)


def test_contraction_jacobian_matches_automatic_differentiation_and_finite_differences():
  x = _points(1, 50)
  x = x[np.linalg.norm(np.asarray(x), axis=-1) < 1e4]  # Finite differences in float32 need moderate radii.
  jacobian = coord.contract_jacobian(x)
  chex.assert_trees_all_close(jacobian, jax.vmap(jax.jacfwd(coord.contract))(x), rtol=1e-5, atol=1e-7)
  x64 = np.asarray(x, np.float64)
  contract64 = lambda p: (2 * np.linalg.norm(p) - 1) / np.dot(p, p) * p if np.dot(p, p) > 1 else p
  for point, expected in zip(x64, np.asarray(jacobian)):
    step = 1e-6 * max(1.0, np.linalg.norm(point))
    numeric = np.stack([(contract64(point + step * e) - contract64(point - step * e)) / (2 * step)
                        for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(expected, numeric, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize('radius', [0.5, 3.0, 300.0])
def test_contracted_gaussian_matches_pushing_samples_through_the_contraction(radius):
  """For a small Gaussian, the linearised covariance J cov J^T matches contracted samples (Monte Carlo),
  and the diagonal form is the diagonal of the full one."""
  rng = np.random.default_rng(2)
  mean = np.array([0.6, -0.3, 0.74]) * radius
  factor = rng.standard_normal((3, 3)) * 1e-3 * radius
  cov = factor @ factor.T
  samples = rng.multivariate_normal(mean, cov, 400_000)
  contracted = np.asarray(coord.contract(jnp.asarray(samples, jnp.float32)), np.float64)
  new_mean, new_cov = coord.contract_gaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32))
  np.testing.assert_allclose(new_mean, contracted.mean(0), atol=1e-4)
  np.testing.assert_allclose(new_cov, np.cov(contracted.T), atol=3e-2 * np.abs(np.cov(contracted.T)).max())
  _, diagonal = coord.contract_gaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(np.diag(cov), jnp.float32))
  _, full = coord.contract_gaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(np.diag(np.diag(cov)),
                                                                               jnp.float32))
  chex.assert_trees_all_close(diagonal, jnp.diagonal(full), rtol=1e-5, atol=1e-12)


def test_contraction_gradients_stay_finite_from_the_origin_to_far_away():
  x = jnp.concatenate([jnp.zeros((1, 3)), _points(3, 100), jnp.full((1, 3), 1e12)])
  grads = jax.jit(jax.grad(lambda x: jnp.sum(coord.contract_gaussian(x, jnp.full(x.shape, 1e-2))[1])
                           + jnp.sum(coord.contract(x))))(x)  # (Op by op: ~80 tiny compiles.)
  chex.assert_tree_all_finite(grads)


def test_disparity_warp_round_trips_and_spaces_samples_evenly_in_inverse_depth():
  near, far = jnp.array([[0.2]]), jnp.array([[1e4]])
  s = jnp.linspace(0.0, 1.0, 11)[None]
  t = coord.s_to_disparity(s, near, far)
  chex.assert_trees_all_close(t[:, [0, -1]], jnp.array([[0.2, 1e4]]), rtol=1e-5)
  chex.assert_trees_all_close(coord.disparity_to_s(t, near, far), s, atol=1e-6)
  np.testing.assert_allclose(np.diff(1.0 / np.asarray(t)), np.diff(1.0 / np.asarray(t))[0, 0], rtol=1e-4)


@pytest.mark.parametrize('spacing', coord.SPACINGS)
def test_every_spacing_round_trips_and_is_increasing_from_near_to_far(spacing):
  near, far, pivot = jnp.array([[0.5], [2.0]]), jnp.array([[40.0], [6.0]]), jnp.array([[6.0], [10.0]])
  s = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 101), (2, 101))
  t = coord.s_to_t(s, near, far, spacing, pivot)
  assert np.all(np.diff(np.asarray(t), axis=-1) > 0)
  np.testing.assert_allclose(t[:, [0, -1]], jnp.concatenate([near, far], -1), rtol=1e-5)
  np.testing.assert_allclose(coord.t_to_s(t, near, far, spacing, pivot), s, atol=1e-5)
  if spacing == 'linear_disparity':
    # Half of s is linear up to the pivot, the rest in disparity; a pivot beyond far (the second ray) makes
    # all of it linear.
    np.testing.assert_allclose(t[:, 50], [6.0, 4.0], rtol=1e-5)
    np.testing.assert_allclose(np.diff(np.asarray(t[0, :51])), 5.5 / 50, rtol=1e-4)
    np.testing.assert_allclose(np.diff(1.0 / np.asarray(t[0, 50:], np.float64)), (1 / 40 - 1 / 6) / 50, rtol=1e-3)
