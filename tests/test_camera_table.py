"""ops/camera.py: CameraTable, rays made from pixel indices and a split's cameras as arrays: inside a compiled
function they equal the host's (pinhole, distorted and NDC cameras), and their gradient with respect to a pose
matches finite differences."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.ops import camera

NDC = camera.NDCSpace(focal_x=30.0, focal_y=32.0, width=40.0, height=30.0)


def _rotation(axis_angle):
  """Rodrigues' rotation matrix [3, 3] of a rotation vector [3]."""
  angle = np.linalg.norm(axis_angle)
  x, y, z = axis_angle / angle
  cross = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
  return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def _poses(rng, count, spread=0.2):
  """Cameras near the reference one (looking down -z), as a forward-facing capture's."""
  poses = [np.concatenate([_rotation(rng.normal(size=3) * 0.1), rng.normal(size=(3, 1)) * spread], axis=1)
           for _ in range(count)]
  return np.asarray(poses, np.float32)


def _split(kind: str, count: int = 4, training: bool = True) -> SceneSplit:
  rng = np.random.default_rng(0)
  focal = rng.uniform(28, 34, count).astype(np.float32)
  distortion = None
  if kind == 'distorted':
    distortion = np.tile(np.array([[-0.12, 0.03, 0.0, 0.002, -0.001]], np.float32), (count, 1))
  intrinsics = camera.Intrinsics(focal, focal * 1.02, np.full(count, 20.5, np.float32),
                                 np.full(count, 14.5, np.float32), distortion)
  near, far, ndc = (0.0, 1.0, NDC) if kind == 'ndc' else (0.5, 6.0, None)
  return SceneSplit(np.zeros((count, 30, 40, 3), np.float32), _poses(rng, count), intrinsics, near, far, ndc=ndc,
                    training=training)


def _pixels(count, size=64, seed=1):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, count, size), rng.integers(0, 30, size), rng.integers(0, 40, size))


@pytest.mark.parametrize('kind', ['pinhole', 'distorted', 'ndc'])
def test_compiled_rays_from_pixel_indices_equal_the_hosts(kind):
  split = _split(kind)
  image, row, col = _pixels(split.num_images)
  expected = split.rays_of_pixels(image, row, col)
  table = split.camera_table().as_arrays(jnp)
  made = jax.jit(lambda t, i, r, c: t.rays(i, r, c, cam_idx=i, xnp=jnp))(table, image, row, col)
  chex.assert_trees_all_close(made, expected, atol=2e-5, rtol=2e-5)
  np.testing.assert_array_equal(made.cam_idx[:, 0], image)
  chex.assert_shape(made.origins, (64, 3))
  chex.assert_shape(made.near, (64, 1))


def test_a_held_out_splits_rays_carry_any_camera():
  split = _split('pinhole', training=False)
  rays = split.rays_of_pixels(*_pixels(split.num_images, size=5))
  np.testing.assert_array_equal(rays.cam_idx, camera.ANY_CAMERA)


@pytest.mark.parametrize('kind', ['pinhole', 'ndc'])
def test_the_gradient_with_respect_to_a_pose_matches_finite_differences(kind):
  split = _split(kind, count=2)
  image, row, col = _pixels(2, size=16, seed=3)
  table = split.camera_table().as_arrays(jnp)
  weights = jax.random.normal(jax.random.key(0), (3, 16, 3))

  def loss(camtoworlds):
    rays = table._replace(camtoworlds=camtoworlds).rays(image, row, col, xnp=jnp)
    return jnp.sum(weights[0] * rays.origins + weights[1] * rays.directions + weights[2] * rays.viewdirs)

  # Compiled: op by op, the loss and its gradient compiled ~60 tiny programs.
  gradient, compiled_loss = np.asarray(jax.jit(jax.grad(loss))(table.camtoworlds)), jax.jit(loss)
  assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
  eps, camtoworlds = 1e-2, np.asarray(table.camtoworlds, np.float64)
  for index in [(0, 0, 0), (0, 1, 2), (1, 2, 1), (1, 0, 3), (0, 2, 3)]:
    step = np.zeros_like(camtoworlds)
    step[index] = eps
    finite = (float(compiled_loss(jnp.asarray(camtoworlds + step, jnp.float32)))
              - float(compiled_loss(jnp.asarray(camtoworlds - step, jnp.float32)))) / (2 * eps)
    assert finite == pytest.approx(gradient[index], rel=2e-2, abs=2e-2), index
