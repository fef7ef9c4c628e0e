"""The embedded default scene: a small procedural still life, ray traced here, in the Blender layout.

A new user's first `python train.py` trains on this scene, so it needs no download: `ensure_scene` renders
it once into a cache directory (a few seconds on a laptop CPU) and the Blender reader loads it like any
NeRF-synthetic scene. It is small enough for a small NeRF to learn in minutes on a CPU at 64-100 px, yet it
exercises what a NeRF has to get right:

- a tilted beach ball with six coloured wedges (smooth texture on a curved surface);
- a box turned about the vertical, each face its own colour (flat faces, sharp edges);
- an upright ring (torus) with soft bands;
- a thin pole (radius 0.035) topped by a small ball (thin structure, easy to blur away);
- a glossy red ball with a Blinn-Phong highlight (view-dependent colour);
- a pedestal disc under them all, catching hard shadows from a fixed key light;
- a white (transparent) background, like the Blender scenes.

Everything lies in about [-1.15, 1.15] x [-1.15, 1.15] x [-0.5, 0.75] (Blender-like scale, z up). Cameras sit
on the upper hemisphere at radius 4 (`ProceduralSceneSpec.camera_radius`) looking at the origin, so the
usual Blender bounds near=2 and far=6 apply.

Conventions:
- Rays come from `jaxnerf.camera` (OpenGL camera, pixel centres at +0.5; directions have unit length along
  the viewing axis, so the ray parameter t is depth). Arrays of rays are flattened: origins and directions
  [N, 3], ray parameters [N].
- Every primitive is intersected analytically in its own local frame (centred at the origin); a
  `SceneObject` places it in the world with a rotation (local to world) and a centre. The torus, whose
  intersection is a quartic, is found by sphere tracing its exact distance function and polishing the
  root with Newton steps, which is exact to float64 rounding.
- Images are RGBA with straight (not premultiplied) colour: colour is the average over the covered
  supersamples of a pixel and alpha is the covered fraction, as in Blender's PNGs.
- Depth maps hold the t of the first hit of the ray through each pixel centre, inf where nothing is hit.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import Callable, NamedTuple

import numpy as np
from PIL import Image

from jaxnerf import camera
from jaxnerf import reporting

# Bump when the scene's content or rendering changes, so that cached scenes are regenerated.
SCENE_VERSION = 1
SPLITS = ('train', 'val', 'test')
NEAR, FAR = 2.0, 6.0
ELEVATION_RANGE_DEG = (15.0, 65.0)
# Shadow rays start this far off the surface, along its normal, so they do not hit their own surface.
SHADOW_OFFSET = 1e-4


@dataclasses.dataclass(frozen=True)
class ProceduralSceneSpec:
  """What to render: image size, number of views per split, camera orbit and random seed."""

  resolution: int = 80  # width = height, in pixels.
  num_train: int = 100
  num_val: int = 20
  num_test: int = 20
  camera_radius: float = 4.0
  camera_angle_x: float = 0.6911  # horizontal field of view in radians, as the Blender scenes.
  supersampling: int = 3  # samples per pixel along each axis (3 -> 3 x 3 per pixel).
  seed: int = 0


# ---------------------------------------------------------------------------------------------------------
# Ray-primitive intersections, in the primitive's local frame.


class Intersection(NamedTuple):
  """Nearest hit of each ray with one primitive."""

  t: np.ndarray  # [N] ray parameter of the nearest hit with t > t_min, inf where the ray misses.
  normal: np.ndarray  # [N, 3] unit outward normal at the hit (meaningless where t is inf).


def intersect_sphere(origins, directions, radius: float, t_min: float) -> Intersection:
  """Rays [N, 3] against the sphere |p| = radius."""
  a = _dot(directions, directions)
  b = _dot(origins, directions)
  c = _dot(origins, origins) - radius**2
  discriminant = b * b - a * c
  root = np.sqrt(np.maximum(discriminant, 0.0))
  t_enter, t_exit = (-b - root) / a, (-b + root) / a
  t = np.where(t_enter > t_min, t_enter, np.where(t_exit > t_min, t_exit, np.inf))
  t = np.where(discriminant >= 0.0, t, np.inf)
  normal = (origins + _finite(t)[:, None] * directions) / radius
  return Intersection(t, normal)


def intersect_box(origins, directions, half_extents, t_min: float) -> Intersection:
  """Rays [N, 3] against the axis-aligned box |p_i| <= half_extents[i] (slab method)."""
  half_extents = np.asarray(half_extents, dtype=np.float64)
  with np.errstate(divide='ignore', invalid='ignore'):
    inverse = 1.0 / directions
    t_low = (-half_extents - origins) * inverse
    t_high = (half_extents - origins) * inverse
  t_near_slab, t_far_slab = np.fmin(t_low, t_high), np.fmax(t_low, t_high)
  t_enter, t_exit = np.max(t_near_slab, axis=-1), np.min(t_far_slab, axis=-1)
  hit = (t_enter <= t_exit) & (t_exit > t_min)
  from_outside = t_enter > t_min
  t = np.where(hit, np.where(from_outside, t_enter, t_exit), np.inf)
  # The face hit is the slab entered last (from outside) or left first (from inside).
  axis = np.where(from_outside, np.argmax(t_near_slab, axis=-1), np.argmin(t_far_slab, axis=-1))
  points = origins + _finite(t)[:, None] * directions
  side = np.sign(np.take_along_axis(points, axis[:, None], axis=-1))
  normal = np.eye(3)[axis] * side
  return Intersection(t, normal)


def intersect_cylinder(origins, directions, radius: float, half_height: float,
                       t_min: float) -> Intersection:
  """Rays [N, 3] against the closed cylinder x^2 + y^2 <= radius^2, |z| <= half_height."""
  # Side wall: a quadratic in t, valid where the hit lies between the caps.
  a = directions[:, 0]**2 + directions[:, 1]**2
  b = origins[:, 0] * directions[:, 0] + origins[:, 1] * directions[:, 1]
  c = origins[:, 0]**2 + origins[:, 1]**2 - radius**2
  discriminant = b * b - a * c
  root = np.sqrt(np.maximum(discriminant, 0.0))
  candidates = []  # Side enter, side exit, top cap, bottom cap; nan or inf where not hit.
  with np.errstate(divide='ignore', invalid='ignore'):  # Rays parallel to the axis or to the caps.
    for t in ((-b - root) / a, (-b + root) / a):
      z = origins[:, 2] + t * directions[:, 2]
      candidates.append(np.where((discriminant >= 0.0) & (np.abs(z) <= half_height), t, np.inf))
    for cap_z in (half_height, -half_height):
      t = (cap_z - origins[:, 2]) / directions[:, 2]
      xy = origins[:, :2] + t[:, None] * directions[:, :2]
      candidates.append(np.where(_dot(xy, xy) <= radius**2, t, np.inf))
  candidates = np.stack(candidates, axis=-1)  # [N, 4]
  candidates = np.where((candidates > t_min) & ~np.isnan(candidates), candidates, np.inf)
  which = np.argmin(candidates, axis=-1)
  t = np.take_along_axis(candidates, which[:, None], axis=-1)[:, 0]
  points = origins + _finite(t)[:, None] * directions
  side_normal = np.concatenate([points[:, :2] / radius, np.zeros_like(points[:, :1])], axis=-1)
  cap_normal = np.where((which == 2)[:, None], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0])
  normal = np.where((which < 2)[:, None], side_normal, cap_normal)
  return Intersection(t, normal)


def torus_distance(points, major_radius: float, minor_radius: float) -> np.ndarray:
  """Signed distance [N] from points [N, 3] to the torus around the z axis (exact, negative inside)."""
  ring_distance = np.hypot(points[:, 0], points[:, 1]) - major_radius
  return np.hypot(ring_distance, points[:, 2]) - minor_radius


def torus_normal(points, major_radius: float) -> np.ndarray:
  """Unit outward normals [N, 3] of the torus around the z axis at surface points [N, 3]."""
  radial = points[:, :2] / np.hypot(points[:, 0], points[:, 1])[:, None]
  offset = points - np.concatenate([major_radius * radial, np.zeros_like(points[:, :1])], axis=-1)
  return offset / np.linalg.norm(offset, axis=-1, keepdims=True)


def intersect_torus(origins, directions, major_radius: float, minor_radius: float, t_min: float,
                    max_steps: int = 100, newton_steps: int = 4) -> Intersection:
  """Rays [N, 3] against the torus around the z axis (ring of `major_radius`, tube of `minor_radius`).

  Sphere tracing with the exact distance function never steps past the first surface, so it converges to
  the first hit; Newton steps along the ray then polish that root to float64 precision. Rays that graze
  the tube more closely than the stopping tolerance without crossing it count as misses.
  """
  length = np.linalg.norm(directions, axis=-1)
  unit = directions / length[:, None]
  # Only rays through the bounding sphere are marched, from where they enter it.
  bound = major_radius + minor_radius
  b = _dot(origins, unit)
  discriminant = b * b - (_dot(origins, origins) - bound**2)
  root = np.sqrt(np.maximum(discriminant, 0.0))
  s = np.maximum(-b - root, t_min * length)  # Distance travelled along the unit direction.
  s_exit = -b + root
  converged = np.zeros(len(origins), dtype=bool)
  active = np.flatnonzero((discriminant > 0.0) & (s < s_exit))
  for _ in range(max_steps):
    if active.size == 0:
      break
    distance = torus_distance(origins[active] + s[active, None] * unit[active], major_radius,
                              minor_radius)
    s[active] += distance
    close = distance < 1e-4  # Close enough for the Newton steps to converge.
    converged[active[close]] = True
    active = active[~close & (s[active] < s_exit[active])]

  hits = np.flatnonzero(converged)
  s_hit = s[hits]
  for _ in range(newton_steps):
    points = origins[hits] + s_hit[:, None] * unit[hits]
    slope = _dot(torus_normal(points, major_radius), unit[hits])
    step = torus_distance(points, major_radius, minor_radius) / np.minimum(slope, -1e-3)
    s_hit = s_hit - step
  points = origins[hits] + s_hit[:, None] * unit[hits]
  on_surface = np.abs(torus_distance(points, major_radius, minor_radius)) < 1e-7
  t = np.full(len(origins), np.inf)
  t[hits] = np.where(on_surface & (s_hit > t_min * length[hits]), s_hit / length[hits], np.inf)
  normal = np.zeros_like(origins)
  normal[hits] = torus_normal(points, major_radius)
  return Intersection(t, normal)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Row-wise dot products [N] of vectors [N, 3] (einsum is much faster than a sum over the last axis)."""
  return np.einsum('ij,ij->i', a, b)


