"""Camera paths for videos: poses [num_frames, 3, 4] built from a scene's training cameras.

- 'orbit': a 360-degree circle about the world's z axis through the origin, at the cameras' median distance
  and elevation (the Blender scenes and the embedded ones, whose cameras look at the origin, z up).
- 'spiral': LLFF's path for forward-facing captures: the camera circles about the mean view twice, in an
  ellipse as wide as the cameras spread, always looking at a point at a typical depth of the content.
- 'ellipse': for inward-facing captures: an ellipse fitted to the cameras' horizontal spread around the point
  they look at, rising and falling between their low and high heights; for a partial orbit, the arc the
  cameras cover, there and back.
- 'interpolate': a smooth curve (Catmull-Rom) through a few training cameras in the capture's order.
`path_for` picks one by name, or 'auto': spiral for NDC scenes, ellipse for other captures, else orbit.

Conventions as camera.py: camera-to-world [3, 4] matrices, OpenGL camera (looking down -z, y up).
"""

from typing import Optional, Tuple

import numpy as np

from jaxnerf.ops import camera
PATHS = ('auto', 'orbit', 'spiral', 'ellipse', 'interpolate')


def orbit_poses(num_frames: int, radius: float, elevation_deg: float, target=(0.0, 0.0, 0.0)):
  """A 360-degree orbit of `num_frames` camera-to-world matrices, [num_frames, 3, 4]."""
  azimuths = np.linspace(0.0, 360.0, num_frames, endpoint=False)
  return np.stack([camera.spherical_pose(a, elevation_deg, radius, target) for a in azimuths])


def orbit(camtoworlds: np.ndarray, num_frames: int, target=(0.0, 0.0, 0.0)) -> np.ndarray:
  """An orbit at the median distance and elevation of the given cameras [N, 3, 4] around `target`."""
  offsets = np.asarray(camtoworlds)[:, :3, 3] - np.asarray(target)
  radius = np.linalg.norm(offsets, axis=-1)
  elevation = np.rad2deg(np.arcsin(np.clip(offsets[:, 2] / radius, -1.0, 1.0)))
  return orbit_poses(num_frames, float(np.median(radius)), float(np.median(elevation)), target)


def spiral(camtoworlds: np.ndarray, depth_range: Tuple[float, float], num_frames: int, rotations: float = 2.0,
           z_rate: float = 0.5) -> np.ndarray:
  """LLFF's spiral (render_path_spiral of the NeRF code) about the mean view.

  Args:
    camtoworlds: [N, 3, 4] training cameras of a forward-facing capture.
    depth_range: (nearest, farthest) depth of the content in world units.
    num_frames: poses to return.
    rotations: turns of the spiral; z_rate: how many times faster the camera moves in and out.

  Returns:
    [num_frames, 3, 4]: the camera at mean + radii * (cos a, -sin a, -sin(z_rate a)) in the mean view's
    frame, radii the 90th percentile of the cameras' offsets from the mean, looking at the point on the mean
    viewing axis at the depth whose disparity mixes the nearest content's (1/4) and 5x the farthest's (3/4).
  """
  mean = camera.average_pose(camtoworlds)
  rotation, centre = mean[:, :3], mean[:, 3]
  local = (np.asarray(camtoworlds)[:, :, 3] - centre) @ rotation  # Offsets in the mean view's frame.
  radii = np.percentile(np.abs(local), 90, axis=0)
  near, far = 0.9 * depth_range[0], 5.0 * depth_range[1]
  focus_depth = 1.0 / (0.25 / near + 0.75 / far)
  target = centre - focus_depth * rotation[:, 2]
  poses = []
  for angle in np.linspace(0.0, 2 * np.pi * rotations, num_frames, endpoint=False):
    offset = radii * np.array([np.cos(angle), -np.sin(angle), -np.sin(angle * z_rate)])
    poses.append(camera.look_at(centre + rotation @ offset, target, up=rotation[:, 1]))
  return np.stack(poses)


def covered_azimuths(offsets: np.ndarray, max_gap_deg: float = 60.0) -> Optional[Tuple[float, float]]:
  """(start, end) azimuths in radians, end > start, of the arc that cameras at horizontal `offsets` [N, 2]
  from a centre cover, when they leave a gap wider than `max_gap_deg` (a partial orbit); None when they
  surround the centre."""
  azimuths = np.sort(np.arctan2(offsets[:, 1], offsets[:, 0]))
  gaps = np.diff(np.concatenate([azimuths, azimuths[:1] + 2 * np.pi]))
  widest = int(np.argmax(gaps))
  if gaps[widest] <= np.radians(max_gap_deg):
    return None
  start = azimuths[(widest + 1) % len(azimuths)]  # The arc runs from after the gap round to its start.
  return float(start), float(start + 2 * np.pi - gaps[widest])


