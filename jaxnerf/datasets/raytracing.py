"""A small analytic ray tracer in NumPy (float64): the primitives and lighting that the embedded procedural
scenes (procedural.py) are made of; their surfaces' colours come from textures.py.

Conventions:
- Arrays of rays are flattened: origins and directions [N, 3], ray parameters t [N] (depth along the viewing
  axis when the rays come from `jaxnerf.ops.camera`).
- Every primitive is intersected analytically in its own local frame (centred at the origin); a
  `SceneObject` places it in the world with a rotation (local to world) and a centre. The torus, whose
  intersection is a quartic, is found by sphere tracing its exact distance function and polishing the
  root with Newton steps, which is exact to float64 rounding.
- Shading is Lambertian with a Blinn-Phong highlight, a shadow-casting key light, a fill light and a
  sky-like ambient term (`Lighting`).
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from jaxnerf.datasets.textures import Texture
from jaxnerf.metrics import REGIONS

# Shadow rays start this far off the surface, along its normal, so they do not hit their own surface.
SHADOW_OFFSET = 1e-4

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
# Scene objects.


@dataclasses.dataclass(frozen=True)
class Material:
  """Lambertian albedo from a texture, plus an optional Blinn-Phong highlight (specular > 0) and an optional
  reflection of the scene's environment (mirror > 0), blurred by `roughness`."""

  texture: Texture
  specular: float = 0.0  # Strength of the white highlight, 0 for matte.
  shininess: float = 1.0  # Blinn-Phong exponent: larger is a smaller, sharper highlight.
  unlit: bool = False  # Shows its albedo as it is and casts no shadow (a sky dome).
  mirror: float = 0.0  # Weight of the reflected environment: 0 matte, 1 a perfect mirror.
  roughness: float = 0.0  # Spread (radians, about) of the reflected directions: 0 sharp, 0.3 blurred.

  @property
  def region(self) -> str:
    """The kind of surface it is, for scoring by region (metrics.REGIONS): 'background' (unlit: a sky),
    'mirror' (reflecting at least MIRROR_LIKE of the environment), 'glossy' (any other reflection or
    highlight) or 'matte'."""
    if self.unlit:
      return 'background'
    if self.mirror >= MIRROR_LIKE:
      return 'mirror'
    return 'glossy' if self.mirror > 0 or self.specular > 0 else 'matte'


# A material whose reflection weighs at least this much is mirror-like: its colour is mostly the reflection.
MIRROR_LIKE = 0.8


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


# ---------------------------------------------------------------------------------------------------------
# Tracing and shading.


class Hit(NamedTuple):
  """Nearest hit of each ray over all objects."""

  t: np.ndarray  # [N] ray parameter, inf where nothing is hit.
  normal: np.ndarray  # [N, 3] unit world normal at the hit.
  object_index: np.ndarray  # [N] index into the objects, -1 where nothing is hit.


def hit_regions(objects, hit: Hit) -> np.ndarray:
  """[N] uint8 index into metrics.REGIONS of each hit's material (Material.region), 'background' where
  nothing is hit."""
  region_of_object = np.array([REGIONS.index(obj.material.region) for obj in objects] + [REGIONS.index('background')],
                              np.uint8)
  return region_of_object[hit.object_index]  # Index -1 (no hit) reads the last entry.


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
  casters = [obj for obj in objects if not obj.material.unlit]
  return np.isinf(nearest_hit(casters, origins, directions).t).astype(np.float64)


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


# Fixed offsets (unit disc, a sunflower spiral) of the reflected directions averaged for a rough mirror.
_GLOSSY_SAMPLES = 24
_GLOSSY_RADII = np.sqrt((np.arange(_GLOSSY_SAMPLES) + 0.5) / _GLOSSY_SAMPLES)
_GLOSSY_ANGLES = 2.39996 * np.arange(_GLOSSY_SAMPLES)  # The golden angle.
_GLOSSY_OFFSETS = np.stack([_GLOSSY_RADII * np.cos(_GLOSSY_ANGLES), _GLOSSY_RADII * np.sin(_GLOSSY_ANGLES)], -1)


def reflected_environment(environment, reflected, normals, roughness) -> np.ndarray:
  """[N, 3] environment colour seen along unit reflected directions [N, 3], averaged over a cone of half-angle
  about `roughness` [N] radians (fixed offsets, so renders are deterministic); directions that would dip
  below the surface (normals [N, 3]) are folded back above it."""
  helper = np.where(np.abs(reflected[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
  u = np.cross(reflected, helper)
  u /= np.linalg.norm(u, axis=-1, keepdims=True)
  v = np.cross(reflected, u)
  total = np.zeros_like(reflected)
  for du, dv in _GLOSSY_OFFSETS:
    d = reflected + roughness[:, None] * (du * u + dv * v)
    below = np.minimum(_dot(d, normals), 0.0)
    d = d - 2.0 * below[:, None] * normals
    total += environment(d / np.linalg.norm(d, axis=-1, keepdims=True))
  return total / len(_GLOSSY_OFFSETS)


def trace_colours(objects, origins, directions, environment=None) -> tuple:
  """Traces rays [N, 3]: colour [N, 3] of the first hit (0 where missed) and its ray parameter t [N].
  Materials with `mirror` > 0 reflect `environment` (unit directions [M, 3] -> colours [M, 3], light from
  infinitely far, seen only in reflections)."""
  hit = nearest_hit(objects, origins, directions)
  found = np.flatnonzero(np.isfinite(hit.t))
  hit_found = Hit(hit.t[found], hit.normal[found], hit.object_index[found])
  points = origins[found] + hit_found.t[:, None] * directions[found]
  viewdirs = directions[found] / np.linalg.norm(directions[found], axis=-1, keepdims=True)
  specular = np.array([obj.material.specular for obj in objects])[hit_found.object_index]
  shininess = np.array([obj.material.shininess for obj in objects])[hit_found.object_index]
  albedo = surface_albedo(objects, hit_found, points)
  colour = shade(albedo, hit_found.normal, viewdirs, key_light_visible(objects, points, hit_found.normal),
                 specular, shininess)
  unlit = np.array([obj.material.unlit for obj in objects])[hit_found.object_index]
  colour = np.where(unlit[:, None], albedo, colour)
  mirror = np.array([obj.material.mirror for obj in objects])[hit_found.object_index]
  if environment is not None and np.any(mirror > 0):
    shiny = np.flatnonzero(mirror > 0)
    normals = hit_found.normal[shiny]
    reflected = viewdirs[shiny] - 2.0 * _dot(viewdirs[shiny], normals)[:, None] * normals
    roughness = np.array([obj.material.roughness for obj in objects])[hit_found.object_index[shiny]]
    seen = reflected_environment(environment, reflected, normals, roughness)
    colour[shiny] = np.clip((1.0 - mirror[shiny, None]) * colour[shiny] + mirror[shiny, None] * seen, 0.0, 1.0)
  colours = np.zeros_like(origins)
  colours[found] = colour
  return colours, hit.t