def _finite(t: np.ndarray) -> np.ndarray:
  """t [N] with inf replaced by 0, to evaluate hit points without producing nan for misses."""
  return np.where(np.isfinite(t), t, 0.0)


@dataclasses.dataclass(frozen=True)
class Sphere:
  radius: float

  @property
  def bounding_radius(self) -> float:
    return self.radius

  def intersect(self, origins, directions, t_min):
    return intersect_sphere(origins, directions, self.radius, t_min)


@dataclasses.dataclass(frozen=True)
class Box:
  half_extents: tuple

  @property
  def bounding_radius(self) -> float:
    return float(np.linalg.norm(self.half_extents))

  def intersect(self, origins, directions, t_min):
    return intersect_box(origins, directions, self.half_extents, t_min)


@dataclasses.dataclass(frozen=True)
class Cylinder:
  radius: float
  half_height: float

  @property
  def bounding_radius(self) -> float:
    return float(np.hypot(self.radius, self.half_height))

  def intersect(self, origins, directions, t_min):
    return intersect_cylinder(origins, directions, self.radius, self.half_height, t_min)


@dataclasses.dataclass(frozen=True)
class Torus:
  major_radius: float
  minor_radius: float

  @property
  def bounding_radius(self) -> float:
    return self.major_radius + self.minor_radius

  def intersect(self, origins, directions, t_min):
    return intersect_torus(origins, directions, self.major_radius, self.minor_radius, t_min)


