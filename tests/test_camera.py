"""Tests of jaxnerf.ops.camera: pixel-to-ray maths, look-at poses and orbits.

Known answers derived by hand from the documented conventions (pixel centres at +0.5, y down in the image,
camera looking down -z), invariants of the ray directions, and numpy / jax.numpy agreement.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import camera
IDENTITY = np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)


def _random_rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))  # Unique QR: a Haar-random orthogonal matrix.
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def _random_pose(rng):
  return np.concatenate([_random_rotation(rng), rng.normal(size=(3, 1)) * 3.0], axis=1)


def _azimuth_elevation_radius(camtoworld, target=(0.0, 0.0, 0.0)):
  offset = np.asarray(camtoworld)[..., :3, 3] - np.asarray(target)
  radius = np.linalg.norm(offset, axis=-1)
  elevation = np.rad2deg(np.arcsin(offset[..., 2] / radius))
  azimuth = np.rad2deg(np.arctan2(offset[..., 1], offset[..., 0]))
  return azimuth, elevation, radius


# Hand-derived rays.


def test_identity_pose_corner_pixels():
  # W=4, H=2, focal 2, principal point (2, 1).
  # Pixel (0, 0): centre (0.5, 0.5) -> x = (0.5 - 2) / 2 = -0.75, y = -(0.5 - 1) / 2 = +0.25 (row 0 is the top).
  # Pixel (3, 1): centre (3.5, 1.5) -> x = +0.75, y = -0.25.
  # Pixel (3, 0): centre (3.5, 0.5) -> x = +0.75, y = +0.25.
  rays = camera.image_rays(IDENTITY, 4, 2, 2.0, 0.5, 6.0)
  chex.assert_shape([rays.origins, rays.directions, rays.viewdirs], (2, 4, 3))
  chex.assert_shape([rays.near, rays.far], (2, 4, 1))
  np.testing.assert_allclose(rays.directions[0, 0], [-0.75, 0.25, -1.0], atol=1e-7)
  np.testing.assert_allclose(rays.directions[1, 3], [0.75, -0.25, -1.0], atol=1e-7)
  np.testing.assert_allclose(rays.directions[0, 3], [0.75, 0.25, -1.0], atol=1e-7)
  np.testing.assert_allclose(rays.directions[1, 0], [-0.75, -0.25, -1.0], atol=1e-7)
  np.testing.assert_allclose(rays.viewdirs[0, 0], np.array([-0.75, 0.25, -1.0]) / np.sqrt(1.625), rtol=1e-6)
  np.testing.assert_array_equal(rays.origins, 0.0)
  np.testing.assert_array_equal(rays.near, 0.5)
  np.testing.assert_array_equal(rays.far, 6.0)


def test_identity_pose_odd_size_centre_pixel_looks_down_minus_z():
  # W=5, H=3: the centre of pixel (2, 1) is (2.5, 1.5), the principal point.
  rays = camera.image_rays(IDENTITY, 5, 3, 10.0, 1.0, 2.0)
  np.testing.assert_allclose(rays.directions[1, 2], [0.0, 0.0, -1.0], atol=1e-7)
  # One pixel to the right and one up (row 0): x = +1 / f, y = +1 / f.
  np.testing.assert_allclose(rays.directions[0, 3], [0.1, 0.1, -1.0], atol=1e-7)


def test_camera_rotated_90_degrees_about_z():
  # The camera's x axis points along world +y and its y axis along world -x: (a, b, -1) -> (-b, a, -1).
  rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  centre = np.array([1.0, -2.0, 3.0])
  camtoworld = np.concatenate([rotation, centre[:, None]], axis=1)
  rays = camera.image_rays(camtoworld, 4, 2, 2.0, 0.5, 6.0)
  np.testing.assert_allclose(rays.directions[0, 0], [-0.25, -0.75, -1.0], atol=1e-7)
  np.testing.assert_allclose(rays.directions[1, 3], [0.25, 0.75, -1.0], atol=1e-7)
  np.testing.assert_allclose(rays.origins, np.broadcast_to(centre, (2, 4, 3)))


def test_camera_looking_along_world_x():
  # Rotate the camera so that it looks down world +x with world z up: camera x = -y, camera y = +z,
  # camera z (backwards) = -x. A pixel above the centre must then go up in world z.
  camtoworld = np.array([[0.0, 0.0, -1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
  rays = camera.image_rays(camtoworld, 3, 3, 1.0, 0.0, 1.0)
  np.testing.assert_allclose(rays.directions[1, 1], [1.0, 0.0, 0.0], atol=1e-7)
  np.testing.assert_allclose(rays.directions[0, 1], [1.0, 0.0, 1.0], atol=1e-7)  # Top row: up.
  np.testing.assert_allclose(rays.directions[1, 2], [1.0, -1.0, 0.0], atol=1e-7)  # Right column: -y.


def test_4x4_matrix_accepted():
  rng = np.random.default_rng(0)
  pose = _random_pose(rng)
  pose4 = np.concatenate([pose, [[0.0, 0.0, 0.0, 1.0]]], axis=0)
  a = camera.image_rays(pose, 6, 5, 4.0, 1.0, 3.0)
  b = camera.image_rays(pose4, 6, 5, 4.0, 1.0, 3.0)
  chex.assert_trees_all_close(a, b)


# Invariants of directions for random poses.


def test_directions_unit_length_along_viewing_axis():
  rng = np.random.default_rng(1)
  for _ in range(5):
    pose = _random_pose(rng)
    focal = rng.uniform(2.0, 50.0)
    rays = camera.image_rays(pose, 7, 5, focal, 0.1, 5.0)
    forward = -pose[:, 2]
    np.testing.assert_allclose(rays.directions @ forward, 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(rays.viewdirs, axis=-1), 1.0, rtol=1e-6)
    # viewdirs are directions scaled to unit length (same orientation).
    np.testing.assert_allclose(
        rays.viewdirs * np.linalg.norm(rays.directions, axis=-1, keepdims=True), rays.directions, atol=1e-5)
    np.testing.assert_allclose(rays.origins, np.broadcast_to(pose[:, 3], rays.origins.shape), rtol=1e-6)
    # A point at depth t along each ray lies at camera-space z = -t.
    points = rays.origins + 2.5 * rays.directions
    camera_z = (points - pose[:, 3]) @ pose[:, 2]
    np.testing.assert_allclose(camera_z, -2.5, rtol=1e-5)


def test_rays_project_back_to_their_pixels():
  # Round trip: project origin + t * direction with the pinhole model and recover the pixel centre.
  rng = np.random.default_rng(2)
  pose = _random_pose(rng)
  width, height, focal = 9, 6, 7.5
  rays = camera.image_rays(pose, width, height, focal, 0.1, 5.0)
  points = rays.origins + 3.0 * rays.directions
  local = (points - pose[:, 3]) @ pose[:, :3]  # World to camera: R^T (p - c).
  u = focal * local[..., 0] / -local[..., 2] + width / 2
  v = -focal * local[..., 1] / -local[..., 2] + height / 2
  pix_x, pix_y = np.meshgrid(np.arange(width), np.arange(height), indexing='xy')
  np.testing.assert_allclose(u, pix_x + 0.5, atol=1e-4)
  np.testing.assert_allclose(v, pix_y + 0.5, atol=1e-4)


def test_batched_poses_broadcast_like_single_images():
  rng = np.random.default_rng(3)
  poses = np.stack([_random_pose(rng) for _ in range(3)])
  pix_x, pix_y = camera.pixel_grid(4, 3)
  batched = camera.pixels_to_rays(
      np.broadcast_to(pix_x, (3, 3, 4)), np.broadcast_to(pix_y, (3, 3, 4)), poses[:, None, None],
      camera.Intrinsics(5.0, 5.0, 2.0, 1.5), np.array([[[0.5]]]), 4.0)
  for i in range(3):
    single = camera.image_rays(poses[i], 4, 3, 5.0, 0.5, 4.0)
    chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], batched), single, atol=1e-6)


def test_per_ray_near_far():
  near = np.array([0.1, 0.2, 0.3])
  rays = camera.pixels_to_rays(np.arange(3), np.zeros(3), IDENTITY, camera.Intrinsics(1.0, 1.0, 1.5, 0.5), near,
                               2.0 * near)
  np.testing.assert_allclose(rays.near[:, 0], near, rtol=1e-6)
  np.testing.assert_allclose(rays.far[:, 0], 2.0 * near, rtol=1e-6)


def test_numpy_and_jax_agree():
  rng = np.random.default_rng(4)
  pose = _random_pose(rng)
  expected = camera.image_rays(pose, 8, 6, 6.0, 0.5, 4.0, xnp=np)
  actual = jax.jit(lambda p: camera.image_rays(p, 8, 6, 6.0, 0.5, 4.0, xnp=jnp))(pose)
  assert all(isinstance(x, jax.Array) for x in actual)
  chex.assert_trees_all_close(actual, expected, atol=1e-6)
  eager = camera.image_rays(jnp.asarray(pose), 8, 6, 6.0, 0.5, 4.0, xnp=jnp)
  chex.assert_trees_all_close(eager, expected, atol=1e-6)


# look_at and spherical poses.


@pytest.mark.parametrize('eye, target', [
    ((4.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 2.0, 3.0), (-0.5, 0.25, 0.0)),
    ((0.0, -3.0, -2.0), (1.0, 1.0, 1.0)),
])
def test_look_at_looks_at_target(eye, target):
  pose = camera.look_at(eye, target)
  chex.assert_shape(pose, (3, 4))
  rotation = pose[:, :3].astype(np.float64)
  np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
  np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-6)
  np.testing.assert_allclose(pose[:, 3], eye, rtol=1e-6)
  # The ray through the principal point (centre pixel of an odd-sized image) passes through the target at
  # t = distance, since directions have unit length along the viewing axis.
  rays = camera.image_rays(pose, 5, 5, 3.0, 0.1, 10.0)
  distance = np.linalg.norm(np.subtract(eye, target))
  np.testing.assert_allclose(rays.origins[2, 2] + distance * rays.directions[2, 2], target, atol=1e-5)
  # The camera's up axis has a positive component along world z and its x axis is horizontal (no roll).
  assert rotation[2, 1] > 0
  np.testing.assert_allclose(rotation[2, 0], 0.0, atol=1e-7)


def test_look_at_custom_up_and_parallel_up_rejected():
  pose = camera.look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
  np.testing.assert_allclose(pose[:, :3], np.eye(3), atol=1e-7)  # Looking down -z with y up: identity.
  with pytest.raises(ValueError, match='parallel'):
    camera.look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0))


@pytest.mark.parametrize('azimuth, elevation, radius, target', [
    (0.0, 0.0, 4.0, (0.0, 0.0, 0.0)),
    (30.0, 45.0, 2.5, (0.0, 0.0, 0.0)),
    (-120.0, -20.0, 1.0, (0.5, -1.0, 2.0)),
    (170.0, 80.0, 10.0, (0.0, 0.0, 0.0)),
])
def test_spherical_pose(azimuth, elevation, radius, target):
  pose = camera.spherical_pose(azimuth, elevation, radius, target)
  az, el, r = _azimuth_elevation_radius(pose, target)
  np.testing.assert_allclose(r, radius, rtol=1e-6)
  np.testing.assert_allclose(el, elevation, atol=1e-4)
  np.testing.assert_allclose(az, azimuth, atol=1e-4)
  # Looks at the target: -z axis points from the eye to the target.
  np.testing.assert_allclose(-pose[:, 2] * radius, np.subtract(target, pose[:, 3]), atol=1e-5)


def test_spherical_pose_hand_derived():
  # Azimuth 90, elevation 0, radius 2: eye at (0, 2, 0) looking along -y; right = up x back = z x y = -x.
  pose = camera.spherical_pose(90.0, 0.0, 2.0)
  expected = np.array([[-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 0.0, 0.0]])
  np.testing.assert_allclose(pose, expected, atol=1e-6)


def test_radii_are_the_pixel_footprint_of_mip_nerf_cones():
  """mip-NeRF's radius: the distance between neighbouring pixels' directions times 2 / sqrt(12)."""
  rng = np.random.default_rng(4)
  pose, focal = _random_pose(rng), 7.5
  rays = camera.image_rays(pose, 9, 6, focal, 0.1, 5.0)
  chex.assert_shape(rays.radii, (6, 9, 1))
  neighbour_distance = np.linalg.norm(rays.directions[:, 1:] - rays.directions[:, :-1], axis=-1)
  np.testing.assert_allclose(rays.radii[:, 1:, 0], neighbour_distance * 2 / np.sqrt(12), rtol=1e-5)
  neighbour_distance = np.linalg.norm(rays.directions[1:] - rays.directions[:-1], axis=-1)
  np.testing.assert_allclose(rays.radii[1:, :, 0], neighbour_distance * 2 / np.sqrt(12), rtol=1e-5)


# Intrinsics, distortion and NDC.


def _random_intrinsics(rng, width, height, distortion=True):
  focal = rng.uniform(0.6, 1.4) * width
  coefficients = None
  # Lens-like coefficients: barrel or pincushion of a few percent at the corners. (Strong barrel with a
  # negative k2 folds the model over inside the image, where no lens calibration puts it.)
  if distortion:
    coefficients = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.02, 0.02), rng.uniform(-0.01, 0.01),
                             rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01)])
  return camera.Intrinsics(focal, focal * rng.uniform(0.9, 1.1), width * rng.uniform(0.4, 0.6),
                           height * rng.uniform(0.4, 0.6), coefficients)


def test_distortion_by_hand():
  # SIMPLE_RADIAL k1 = 0.1: (0.5, 0) has r^2 = 0.25 and moves to 0.5 * (1 + 0.025).
  x, y = camera.distort(np.array(0.5), np.array(0.0), np.array([0.1, 0.0, 0.0, 0.0, 0.0]))
  np.testing.assert_allclose([x, y], [0.5125, 0.0])
  # Tangential p1 = 0.01, p2 = 0.02 at (0.2, 0.1): r^2 = 0.05;
  # x' = 0.2 + 2 * 0.01 * 0.02 + 0.02 * (0.05 + 0.08) = 0.2030, y' = 0.1 + 0.01 * (0.05 + 0.02) + 2 * 0.02 * 0.02.
  x, y = camera.distort(np.array(0.2), np.array(0.1), np.array([0.0, 0.0, 0.0, 0.01, 0.02]))
  np.testing.assert_allclose([x, y], [0.2030, 0.1 + 0.0007 + 0.0008], atol=1e-12)


def test_undistort_inverts_distort():
  rng = np.random.default_rng(7)
  for _ in range(5):
    coefficients = _random_intrinsics(rng, 100, 80).distortion
    x, y = rng.uniform(-0.7, 0.7, size=(2, 200))
    xd, yd = camera.distort(x, y, coefficients)
    xu, yu = camera.undistort(xd, yd, coefficients)
    np.testing.assert_allclose(xu, x, atol=1e-9)
    np.testing.assert_allclose(yu, y, atol=1e-9)


@pytest.mark.parametrize('distortion', [False, True])
def test_pixel_to_ray_to_pixel_round_trip(distortion):
  rng = np.random.default_rng(8)
  width, height = 40, 30
  for _ in range(4):
    pose, intrinsics = _random_pose(rng), _random_intrinsics(rng, width, height, distortion)
    pix_x, pix_y = rng.uniform(0, width - 1, 100), rng.uniform(0, height - 1, 100)
    rays = camera.pixels_to_rays(pix_x, pix_y, pose, intrinsics, 0.1, 10.0)
    points = rays.origins + rng.uniform(0.5, 5.0, (100, 1)) * rays.directions
    u, v = camera.project(points, pose, intrinsics)
    np.testing.assert_allclose(u, pix_x + 0.5, atol=2e-3)
    np.testing.assert_allclose(v, pix_y + 0.5, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(rays.viewdirs, axis=-1), 1.0, rtol=1e-5)
    # Directions keep unit depth along the viewing axis, with or without distortion.
    np.testing.assert_allclose(rays.directions @ -pose[:, 2], 1.0, rtol=1e-5)


def test_intrinsics_scaled_and_per_image():
  base = camera.Intrinsics(100.0, 110.0, 50.0, 40.0, np.array([0.1, 0.0, 0.0, 0.0, 0.0]))
  half = base.scaled(0.5)
  assert (half.focal_x, half.focal_y, half.center_x, half.center_y) == (50.0, 55.0, 25.0, 20.0)
  # The same scene point lands at half the pixel coordinates (pixel corners at 0 scale with the image).
  pose, point = IDENTITY, np.array([0.3, -0.2, -2.0])
  np.testing.assert_allclose(np.array(camera.project(point, pose, half)),
                             np.array(camera.project(point, pose, base)) / 2, rtol=1e-6)
  per_image = base.repeated(3)
  chex.assert_shape([per_image.focal_x, per_image.center_y], (3,))
  chex.assert_shape(per_image.distortion, (3, 5))
  assert per_image.take(1).focal_y == pytest.approx(110.0)


NDC = camera.NDCSpace(focal_x=30.0, focal_y=28.0, width=40, height=30, near_plane=1.0)


def test_ndc_rays_follow_the_world_rays():
  """Points along a world ray, mapped by the NDC projection (NeRF Eq. 22), lie on the NDC ray (Eq. 25) at
  parameters rising from 0 at the near plane to 1 at infinity."""
  rng = np.random.default_rng(9)
  intrinsics = camera.Intrinsics(NDC.focal_x, NDC.focal_y, NDC.width / 2, NDC.height / 2)
  pose = np.concatenate([np.eye(3), rng.normal(size=(3, 1)) * 0.2], axis=1)  # Near the reference camera.
  pix_x, pix_y = rng.uniform(0, 39, 50), rng.uniform(0, 29, 50)
  world = camera.pixels_to_rays(pix_x, pix_y, pose, intrinsics, 0.0, 1.0)
  ndc = camera.pixels_to_rays(pix_x, pix_y, pose, intrinsics, 0.0, 1.0, ndc=NDC)
  np.testing.assert_allclose(ndc.origins[:, 2], -1.0, atol=1e-5)  # The near plane z = -1 maps to z' = -1.
  np.testing.assert_allclose(ndc.viewdirs, world.viewdirs, atol=1e-6)
  previous = np.zeros(50)
  for depth in (1.5, 3.0, 10.0, 100.0, 1e5):
    s = (-depth - world.origins[:, 2]) / world.directions[:, 2]  # The world ray reaches z = -depth.
    mapped = NDC.from_world(world.origins + s[:, None] * world.directions)
    t = (mapped[:, 2] - ndc.origins[:, 2]) / ndc.directions[:, 2]
    np.testing.assert_allclose(ndc.origins + t[:, None] * ndc.directions, mapped, atol=1e-4)
    assert np.all(t > previous) and np.all(t < 1.0 + 1e-6)
    previous = t
  np.testing.assert_allclose(previous, 1.0, atol=1e-4)


def test_ndc_maps_the_reference_image_onto_the_unit_square():
  # The reference camera's pixel centres at the near plane land at x' = 2 (x + 0.5) / W - 1 (and y' flipped).
  intrinsics = camera.Intrinsics(NDC.focal_x, NDC.focal_y, NDC.width / 2, NDC.height / 2)
  rays = camera.image_rays(IDENTITY, NDC.width, NDC.height, intrinsics, 0.0, 1.0, ndc=NDC)
  pix_x, pix_y = camera.pixel_grid(NDC.width, NDC.height)
  np.testing.assert_allclose(rays.origins[..., 0], 2 * (pix_x + 0.5) / NDC.width - 1, atol=1e-6)
  np.testing.assert_allclose(rays.origins[..., 1], 1 - 2 * (pix_y + 0.5) / NDC.height, atol=1e-6)
  # From a camera at the origin, NDC rays run straight along z' (x and y of a point keep x / z fixed).
  np.testing.assert_allclose(rays.directions[..., :2], 0.0, atol=1e-6)
  np.testing.assert_allclose(rays.directions[..., 2], 2.0, atol=1e-6)
  # Their footprint is a pixel's width in NDC, 2 / W, times 2 / sqrt(12).
  np.testing.assert_allclose(rays.radii, 2 / NDC.width * 2 / np.sqrt(12), rtol=1e-5)