def ellipse(camtoworlds: np.ndarray, num_frames: int, target: Optional[np.ndarray] = None) -> np.ndarray:
  """An ellipse about the vertical through `target` (default: the focus of the cameras' axes, else the
  origin), fitted to the cameras' horizontal offsets (90th percentile of each axis), its height moving
  between their 10th and 90th percentile heights, looking at `target`. Cameras that leave a gap of more than
  60 degrees (a partial orbit) get the arc they cover, swept there and back, rather than views of sides
  nobody photographed. The world's z must be up (the capture readers' normalisation makes it so)."""
  camtoworlds = np.asarray(camtoworlds, np.float64)
  if target is None:
    target = camera.focus_point(camtoworlds)
    target = np.zeros(3) if target is None else target
  positions = camtoworlds[:, :, 3]
  half_axes = np.percentile(np.abs(positions[:, :2] - target[:2]), 90, axis=0)
  low, high = np.percentile(positions[:, 2], [10, 90])
  phase = np.linspace(0.0, 2 * np.pi, num_frames, endpoint=False)
  arc = covered_azimuths(positions[:, :2] - target[:2])
  if arc is None:
    angles = phase
  else:  # There and back, slowing at the ends.
    angles = arc[0] + (arc[1] - arc[0]) * (0.5 - 0.5 * np.cos(phase))
  poses = []
  for angle, turn in zip(angles, phase):
    height = low + (high - low) * (0.5 - 0.5 * np.cos(2 * turn))
    eye = np.array([target[0] + half_axes[0] * np.cos(angle), target[1] + half_axes[1] * np.sin(angle), height])
    poses.append(camera.look_at(eye, target))
  return np.stack(poses)


def _catmull_rom(points: np.ndarray, num_frames: int) -> np.ndarray:
  """[num_frames, D] on the uniform Catmull-Rom spline through points [K, D] (end points repeated)."""
  padded = np.concatenate([points[:1], points, points[-1:]])
  s = np.linspace(0.0, len(points) - 1, num_frames)
  segment = np.minimum(s.astype(int), len(points) - 2)
  u = (s - segment)[:, None]
  p0, p1, p2, p3 = (padded[segment + i] for i in range(4))
  return 0.5 * (2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (3 * p1 - p0 - 3 * p2 + p3) * u**3)


def interpolate(camtoworlds: np.ndarray, num_frames: int, num_keyframes: int = 10,
                look_distance: float = 1.0) -> np.ndarray:
  """A smooth path through `num_keyframes` training cameras spread evenly over the capture's order: the
  centres, the points `look_distance` ahead of them and their up vectors follow Catmull-Rom splines."""
  camtoworlds = np.asarray(camtoworlds, np.float64)
  keys = camtoworlds[np.linspace(0, len(camtoworlds) - 1, min(num_keyframes, len(camtoworlds))).round().astype(int)]
  if len(keys) < 2:
    return np.repeat(keys[:, :3].astype(np.float32), num_frames, axis=0)
  centres = _catmull_rom(keys[:, :, 3], num_frames)
  targets = _catmull_rom(keys[:, :, 3] - look_distance * keys[:, :, 2], num_frames)
  ups = _catmull_rom(keys[:, :, 1], num_frames)
  return np.stack([camera.look_at(c, t, u) for c, t, u in zip(centres, targets, ups)])


def path_for(name: str, camtoworlds: np.ndarray, num_frames: int, forward_facing: bool,
             depth_range: Optional[Tuple[float, float]]) -> Tuple[str, np.ndarray]:
  """(the path's name, its poses [num_frames, 3, 4]) for `name` in PATHS ('auto' resolved as the module
  docstring says) over a scene's training cameras."""
  if name not in PATHS:
    raise ValueError(f'unknown camera path {name!r}; expected one of {PATHS}.')
  if name == 'auto':
    name = 'spiral' if forward_facing else ('ellipse' if depth_range is not None else 'orbit')
  if name == 'orbit':
    return name, orbit(camtoworlds, num_frames)
  if name == 'spiral':
    if depth_range is None:
      raise ValueError('the spiral path needs the depth of the scene\'s content, which only real captures '
                       'give; use orbit, ellipse or interpolate.')
    return name, spiral(camtoworlds, depth_range, num_frames)
  if name == 'ellipse':
    return name, ellipse(camtoworlds, num_frames)
  look_distance = 1.0 if depth_range is None else float(np.mean(depth_range))
  return name, interpolate(camtoworlds, num_frames, look_distance=look_distance)
