"""Tests of jaxnerf.ops.camera_paths and the pose maths they use: orbits, LLFF's spiral, the ellipse and the
interpolated path, against the geometry they promise (distances, elevations, where cameras look)."""

import chex
import numpy as np
import pytest

from jaxnerf.ops import camera
from jaxnerf.ops import camera_paths
from tests.test_camera import _azimuth_elevation_radius


def _forward_facing_cameras(rng, num=12):
  """Cameras near the origin looking down -z, spread by ~0.3 in x and y, tilted by a few degrees."""
  poses = []
  for _ in range(num):
    eye = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), rng.uniform(-0.05, 0.05)])
    target = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), -4.0])
    poses.append(camera.look_at(eye, target, up=(0.0, 1.0, 0.0)))
  return np.stack(poses).astype(np.float64)


# Orbits.


@pytest.mark.parametrize('num_frames', [1, 4, 7])
def test_orbit_poses(num_frames):
  target = (0.2, -0.3, 0.5)
  poses = camera_paths.orbit_poses(num_frames, 3.0, 25.0, target)
  chex.assert_shape(poses, (num_frames, 3, 4))
  az, el, r = _azimuth_elevation_radius(poses, target)
  np.testing.assert_allclose(r, 3.0, rtol=1e-6)
  np.testing.assert_allclose(el, 25.0, atol=1e-4)
  np.testing.assert_allclose(az[0], 0.0, atol=1e-4)
  steps = np.mod(np.diff(az), 360.0)
  np.testing.assert_allclose(steps, 360.0 / num_frames, atol=1e-4)
  for pose in poses:  # Every frame looks at the target.
    np.testing.assert_allclose(-pose[:, 2] * 3.0, np.subtract(target, pose[:, 3]), atol=1e-5)


def test_orbit_recovers_radius_and_elevation():
  target = (0.0, 0.5, -0.25)
  rng = np.random.default_rng(5)
  cams = np.stack([camera.spherical_pose(a, 35.0, 4.5, target) for a in rng.uniform(-180, 180, size=9)])
  poses = camera_paths.orbit(cams, 6, target)
  chex.assert_shape(poses, (6, 3, 4))
  az, el, r = _azimuth_elevation_radius(poses, target)
  np.testing.assert_allclose(r, 4.5, rtol=1e-5)
  np.testing.assert_allclose(el, 35.0, atol=1e-3)
  np.testing.assert_allclose(np.mod(np.diff(az), 360.0), 60.0, atol=1e-4)


def test_orbit_takes_medians():
  radii = [1.0, 2.0, 3.0, 4.0, 100.0]
  elevations = [-10.0, 5.0, 20.0, 60.0, 89.0]
  cams = np.stack([camera.spherical_pose(37.0 * i, e, r) for i, (r, e) in enumerate(zip(radii, elevations))])
  _, el, r = _azimuth_elevation_radius(camera_paths.orbit(cams, 3))
  np.testing.assert_allclose(r, 3.0, rtol=1e-5)
  np.testing.assert_allclose(el, 20.0, atol=1e-3)


def test_focus_point_and_average_pose():
  target = np.array([0.3, -0.2, 0.1])
  cams = np.stack([camera.spherical_pose(a, 20.0, 3.0, target) for a in (0.0, 70.0, 150.0, 260.0)])
  np.testing.assert_allclose(camera.focus_point(cams), target, atol=1e-5)
  assert camera.focus_point(_forward_facing_cameras(np.random.default_rng(0))) is None  # Near-parallel axes.
  pose = camera.spherical_pose(40.0, 10.0, 2.0)
  np.testing.assert_allclose(camera.average_pose(np.stack([pose, pose, pose])), pose, atol=1e-6)


