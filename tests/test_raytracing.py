"""Tests of the analytic ray tracer behind the procedural scenes: known hits of each primitive, shading."""

import numpy as np
import pytest

from jaxnerf.datasets import raytracing as rt


def _rays(origins, directions):
  return np.atleast_2d(np.asarray(origins, float)), np.atleast_2d(np.asarray(directions, float))


# Known answers for single rays against each primitive, in its local frame.


@pytest.mark.parametrize('origin, direction, expected_t, expected_normal', [
    ((0, 0, 5), (0, 0, -1), 4.5, (0, 0, 1)),  # Straight down onto the top.
    ((0, 0, 5), (0, 0, -2), 2.25, (0, 0, 1)),  # t scales with 1 / |direction|.
    ((3, 0.2, 0), (-1, 0, 0), 2.5, (1, 0, 0)),  # Hits the +x face.
    ((0, 0, 0), (0, 1, 0), 0.5, (0, 1, 0)),  # From inside: the exit point.
    ((3, 3, 0), (-1, 0, 0), np.inf, None),  # Passes beside it.
])
def test_intersect_box(origin, direction, expected_t, expected_normal):
  hit = rt.intersect_box(*_rays(origin, direction), (0.5, 0.5, 0.5), t_min=1e-6)
  np.testing.assert_allclose(hit.t, [expected_t])
  if expected_normal is not None:
    np.testing.assert_allclose(hit.normal[0], expected_normal)


@pytest.mark.parametrize('origin, direction, expected_t, expected_normal', [
    ((0, 0, 5), (0, 0, -1), 4.0, (0, 0, 1)),  # Top cap.
    ((0, 0, -5), (0, 0, 1), 4.0, (0, 0, -1)),  # Bottom cap.
    ((3, 0, 0.5), (-1, 0, 0), 2.5, (1, 0, 0)),  # Side wall.
    ((3, 0, 1.5), (-1, 0, 0), np.inf, None),  # Above the top.
    ((0.6, 0, 5), (0, 0, -1), np.inf, None),  # Parallel to the axis, outside.
])
def test_intersect_cylinder(origin, direction, expected_t, expected_normal):
  hit = rt.intersect_cylinder(*_rays(origin, direction), 0.5, 1.0, t_min=1e-6)
  np.testing.assert_allclose(hit.t, [expected_t])
  if expected_normal is not None:
    np.testing.assert_allclose(hit.normal[0], expected_normal, atol=1e-12)


@pytest.mark.parametrize('origin, direction, expected_t, expected_normal', [
    ((1.0, 0, 5), (0, 0, -1), 4.75, (0, 0, 1)),  # Onto the top of the tube.
    ((0, 0, 5), (0, 0, -1), np.inf, None),  # Down the hole.
    ((-5, 0, 0), (1, 0, 0), 3.75, (-1, 0, 0)),  # Side on: the outer rim, not the far side.
    ((0, 0, 0), (1, 0, 0), 0.75, (-1, 0, 0)),  # From the hole: the inner rim.
    ((-5, 0, 0.3), (1, 0, 0), np.inf, None),  # Above the ring.
])
def test_intersect_torus(origin, direction, expected_t, expected_normal):
  hit = rt.intersect_torus(*_rays(origin, direction), 1.0, 0.25, t_min=1e-6)
  np.testing.assert_allclose(hit.t, [expected_t], rtol=1e-9)
  if expected_normal is not None:
    np.testing.assert_allclose(hit.normal[0], expected_normal, atol=1e-9)


def test_intersect_sphere_from_outside_and_inside():
  origins, directions = _rays([(0, 0, 3), (0, 0, 0)], [(0, 0, -1), (1, 0, 0)])
  hit = rt.intersect_sphere(origins, directions, 0.5, t_min=1e-6)
  np.testing.assert_allclose(hit.t, [2.5, 0.5])
  np.testing.assert_allclose(hit.normal, [(0, 0, 1), (1, 0, 0)])


def test_shade_is_view_dependent_only_when_specular():
  albedo, normal = np.array([[0.8, 0.1, 0.1]]), np.array([[0.0, 0.0, 1.0]])
  key = np.asarray(rt.LIGHTING.key_direction)
  mirror_view = key * [1, 1, -1]  # Looking along the key light's reflection: the highlight's peak.
  other_view = np.array([0.6, 0.0, -0.8])
  views = [mirror_view[None], other_view[None]]
  glossy = [rt.shade(albedo, normal, v, np.ones(1), 0.8, 60.0) for v in views]
  matte = [rt.shade(albedo, normal, v, np.ones(1), 0.0, 60.0) for v in views]
  assert np.max(np.abs(glossy[0] - glossy[1])) > 0.1
  np.testing.assert_allclose(matte[0], matte[1])
  # In shadow, there is no highlight.
  np.testing.assert_allclose(rt.shade(albedo, normal, views[0], np.zeros(1), 0.8, 60.0),
                             rt.shade(albedo, normal, views[0], np.zeros(1), 0.0, 60.0))
