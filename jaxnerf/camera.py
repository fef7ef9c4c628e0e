"""Camera and ray maths: pixels to rays, look-at poses and orbit paths.

Conventions (those of the NeRF datasets and Blender):
- Camera space: x points right, y points up, and the camera looks down -z (OpenGL).
- `camtoworld`: [..., 3, 4] camera-to-world matrix [R | t]; the columns of R are the camera's x, y, z axes
  in world coordinates and t is the camera centre. A 4x4 matrix is accepted wherever [3, 4] is.
- `focal`: focal length in pixels. Pixel (x, y) covers [x, x + 1] x [y, y + 1] with its centre at
  (x + 0.5, y + 0.5); image rows (y) grow downwards.
- Ray `directions` are not normalised: they have unit length along the camera's viewing axis, so the ray
  parameter `t` of a point `origin + t * direction` is its depth (z-distance) in front of the camera. This is
  how NeRF's near and far bounds are measured. `viewdirs` are the unit-length directions given to the model.
- Functions take `xnp` (numpy or jax.numpy) so that the same maths runs on the host for data pipelines and
  inside compiled code.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


class Rays(NamedTuple):
  """A batch of rays; every field has leading shape [...]."""

  origins: np.ndarray  # [..., 3]
  directions: np.ndarray  # [..., 3], unit length along the camera's viewing axis.
  viewdirs: np.ndarray  # [..., 3], unit length.
  near: np.ndarray  # [..., 1]
  far: np.ndarray  # [..., 1]
  # [..., 1] mip-NeRF's cone radius per unit of t: the cone through a pixel has radius radii * t at depth t,
  # with the pixel's area (its width 1 / focal at t = 1 times 2 / sqrt(12), Barron et al. 2021, Sec. 3.1).
  radii: np.ndarray


def pixel_grid(width: int, height: int, xnp=np):
  """Integer pixel coordinates (x, y), each [height, width], row-major like an image."""
  return xnp.meshgrid(xnp.arange(width), xnp.arange(height), indexing='xy')


def pixels_to_rays(pix_x, pix_y, camtoworld, focal, principal_point, near, far, xnp=np) -> Rays:
  """Rays through the centres of the given pixels of a pinhole camera.

  Args:
    pix_x, pix_y: [...] pixel column and row indices (integers or floats).
    camtoworld: [..., 3, 4] (or [3, 4], broadcast) camera-to-world matrices.
    focal: focal length in pixels (scalar or [...]).
    principal_point: (cx, cy) in pixels, usually the image's centre (`image_center`).
    near, far: scalar or [...] bounds on the ray parameter t (depth).
    xnp: numpy or jax.numpy.

  Returns:
    Rays with fields of shape [..., 3] (origins, directions, viewdirs) and [..., 1] (near, far, radii).
  """
  cx, cy = principal_point
  # Camera-space direction of each pixel centre; y and z flip from image to OpenGL convention.
  x = (xnp.asarray(pix_x, dtype=xnp.float32) + 0.5 - cx) / focal
  y = -(xnp.asarray(pix_y, dtype=xnp.float32) + 0.5 - cy) / focal
  camera_dirs = xnp.stack([x, y, -xnp.ones_like(x)], axis=-1)
  camtoworld = xnp.asarray(camtoworld, dtype=xnp.float32)
  rotation, origin = camtoworld[..., :3, :3], camtoworld[..., :3, 3]
  directions = xnp.sum(camera_dirs[..., None, :] * rotation, axis=-1)
  origins = xnp.broadcast_to(origin, directions.shape)
  viewdirs = directions / xnp.linalg.norm(directions, axis=-1, keepdims=True)
  ones = xnp.ones(directions.shape[:-1] + (1,), dtype=xnp.float32)
  near = ones * xnp.asarray(near, dtype=xnp.float32).reshape(xnp.shape(near) + (1,))
  far = ones * xnp.asarray(far, dtype=xnp.float32).reshape(xnp.shape(far) + (1,))
  # Neighbouring pixels' directions differ by 1 / focal (directions have unit depth), everywhere in the image.
  radii = ones * (2.0 / np.sqrt(12.0) / xnp.asarray(focal, dtype=xnp.float32).reshape(xnp.shape(focal) + (1,)))
  return Rays(origins, directions, viewdirs, near, far, radii)


def image_center(width: int, height: int):
  """The principal point (cx, cy) of a camera whose optical axis passes through the image's centre."""
  return width / 2, height / 2