# ---------------------------------------------------------------------------------------------------------
# Textures: functions of local hit points [N, 3] and local unit normals [N, 3] giving albedo [N, 3].

Texture = Callable[[np.ndarray, np.ndarray], np.ndarray]


def solid(colour) -> Texture:
  """One colour everywhere."""
  colour = np.asarray(colour, dtype=np.float64)
  return lambda points, normals: np.broadcast_to(colour, points.shape).copy()


def beach_ball(wedge_colours, cap_colour, cap_height: float = 0.93) -> Texture:
  """Sphere texture: equal wedges in azimuth about the local z axis, with caps where |n_z| > cap_height."""
  wedge_colours = np.asarray(wedge_colours, dtype=np.float64)
  cap_colour = np.asarray(cap_colour, dtype=np.float64)

  def texture(points, normals):
    azimuth = np.arctan2(normals[:, 1], normals[:, 0]) + np.pi  # [0, 2 pi]
    wedge = np.floor(azimuth / (2 * np.pi) * len(wedge_colours)).astype(int) % len(wedge_colours)
    return np.where((np.abs(normals[:, 2]) > cap_height)[:, None], cap_colour, wedge_colours[wedge])

  return texture


def box_faces(face_colours) -> Texture:
  """Box texture: one colour per face, ordered +x, -x, +y, -y, +z, -z."""
  face_colours = np.asarray(face_colours, dtype=np.float64)

  def texture(points, normals):
    axis = np.argmax(np.abs(normals), axis=-1)
    negative = np.take_along_axis(normals, axis[:, None], axis=-1)[:, 0] < 0
    return face_colours[2 * axis + negative]

  return texture