def test_spiral_stays_in_front_of_the_scene():
  rng = np.random.default_rng(1)
  cams = _forward_facing_cameras(rng)
  near, far = 2.0, 8.0
  poses = camera_paths.spiral(cams, (near, far), 40)
  chex.assert_shape(poses, (40, 3, 4))
  mean = camera.average_pose(cams)
  local = (poses[:, :, 3] - mean[:, 3]) @ mean[:, :3]
  spread = np.percentile(np.abs((cams[:, :, 3] - mean[:, 3]) @ mean[:, :3]), 90, axis=0)
  # The camera circles within the cameras' spread, never reaching the nearest content.
  assert np.all(np.abs(local) <= spread + 1e-6)
  assert np.all(-local[:, 2] < 0.5 * near)
  # Every frame looks forward, at one point between the nearest and 5x the farthest content.
  forward = -poses[:, :, 2] @ -mean[:, 2]
  assert np.all(forward > 0.95)
  # All optical axes pass through one point (least squares over the axes, which are nearly parallel).
  projectors = np.eye(3) - np.einsum('ni,nj->nij', poses[:, :, 2], poses[:, :, 2])
  focus = np.linalg.solve(projectors.sum(0), np.einsum('nij,nj->i', projectors, poses[:, :, 3]))
  distances = np.linalg.norm(np.cross(focus - poses[:, :, 3], poses[:, :, 2]), axis=-1)
  np.testing.assert_allclose(distances, 0.0, atol=1e-3)
  depth = float((mean[:, 3] - focus) @ mean[:, 2])
  assert 0.9 * near < depth < 5 * far
  # Two turns: the first and middle frames coincide in x and y.
  np.testing.assert_allclose(local[0, :2], local[20, :2], atol=1e-6)


def test_ellipse_circles_the_focus_within_the_cameras_heights():
  target = np.array([0.1, 0.2, 0.0])
  rng = np.random.default_rng(2)
  cams = np.stack([camera.spherical_pose(a, e, 2.0, target)
                   for a, e in zip(rng.uniform(0, 180, 15), rng.uniform(10, 40, 15))])
  poses = camera_paths.ellipse(cams, 24)
  heights = cams[:, 2, 3]
  assert np.all(poses[:, 2, 3] >= np.percentile(heights, 10) - 1e-6)
  assert np.all(poses[:, 2, 3] <= np.percentile(heights, 90) + 1e-6)
  for pose in poses:  # Each frame looks at the focus of the training cameras.
    offset = target - pose[:, 3]
    np.testing.assert_allclose(-pose[:, 2], offset / np.linalg.norm(offset), atol=1e-4)


def test_interpolated_path_is_smooth_and_passes_through_the_ends():
  cams = np.stack([camera.spherical_pose(a, 20.0 + 5 * np.sin(a / 30), 3.0) for a in np.linspace(0, 120, 30)])
  poses = camera_paths.interpolate(cams, 50, num_keyframes=6, look_distance=3.0)
  chex.assert_shape(poses, (50, 3, 4))
  np.testing.assert_allclose(poses[0, :, 3], cams[0, :, 3], atol=1e-5)
  np.testing.assert_allclose(poses[-1, :, 3], cams[-1, :, 3], atol=1e-5)
  steps = np.linalg.norm(np.diff(poses[:, :, 3], axis=0), axis=-1)
  assert steps.max() < 2.0 * np.median(steps)  # No jumps along the way.


def test_path_for_picks_by_scene():
  rng = np.random.default_rng(4)
  cams = _forward_facing_cameras(rng)
  assert camera_paths.path_for('auto', cams, 5, True, (2.0, 8.0))[0] == 'spiral'
  assert camera_paths.path_for('auto', cams, 5, False, (2.0, 8.0))[0] == 'ellipse'
  assert camera_paths.path_for('auto', cams, 5, False, None)[0] == 'orbit'
  with pytest.raises(ValueError, match='spiral'):
    camera_paths.path_for('spiral', cams, 5, False, None)
  with pytest.raises(ValueError, match='unknown camera path'):
    camera_paths.path_for('zigzag', cams, 5, False, None)


def test_ellipse_of_a_partial_orbit_stays_on_the_photographed_arc():
  cams = np.stack([camera.spherical_pose(a, 20.0, 2.0) for a in np.linspace(-30, 90, 12)])
  assert camera_paths.covered_azimuths(cams[:, :2, 3]) == pytest.approx((np.radians(-30), np.radians(90)))
  azimuths = np.degrees(np.arctan2(*camera_paths.ellipse(cams, 40)[:, 1::-1, 3].T))
  assert azimuths.min() == pytest.approx(-30, abs=0.5) and azimuths.max() == pytest.approx(90, abs=0.5)
  surrounding = np.stack([camera.spherical_pose(a, 20.0, 2.0) for a in range(0, 360, 30)])
  assert camera_paths.covered_azimuths(surrounding[:, :2, 3]) is None
  # An arc across the +-180 degree seam.
  seam = np.stack([camera.spherical_pose(a, 20.0, 2.0) for a in np.linspace(150, 250, 8)])
  start, end = camera_paths.covered_azimuths(seam[:, :2, 3])
  assert np.degrees(end - start) == pytest.approx(100, abs=1e-4)  # Poses are float32.
