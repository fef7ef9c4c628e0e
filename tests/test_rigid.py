"""ops/rigid.py: the exponential map of SE(3) against a brute-force matrix exponential, finite values and
gradients at zero and tiny angles, corrections composed in the camera's frame, and the similarity fit
recovering a known transform."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import rigid


def _series_exp(matrix, terms: int = 40):
  """exp(matrix) by its power series (brute force)."""
  result, power = np.eye(len(matrix)), np.eye(len(matrix))
  for n in range(1, terms):
    power = power @ matrix / n
    result = result + power
  return result


def _twist_matrix(xi):
  """The 4x4 matrix of twist (v, w) in se(3)."""
  v, w = xi[:3], xi[3:]
  matrix = np.zeros((4, 4))
  matrix[:3, :3] = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
  matrix[:3, 3] = v
  return matrix


def _random_rotation(rng):
  q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
  return q * np.sign(np.linalg.det(q))


def _random_cameras(rng, count):
  return np.stack([np.concatenate([_random_rotation(rng), rng.normal(size=(3, 1)) * 3], axis=1)
                   for _ in range(count)])


@pytest.mark.parametrize('scale', [1e-9, 1e-4, 1e-3, 0.3, 2.5])
def test_exp_se3_matches_the_series_exponential(scale):
  rng = np.random.default_rng(0)
  xi = rng.normal(size=(5, 6)) * scale
  got = rigid.exp_se3(jnp.asarray(xi), jnp)
  expected = np.stack([_series_exp(_twist_matrix(x))[:3] for x in xi])
  np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-5)
  np.testing.assert_allclose(rigid.exp_so3(xi[:, 3:]), expected[:, :, :3], atol=1e-12)


def test_exp_se3_is_finite_with_finite_gradients_at_zero_and_across_magnitudes():
  exp_se3 = lambda x: rigid.exp_se3(x, jnp)

  @jax.jit  # One program for all magnitudes: op by op, these compiled ~120 tiny ones.
  @jax.vmap
  def value_jacobian_and_gradient(xi):
    return exp_se3(xi), jax.jacfwd(exp_se3)(xi), jax.grad(lambda x: jnp.sum(exp_se3(x)**2))(xi)

  scales = jnp.array([0.0, 1e-12, 1e-6, 1e-3, 1.0, 3.0], jnp.float32)
  value, jacobian, gradient = value_jacobian_and_gradient(jnp.broadcast_to(scales[:, None], (6, 6)))
  chex.assert_tree_all_finite((value, jacobian, gradient))
  # At zero, the derivative with respect to w_z is the generator of rotations about z.
  at_zero = jacobian[0]
  np.testing.assert_allclose(at_zero[:, :3, 5], [[0, -1, 0], [1, 0, 0], [0, 0, 0]], atol=1e-7)


def test_a_correction_turns_the_camera_about_its_own_centre_and_moves_it_in_its_own_frame():
  rng = np.random.default_rng(1)
  cameras = _random_cameras(rng, 4)
  np.testing.assert_allclose(rigid.compose(cameras, rigid.exp_se3(np.zeros((4, 6)))), cameras, atol=1e-12)
  turned = rigid.compose(cameras, rigid.exp_se3(np.concatenate([np.zeros((4, 3)), rng.normal(size=(4, 3))], -1)))
  np.testing.assert_allclose(turned[:, :, 3], cameras[:, :, 3], atol=1e-12)
  moved = rigid.compose(cameras, rigid.exp_se3(np.tile([0.0, 0.0, -0.5, 0.0, 0.0, 0.0], (4, 1))))
  # Half a unit forward: along the camera's viewing axis, -z.
  np.testing.assert_allclose(moved[:, :, 3], cameras[:, :, 3] - 0.5 * cameras[:, :, 2], atol=1e-12)


def test_a_correction_about_a_pivot_turns_the_camera_about_that_point():
  rng = np.random.default_rng(4)
  cameras = _random_cameras(rng, 3)
  turn = rigid.exp_se3(np.concatenate([np.zeros((3, 3)), rng.normal(size=(3, 3)) * 0.2], -1))
  turned = rigid.compose(cameras, rigid.about_pivot(turn, 2.5))
  pivot_in_world = lambda c: c[:, :, 3] - 2.5 * c[:, :, 2]  # (0, 0, -2.5) in camera coordinates.
  np.testing.assert_allclose(pivot_in_world(turned), pivot_in_world(cameras), atol=1e-12)
  np.testing.assert_allclose(turned[:, :, :3], cameras[:, :, :3] @ turn[:, :, :3], atol=1e-12)
  np.testing.assert_allclose(rigid.about_pivot(turn, 0.0), turn, atol=1e-15)


def test_the_similarity_fit_recovers_a_known_transform_and_is_a_rotation():
  rng = np.random.default_rng(2)
  source = _random_cameras(rng, 12)
  known = rigid.Similarity(1.7, _random_rotation(rng), rng.normal(size=3))
  fitted = rigid.fit_similarity(source, known.apply(source))
  assert fitted.scale == pytest.approx(1.7, rel=1e-9)
  np.testing.assert_allclose(fitted.rotation, known.rotation, atol=1e-9)
  np.testing.assert_allclose(fitted.translation, known.translation, atol=1e-9)
  assert np.linalg.det(fitted.rotation) == pytest.approx(1.0)
  # Noisy targets: close, and never a reflection.
  noisy = known.apply(source)
  noisy[:, :, 3] += rng.normal(size=(12, 3)) * 0.01
  fitted = rigid.fit_similarity(source, noisy)
  assert abs(fitted.scale - 1.7) < 0.02 and np.linalg.det(fitted.rotation) > 0
  assert rigid.rotation_errors_deg(fitted.apply(source), known.apply(source)).max() < 0.5


def test_errors_between_cameras_are_their_angle_and_centre_distance():
  rng = np.random.default_rng(3)
  cameras = _random_cameras(rng, 3)
  turn = rigid.exp_so3(np.array([0.0, 0.0, np.radians(7.0)]))
  turned = cameras.copy()
  turned[:, :, :3] = cameras[:, :, :3] @ turn
  turned[:, :, 3] += [0.3, 0.4, 0.0]
  np.testing.assert_allclose(rigid.rotation_errors_deg(cameras, turned), 7.0, atol=1e-6)
  np.testing.assert_allclose(rigid.centre_errors(cameras, turned), 0.5, atol=1e-12)
  np.testing.assert_allclose(rigid.rotation_errors_deg(cameras, cameras), 0.0, atol=1e-5)