def image_rays(camtoworld, width: int, height: int, focal, near, far, xnp=np) -> Rays:
  """All rays of one image, each field [height, width, C]."""
  pix_x, pix_y = pixel_grid(width, height, xnp)
  return pixels_to_rays(pix_x, pix_y, camtoworld, focal, image_center(width, height), near, far, xnp)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
  """Camera-to-world [3, 4] of a camera at `eye` looking at `target`, with `up` projecting upwards."""
  eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
  back = eye - target  # The camera looks down -z, so +z points back from the target.
  back /= np.linalg.norm(back)
  right = np.cross(up, back)
  norm = np.linalg.norm(right)
  if norm < 1e-9:
    raise ValueError(f'look_at: up vector {up.tolist()} is parallel to the viewing direction.')
  right /= norm
  cam_up = np.cross(back, right)
  return np.stack([right, cam_up, back, eye], axis=1).astype(np.float32)


def spherical_pose(azimuth_deg: float, elevation_deg: float, radius: float, target=(0.0, 0.0, 0.0)):
  """Camera-to-world [3, 4] on a sphere around `target` (z up), looking at it."""
  azimuth, elevation = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
  offset = radius * np.array([np.cos(elevation) * np.cos(azimuth),
                              np.cos(elevation) * np.sin(azimuth),
                              np.sin(elevation)])
  return look_at(np.asarray(target) + offset, target)


def orbit_poses(num_frames: int, radius: float, elevation_deg: float, target=(0.0, 0.0, 0.0)):
  """A 360-degree orbit of `num_frames` camera-to-world matrices, [num_frames, 3, 4]."""
  azimuths = np.linspace(0.0, 360.0, num_frames, endpoint=False)
  return np.stack([spherical_pose(a, elevation_deg, radius, target) for a in azimuths])


def orbit_like(camtoworlds: np.ndarray, num_frames: int, target=(0.0, 0.0, 0.0)) -> np.ndarray:
  """An orbit at the median distance and elevation of the given cameras [N, 3, 4] around `target`."""
  offsets = np.asarray(camtoworlds)[:, :3, 3] - np.asarray(target)
  radius = np.linalg.norm(offsets, axis=-1)
  elevation = np.rad2deg(np.arcsin(np.clip(offsets[:, 2] / radius, -1.0, 1.0)))
  return orbit_poses(num_frames, float(np.median(radius)), float(np.median(elevation)), target)


def clip_to_box(origins, directions, near, far, box):
  """Narrows ray bounds to the segment inside an axis-aligned box (slab method).

  Args:
    origins, directions: [..., 3] rays (t is measured along the un-normalised directions).
    near, far: [..., 1] bounds.
    box: (x_min, y_min, z_min, x_max, y_max, z_max).

  Returns:
    (near, far), [..., 1] each, within the original bounds. Rays that miss the box get near = far = the
    original far, so every sample lands in one point behind the scene.
  """
  box = jnp.asarray(box, jnp.float32)
  parallel = jnp.abs(directions) < 1e-12
  safe = jnp.where(parallel, 1.0, directions)
  t0, t1 = (box[:3] - origins) / safe, (box[3:] - origins) / safe
  # A ray parallel to a slab is inside it for all t or for none (an origin on either face counts as inside).
  in_slab = (origins >= box[:3]) & (origins <= box[3:])
  enter = jnp.where(parallel, jnp.where(in_slab, -jnp.inf, jnp.inf), jnp.minimum(t0, t1))
  leave = jnp.where(parallel, jnp.where(in_slab, jnp.inf, -jnp.inf), jnp.maximum(t0, t1))
  enter = jnp.max(enter, axis=-1, keepdims=True)
  leave = jnp.min(leave, axis=-1, keepdims=True)
  new_near, new_far = jnp.maximum(near, enter), jnp.minimum(far, leave)
  hit = new_near < new_far
  return jnp.where(hit, new_near, far), jnp.where(hit, new_far, far)
