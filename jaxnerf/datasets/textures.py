"""Textures of the procedural scenes: functions of local hit points [N, 3] and local unit normals [N, 3]
giving albedo [N, 3] (float64), used by raytracing.Material."""

from typing import Callable

import numpy as np

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


def checker(colour_a, colour_b, size: float) -> Texture:
  """Square tiles of side `size` alternating between two colours over the local x-y plane (sharp edges at
  every distance: what shows whether distant ground is rendered sharply)."""
  colour_a, colour_b = (np.asarray(c, dtype=np.float64) for c in (colour_a, colour_b))

  def texture(points, normals):
    parity = (np.floor(points[:, 0] / size) + np.floor(points[:, 1] / size)) % 2
    return np.where(parity[:, None] == 0, colour_a, colour_b)

  return texture


def skyline(sky_low, sky_high, hill_colours, peaks: int = 5) -> Texture:
  """A sky dome seen from inside: hills along the horizon, each `hill_colours` entry one equal sector of
  azimuth about the local z axis, under an outline of `peaks` (and 3 * peaks) bumps; above it a sky fading
  from `sky_low` at the horizon to `sky_high` at the zenith."""
  sky_low, sky_high, hill_colours = (np.asarray(c, dtype=np.float64) for c in (sky_low, sky_high, hill_colours))

  def texture(points, normals):
    azimuth = np.arctan2(normals[:, 1], normals[:, 0]) + np.pi  # [0, 2 pi]
    elevation = np.arcsin(np.clip(normals[:, 2], -1.0, 1.0))
    outline = 0.12 + 0.06 * np.sin(peaks * azimuth) + 0.03 * np.sin(3 * peaks * azimuth + 1.0)
    sector = np.floor(azimuth / (2 * np.pi) * len(hill_colours)).astype(int) % len(hill_colours)
    height = np.clip(elevation / (0.5 * np.pi), 0.0, 1.0)[:, None]
    sky = (1.0 - height) * sky_low + height * sky_high
    return np.where((elevation < outline)[:, None], hill_colours[sector], sky)

  return texture