def azimuthal_bands(colour_a, colour_b, count: int) -> Texture:
  """Smooth (cosine) alternation between two colours, `count` periods around the local z axis."""
  colour_a, colour_b = (np.asarray(c, dtype=np.float64) for c in (colour_a, colour_b))

  def texture(points, normals):
    weight = 0.5 + 0.5 * np.cos(count * np.arctan2(points[:, 1], points[:, 0]))
    return weight[:, None] * colour_a + (1.0 - weight[:, None]) * colour_b

  return texture


# ---------------------------------------------------------------------------------------------------------
# Scene objects and the default scene.


@dataclasses.dataclass(frozen=True)
class Material:
  """Lambertian albedo from a texture, plus an optional Blinn-Phong highlight (specular > 0)."""

  texture: Texture
  specular: float = 0.0  # Strength of the white highlight, 0 for matte.
  shininess: float = 1.0  # Blinn-Phong exponent: larger is a smaller, sharper highlight.


@dataclasses.dataclass(frozen=True, eq=False)
class SceneObject:
  """A primitive placed in the world: world point = rotation @ local point + centre."""

  name: str
  shape: object  # Sphere, Box, Cylinder or Torus: intersect(origins, directions, t_min), bounding_radius.
  material: Material
  centre: tuple = (0.0, 0.0, 0.0)
  rotation: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))  # [3, 3], local to world.

  def to_local(self, points: np.ndarray) -> np.ndarray:
    """World points [N, 3] in this object's frame."""
    return (points - np.asarray(self.centre)) @ self.rotation

  def rays_near(self, origins, directions) -> np.ndarray:
    """Indices of the rays [N, 3] that pass through this object's bounding sphere."""
    offsets = origins - np.asarray(self.centre)
    a = _dot(directions, directions)
    b = _dot(offsets, directions)
    c = _dot(offsets, offsets) - self.shape.bounding_radius**2
    return np.flatnonzero(b * b - a * c >= 0.0)

  def intersect(self, origins, directions, t_min: float) -> Intersection:
    """World rays [N, 3]; t is unchanged by the rigid change of frame, normals return to world.

    Only the rays through the bounding sphere are intersected exactly, which saves most of the work.
    """
    near = self.rays_near(origins, directions)
    local = self.shape.intersect(self.to_local(origins[near]), directions[near] @ self.rotation, t_min)
    t = np.full(len(origins), np.inf)
    normal = np.zeros_like(origins)
    t[near] = local.t
    normal[near] = local.normal @ self.rotation.T
    return Intersection(t, normal)


