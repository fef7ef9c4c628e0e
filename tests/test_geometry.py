"""Geometry export: marching cubes of analytic densities, Chamfer distances, surface sampling, contraction's
inverse, and the mesh command on a trained workdir."""

import numpy as np
import pytest

from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.ops import coord
from jaxnerf.outputs import geometry


def _sphere_density(radius, sharpness=40.0, inside=100.0):
  """A smooth ball: `inside` within `radius` of the origin, falling to 0 across a shell ~2/sharpness thick."""
  return lambda p: inside * 0.5 * (1 + np.tanh((radius - np.linalg.norm(p, axis=-1)) * sharpness))


def _sphere_points(radius, n, seed=1):
  points = np.random.default_rng(seed).normal(size=(n, 3))
  return radius * points / np.linalg.norm(points, axis=-1, keepdims=True)


def test_marching_cubes_finds_an_analytic_sphere_with_outward_normals():
  box, radius = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0), 0.6
  calls = []
  density, spacing = geometry.sample_density_grid(_sphere_density(radius), box, 41, 1000,
                                                  lambda done, total: calls.append((done, total)))
  assert density.shape == (41, 41, 41) and calls[-1] == (41**3, 41**3)
  np.testing.assert_allclose(spacing, 0.05, rtol=1e-6)
  mesh = geometry.marching_cubes(density, box, spacing, 50.0)  # Half the inside density: at the radius.
  distances = np.linalg.norm(mesh.vertices, axis=-1)
  assert np.max(np.abs(distances - radius)) < 0.25 * 0.05  # Within a quarter cell.
  cosines = np.sum(mesh.normals * mesh.vertices / distances[:, None], axis=-1)
  assert np.min(cosines) > 0.9 and np.mean(cosines) > 0.99  # Out of the ball, down the density.
  surface = geometry.sample_surface(mesh, 20000)
  to_truth, from_truth = geometry.chamfer_distance(surface, _sphere_points(radius, 20000))
  assert to_truth < 0.01 and from_truth < 0.02  # (The truth's own sampling spacing is ~0.008.)
  # A threshold the density never reaches is an error that says the range, not an empty mesh.
  with pytest.raises(ConfigError, match=r'runs from .* to 100: no surface at the threshold 500'):
    geometry.marching_cubes(density, box, spacing, 500.0)


def test_grids_keep_cells_cubic_and_refuse_what_cannot_be_meshed():
  assert geometry.grid_shape((0, 0, 0, 2, 1, 0.5), 9) == (9, 5, 3)
  with pytest.raises(ConfigError, match='at least 2'):
    geometry.grid_shape((0, 0, 0, 1, 1, 1), 1)
  with pytest.raises(ConfigError, match='each min below its max'):
    geometry.grid_shape((0, 0, 0, 1, -1, 1), 8)
  with pytest.raises(CheckpointError, match='3 non-finite densities'):
    geometry.sample_density_grid(lambda p: np.where(np.arange(len(p)) < 3, np.nan, 1.0), (0, 0, 0, 1, 1, 1),
                                 4, 64)
  # A slab 1% of the diagonal thick at the default threshold is half opaque.
  box = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
  thickness = 0.01 * np.sqrt(27.0)
  assert 1 - np.exp(-geometry.default_density_threshold(box) * thickness) == pytest.approx(0.5)


def test_chamfer_distance_against_brute_force():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(50, 3)), rng.normal(size=(70, 3)) + 0.3
  pairwise = np.linalg.norm(a[:, None] - b[None], axis=-1)
  a_to_b, b_to_a = geometry.chamfer_distance(a, b)
  assert a_to_b == pytest.approx(pairwise.min(axis=1).mean()) and b_to_a == pytest.approx(
      pairwise.min(axis=0).mean())
  assert geometry.chamfer_distance(a, a) == (0.0, 0.0)


def test_surface_samples_lie_on_the_triangles_in_proportion_to_their_area():
  vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 1], [0, 1, 1]], np.float32)
  faces = np.array([[0, 1, 2], [3, 4, 5]], np.int32)  # Areas 0.5 and 1.5, in the planes z = 0 and z = 1.
  mesh = geometry.Mesh(vertices, faces, np.zeros_like(vertices))
  points = geometry.sample_surface(mesh, 40000)
  low, high = points[points[:, 2] < 0.5], points[points[:, 2] > 0.5]
  assert len(low) + len(high) == 40000 and len(high) / len(low) == pytest.approx(3.0, rel=0.05)
  assert np.all(low[:, 0] + low[:, 1] <= 1 + 1e-6) and np.all(low >= -1e-6)
  assert np.all(high[:, 0] / 3 + high[:, 1] <= 1 + 1e-6)
  np.testing.assert_allclose(low[:, 2], 0.0, atol=1e-6)
  np.testing.assert_allclose(high[:, 2], 1.0, atol=1e-6)


def test_uncontract_inverts_the_contraction_from_near_to_far():
  directions = _sphere_points(1.0, 64, seed=3)
  for norm in (0.0, 0.3, 1.0, 1.5, 10.0, 500.0):
    x = (directions * norm).astype(np.float32)
    np.testing.assert_allclose(coord.uncontract(coord.contract(x)), x, rtol=2e-4, atol=1e-6)
  # The ball's surface (infinity) is clipped to a finite distance.
  assert np.all(np.isfinite(coord.uncontract(np.array([[2.0, 0.0, 0.0], [0.0, 5.0, 0.0]]))))


def test_nearest_camera_viewdirs_look_from_the_closest_camera():
  cameras = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])
  points = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
  np.testing.assert_allclose(geometry.nearest_camera_viewdirs(points, cameras), [[0, 0, -1], [-1, 0, 0]])


def test_keep_faces_drops_faces_with_a_dropped_vertex_and_renumbers():
  vertices = np.arange(15, dtype=np.float32).reshape(5, 3)
  mesh = geometry.Mesh(vertices, np.array([[0, 1, 2], [2, 3, 4], [1, 3, 4]], np.int32), vertices * 0)
  kept = geometry.keep_faces(mesh, np.array([True, False, True, True, True]))
  np.testing.assert_array_equal(kept.vertices, vertices[[2, 3, 4]])
  np.testing.assert_array_equal(kept.faces, [[0, 1, 2]])