def rotation_about(axis, angle_deg: float) -> np.ndarray:
  """[3, 3] rotation by `angle_deg` about `axis` (right-handed, Rodrigues' formula)."""
  axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
  angle = np.deg2rad(angle_deg)
  cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
  return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


GROUND_Z = -0.4  # Top of the pedestal disc; the objects rest on it.


def default_objects() -> tuple:
  """The objects of the default scene (see the module docstring)."""
  return (
      SceneObject('pedestal', Cylinder(radius=1.15, half_height=0.05),
                  Material(solid((0.86, 0.84, 0.80))), centre=(0.0, 0.0, GROUND_Z - 0.05)),
      SceneObject('beach_ball', Sphere(radius=0.42),
                  Material(beach_ball([(0.92, 0.22, 0.18), (0.97, 0.95, 0.90), (0.18, 0.42, 0.88),
                                       (0.98, 0.80, 0.18), (0.97, 0.95, 0.90), (0.20, 0.68, 0.38)],
                                      cap_colour=(0.97, 0.95, 0.90))),
                  centre=(-0.40, -0.35, GROUND_Z + 0.42), rotation=rotation_about((1.0, 1.0, 0.0), 35.0)),
      SceneObject('box', Box(half_extents=(0.24, 0.24, 0.24)),
                  Material(box_faces([(0.95, 0.52, 0.38), (0.30, 0.62, 0.66), (0.58, 0.76, 0.34),
                                      (0.62, 0.46, 0.80), (0.97, 0.86, 0.42), (0.50, 0.50, 0.50)])),
                  centre=(0.50, -0.45, GROUND_Z + 0.24), rotation=rotation_about((0.0, 0.0, 1.0), 30.0)),
      SceneObject('ring', Torus(major_radius=0.30, minor_radius=0.08),
                  Material(azimuthal_bands((0.16, 0.55, 0.62), (0.55, 0.84, 0.80), count=4)),
                  centre=(0.35, 0.45, GROUND_Z + 0.38),
                  rotation=rotation_about((0.0, 0.0, 1.0), -40.0) @ rotation_about((1.0, 0.0, 0.0), 90.0)),
      SceneObject('glossy_ball', Sphere(radius=0.26),
                  Material(solid((0.78, 0.10, 0.12)), specular=0.8, shininess=60.0),
                  centre=(-0.45, 0.50, GROUND_Z + 0.26)),
      SceneObject('pole', Cylinder(radius=0.035, half_height=0.5),
                  Material(solid((0.35, 0.35, 0.40))), centre=(0.05, 0.0, GROUND_Z + 0.5)),
      SceneObject('pole_top', Sphere(radius=0.09),
                  Material(solid((0.98, 0.70, 0.15))), centre=(0.05, 0.0, GROUND_Z + 1.05)),
  )


DEFAULT_OBJECTS = default_objects()


# ---------------------------------------------------------------------------------------------------------
# Tracing and shading.


class Hit(NamedTuple):
  """Nearest hit of each ray over all objects."""

  t: np.ndarray  # [N] ray parameter, inf where nothing is hit.
  normal: np.ndarray  # [N, 3] unit world normal at the hit.
  object_index: np.ndarray  # [N] index into the objects, -1 where nothing is hit.


def nearest_hit(objects, origins, directions, t_min: float = 0.0) -> Hit:
  """The first object along each ray [N, 3] with t > t_min."""
  t = np.full(len(origins), np.inf)
  normal = np.zeros_like(origins)
  object_index = np.full(len(origins), -1)
  for index, obj in enumerate(objects):
    hit = obj.intersect(origins, directions, t_min)
    closer = hit.t < t
    t = np.where(closer, hit.t, t)
    normal = np.where(closer[:, None], hit.normal, normal)
    object_index = np.where(closer, index, object_index)
  return Hit(t, normal, object_index)


@dataclasses.dataclass(frozen=True)
class Lighting:
  """Directional lights (unit vectors pointing towards the light) and a sky-like ambient term."""

  key_direction: tuple = tuple(np.array([-0.35, -0.45, 1.0]) / np.linalg.norm([-0.35, -0.45, 1.0]))
  key_intensity: float = 0.65  # Casts shadows and the specular highlight.
  fill_direction: tuple = tuple(np.array([0.7, 0.6, 0.35]) / np.linalg.norm([0.7, 0.6, 0.35]))
  fill_intensity: float = 0.2
  ambient: float = 0.4  # Scaled from 0.75 (facing down) to 1 (facing up).


LIGHTING = Lighting()


def key_light_visible(objects, points, normals, lighting: Lighting = LIGHTING) -> np.ndarray:
  """[N] 1.0 where the key light reaches surface points [N, 3] with normals [N, 3], 0.0 in shadow."""
  origins = points + SHADOW_OFFSET * normals
  directions = np.broadcast_to(np.asarray(lighting.key_direction), points.shape)
  return np.isinf(nearest_hit(objects, origins, directions).t).astype(np.float64)


def shade(albedo, normals, viewdirs, key_visible, specular, shininess,
          lighting: Lighting = LIGHTING) -> np.ndarray:
  """Colour [N, 3] in [0, 1] of surface points.

  Args:
    albedo: [N, 3] diffuse colour.
    normals: [N, 3] unit normals.
    viewdirs: [N, 3] unit directions of the camera rays (from the camera towards the point).
    key_visible: [N] 1 where the key light is unoccluded, 0 in shadow.
    specular, shininess: [N] (or scalars) Blinn-Phong highlight strength and exponent.
  """
  key, fill = np.asarray(lighting.key_direction), np.asarray(lighting.fill_direction)
  key_cosine = np.maximum(normals @ key, 0.0)
  ambient = lighting.ambient * (0.875 + 0.125 * normals[:, 2])
  diffuse = (ambient + lighting.key_intensity * key_cosine * key_visible
             + lighting.fill_intensity * np.maximum(normals @ fill, 0.0))
  halfway = key - viewdirs
  halfway /= np.linalg.norm(halfway, axis=-1, keepdims=True)
  highlight = specular * np.maximum(_dot(normals, halfway), 0.0)**shininess
  highlight *= key_visible * (key_cosine > 0.0)
  return np.clip(albedo * diffuse[:, None] + highlight[:, None], 0.0, 1.0)


def surface_albedo(objects, hit: Hit, points) -> np.ndarray:
  """Albedo [N, 3] at hit points [N, 3] from each object's texture (zero where nothing is hit)."""
  albedo = np.zeros_like(points)
  for index, obj in enumerate(objects):
    mask = hit.object_index == index
    if np.any(mask):
      albedo[mask] = obj.material.texture(obj.to_local(points[mask]), hit.normal[mask] @ obj.rotation)
  return albedo


def trace_colours(objects, origins, directions) -> tuple:
  """Traces rays [N, 3]: colour [N, 3] of the first hit (0 where missed) and its ray parameter t [N]."""
  hit = nearest_hit(objects, origins, directions)
  found = np.flatnonzero(np.isfinite(hit.t))
  hit_found = Hit(hit.t[found], hit.normal[found], hit.object_index[found])
  points = origins[found] + hit_found.t[:, None] * directions[found]
  viewdirs = directions[found] / np.linalg.norm(directions[found], axis=-1, keepdims=True)
  specular = np.array([obj.material.specular for obj in objects])[hit_found.object_index]
  shininess = np.array([obj.material.shininess for obj in objects])[hit_found.object_index]
  colour = shade(surface_albedo(objects, hit_found, points), hit_found.normal, viewdirs,
                 key_light_visible(objects, points, hit_found.normal), specular, shininess)
  colours = np.zeros_like(origins)
  colours[found] = colour
  return colours, hit.t


# ---------------------------------------------------------------------------------------------------------
# Images.


def focal_length(spec: ProceduralSceneSpec) -> float:
  """Focal length in pixels from the horizontal field of view."""
  return 0.5 * spec.resolution / np.tan(0.5 * spec.camera_angle_x)


def supersample_rays(spec: ProceduralSceneSpec, camtoworld) -> camera.Rays:
  """Rays through a regular s x s grid inside each pixel, each field [H, W, s * s, C]."""
  s, size = spec.supersampling, spec.resolution
  pix_x, pix_y = camera.pixel_grid(size, size)
  offsets = (np.arange(s) + 0.5) / s - 0.5  # Sub-pixel offsets from the pixel centre.
  offset_x, offset_y = (o.reshape(-1) for o in np.meshgrid(offsets, offsets, indexing='xy'))
  return camera.pixels_to_rays(pix_x[..., None] + offset_x, pix_y[..., None] + offset_y, camtoworld,
                               focal_length(spec), (size / 2, size / 2), NEAR, FAR)


def average_supersamples(colours, covered) -> np.ndarray:
  """Straight-alpha RGBA [H, W, 4] from supersample colours [H, W, S, 3] and coverage [H, W, S]."""
  alpha = covered.mean(axis=-1)
  colour_sum = np.sum(colours * covered[..., None], axis=-2)
  colour = colour_sum / np.maximum(covered.sum(axis=-1), 1.0)[..., None]
  return np.concatenate([colour, alpha[..., None]], axis=-1)


def render_view(spec: ProceduralSceneSpec, camtoworld) -> tuple:
  """RGBA float32 [H, W, 4] (straight, not premultiplied alpha) and depth [H, W] of one view.

  Args:
    spec: the scene spec (resolution, field of view, supersampling).
    camtoworld: [3, 4] or [4, 4] camera-to-world matrix.

  Returns:
    rgba: colour averaged over the covered supersamples, alpha the covered fraction.
    depth: float32 t of the first hit of the ray through each pixel centre, inf for background.
  """
  size = spec.resolution
  rays = supersample_rays(spec, camtoworld)
  origins = rays.origins.reshape(-1, 3).astype(np.float64)
  directions = rays.directions.reshape(-1, 3).astype(np.float64)
  colours, t = trace_colours(DEFAULT_OBJECTS, origins, directions)
  samples = spec.supersampling**2
  rgba = average_supersamples(colours.reshape(size, size, samples, 3),
                              np.isfinite(t).reshape(size, size, samples).astype(np.float64))

  centre_rays = camera.image_rays(camtoworld, size, size, focal_length(spec), NEAR, FAR)
  depth = nearest_hit(DEFAULT_OBJECTS, centre_rays.origins.reshape(-1, 3).astype(np.float64),
                      centre_rays.directions.reshape(-1, 3).astype(np.float64)).t
  return rgba.astype(np.float32), depth.reshape(size, size).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Cameras and files.


def sample_poses(spec: ProceduralSceneSpec, split: str) -> np.ndarray:
  """[N, 3, 4] cameras on the upper hemisphere looking at the origin, random per (seed, split).

  Azimuth is uniform in [0, 360) degrees; elevation covers ELEVATION_RANGE_DEG uniformly by area.
  """
  num = {'train': spec.num_train, 'val': spec.num_val, 'test': spec.num_test}[split]
  rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
  azimuths = rng.uniform(0.0, 360.0, num)
  low, high = np.sin(np.deg2rad(ELEVATION_RANGE_DEG))
  elevations = np.rad2deg(np.arcsin(rng.uniform(low, high, num)))
  return np.stack([camera.spherical_pose(a, e, spec.camera_radius) for a, e in zip(azimuths, elevations)])


def write_split(directory: pathlib.Path, spec: ProceduralSceneSpec, split: str) -> None:
  """Renders one split: `{split}/r_{i}.png`, `{split}/r_{i}_depth.npy` and `transforms_{split}.json`."""
  (directory / split).mkdir(parents=True, exist_ok=True)
  poses = sample_poses(spec, split)
  # numpy releases the GIL inside its array loops, so a few threads render views in parallel.
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
  try:
    views = reporting.progress(pool.map(lambda camtoworld: render_view(spec, camtoworld), poses),
                               f'ray tracing the {split} views of the demo scene', total=len(poses),
                               unit='view')
    frames = [_write_frame(directory, split, index, camtoworld, *view)
              for index, (camtoworld, view) in enumerate(zip(poses, views))]
  finally:
    pool.shutdown(cancel_futures=True)  # On an interrupt, do not render the remaining views first.
  with open(directory / f'transforms_{split}.json', 'w') as f:
    json.dump({'camera_angle_x': spec.camera_angle_x, 'frames': frames}, f, indent=2)


def _write_frame(directory: pathlib.Path, split: str, index: int, camtoworld, rgba, depth) -> dict:
  """Saves one view's PNG and depth map; returns its frame entry for transforms_{split}.json."""
  name = f'r_{index}'
  pixels = np.round(np.clip(rgba, 0.0, 1.0) * 255.0).astype(np.uint8)
  Image.fromarray(pixels).save(directory / split / f'{name}.png')
  np.save(directory / split / f'{name}_depth.npy', depth)
  matrix = np.concatenate([camtoworld, [[0.0, 0.0, 0.0, 1.0]]], axis=0)
  return {'file_path': f'./{split}/{name}', 'transform_matrix': matrix.tolist()}


def write_scene(directory, spec: ProceduralSceneSpec) -> None:
  """Writes the scene in the Blender layout into `directory` (created if needed).

  Files: transforms_{train,val,test}.json with 'camera_angle_x' and 'frames' (each {'file_path':
  './train/r_0', 'transform_matrix': 4x4 list}), RGBA PNGs train/r_0.png, ..., and float32 depth maps
  train/r_0_depth.npy, ... ([H, W], inf for background).
  """
  directory = pathlib.Path(directory)
  for split in SPLITS:
    write_split(directory, spec, split)


def scene_name(spec: ProceduralSceneSpec) -> str:
  """Directory name of a spec's scene: changes with the spec and with SCENE_VERSION."""
  key = json.dumps({'version': SCENE_VERSION, **dataclasses.asdict(spec)}, sort_keys=True)
  return f'procedural_{spec.resolution}px_{hashlib.sha256(key.encode()).hexdigest()[:10]}'


def ensure_scene(cache_dir, spec: ProceduralSceneSpec = ProceduralSceneSpec()) -> pathlib.Path:
  """Returns the scene directory `cache_dir/<scene_name(spec)>`, generating it first if missing.

  Generation writes to a temporary sibling directory and renames it into place at the end, so an
  interrupted generation never leaves a half-written scene (a leftover temporary directory is harmless).
  """
  cache_dir = pathlib.Path(cache_dir)
  target = cache_dir / scene_name(spec)
  if target.is_dir():
    return target
  cache_dir.mkdir(parents=True, exist_ok=True)
  partial = pathlib.Path(tempfile.mkdtemp(prefix=f'.{target.name}.partial-', dir=cache_dir))
  partial.chmod(0o755)  # mkdtemp makes it private; the scene is ordinary data.
  try:
    write_scene(partial, spec)
    os.rename(partial, target)
  except OSError:
    if not target.is_dir():  # Not a concurrent generation that finished first: a real failure.
      raise
  finally:
    if partial.exists():
      shutil.rmtree(partial, ignore_errors=True)
  return target
