"""Camera and ray maths: camera models, pixels to rays, NDC rays for forward-facing scenes, look-at poses.

Conventions (those of the NeRF datasets and Blender):
- Camera space: x points right, y points up, and the camera looks down -z (OpenGL). COLMAP and OpenCV
  cameras (y down, looking down +z) are converted by the readers.
- `camtoworld`: [..., 3, 4] camera-to-world matrix [R | t]; the columns of R are the camera's x, y, z axes
  in world coordinates and t is the camera centre. A 4x4 matrix is accepted wherever [3, 4] is.
- `Intrinsics`: focal lengths and principal point in pixels, and OpenCV's radial-tangential distortion.
  Pixel (x, y) covers [x, x + 1] x [y, y + 1] with its centre at (x + 0.5, y + 0.5) (COLMAP's convention
  too); image rows (y) grow downwards.
- Ray `directions` are not normalised: they have unit length along the camera's viewing axis, so the ray
  parameter `t` of a point `origin + t * direction` is its depth (z-distance) in front of the camera. This is
  how NeRF's near and far bounds are measured. `viewdirs` are the unit-length directions given to the model.
  NDC rays (`NDCSpace`) are the exception: there t runs from 0 at the near plane to 1 at infinity.
- Functions take `xnp` (numpy or jax.numpy) so that the same maths runs on the host for data pipelines and
  inside compiled code.
"""

from typing import NamedTuple, Optional

import jax.numpy as jnp
import numpy as np

# Newton steps of `undistort`: OpenCV's own undistortPoints uses a fixed number of iterations too.
UNDISTORT_ITERATIONS = 10


class Rays(NamedTuple):
  """A batch of rays; every field has leading shape [...]."""

  origins: np.ndarray  # [..., 3]
  directions: np.ndarray  # [..., 3], unit length along the camera's viewing axis (or NDC directions).
  viewdirs: np.ndarray  # [..., 3], unit length, in the world (also for NDC rays).
  near: np.ndarray  # [..., 1]
  far: np.ndarray  # [..., 1]
  # [..., 1] mip-NeRF's cone radius per unit of t: the distance between the directions of horizontally
  # neighbouring pixels times 2 / sqrt(12), the cone whose cross-section has the pixel's area (Barron et al.
  # 2021, Sec. 3.1). For a pinhole camera it is 2 / sqrt(12) / focal_x everywhere. NDC rays take the
  # distance between neighbouring pixels' origins on the near plane instead (as multinerf does).
  radii: np.ndarray
  # [..., 1] int32: the index of the training image the ray comes from (what per-image components, such as
  # an appearance code, read), or ANY_CAMERA / NO_CAMERA for every other camera.
  cam_idx: np.ndarray


# Rays.cam_idx of rays from a camera that is not a training image (val and test views, camera paths, the
# viewer): per-image components stand in for it with what holds across the training images (their mean).
ANY_CAMERA = -1
# Rays.cam_idx that asks per-image components for their neutral value (a zero appearance code).
NO_CAMERA = -2


class Intrinsics(NamedTuple):
  """A camera's projection, in pixels of the image it takes; each field scalar or [...] (one per image).

  Attributes:
    focal_x, focal_y: focal lengths in pixels.
    center_x, center_y: the principal point in pixels (W / 2, H / 2 for a centred optical axis).
    distortion: None (pinhole) or [..., 5] OpenCV coefficients (k1, k2, k3, p1, p2): a point (x, y) on the
      normalised image plane appears at x * (1 + k1 r^2 + k2 r^4 + k3 r^6) + 2 p1 x y + p2 (r^2 + 2 x^2), and
      y likewise with y * (...) + p1 (r^2 + 2 y^2) + 2 p2 x y, where r^2 = x^2 + y^2. COLMAP's SIMPLE_RADIAL,
      RADIAL and OPENCV models are special cases.
  """

  focal_x: np.ndarray
  focal_y: np.ndarray
  center_x: np.ndarray
  center_y: np.ndarray
  distortion: Optional[np.ndarray] = None

  @classmethod
  def pinhole(cls, focal, width: int, height: int) -> 'Intrinsics':
    """A distortion-free camera with square pixels whose optical axis passes through the image's centre."""
    return cls(focal, focal, width / 2, height / 2)

  def repeated(self, count: int) -> 'Intrinsics':
    """This one camera for each of `count` images: every field gains a leading axis [count]."""
    return Intrinsics(*(None if v is None else np.repeat(np.asarray(v, np.float32)[None], count, axis=0)
                        for v in self))

  @classmethod
  def stack(cls, cameras) -> 'Intrinsics':
    """Per-image intrinsics (fields [N]; distortion [N, 5], zeros for pinhole cameras, or None if all are)
    from N cameras with scalar fields."""
    cameras = list(cameras)
    distortion = None
    if any(k.distortion is not None for k in cameras):
      distortion = np.stack([np.zeros(5) if k.distortion is None else np.asarray(k.distortion) for k in cameras])
    return cls(*(np.array([getattr(k, field) for k in cameras]) for field in cls._fields[:4]), distortion)

  def take(self, index) -> 'Intrinsics':
    """The intrinsics of images `index` (an integer or an index array) of per-image intrinsics."""
    return Intrinsics(*(None if v is None else np.asarray(v)[index] for v in self))

  def scaled(self, scale: float) -> 'Intrinsics':
    """The same camera taking images `scale` times as wide and high (distortion is scale-free)."""
    return self._replace(focal_x=self.focal_x * scale, focal_y=self.focal_y * scale,
                         center_x=self.center_x * scale, center_y=self.center_y * scale)


def _expand(value, xnp):
  return xnp.asarray(value, dtype=xnp.float32)


def distort(x, y, distortion):
  """Where OpenCV's radial-tangential model moves normalised image points (x, y), [...] each.

  Args:
    x, y: [...] coordinates on the image plane at unit depth (y down, as pixels).
    distortion: [..., 5] coefficients (k1, k2, k3, p1, p2), see `Intrinsics`.

  Returns:
    (x_distorted, y_distorted), [...] each.
  """
  k1, k2, k3, p1, p2 = (distortion[..., i] for i in range(5))
  r2 = x * x + y * y
  radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
  return (x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x),
          y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y)


def undistort(x_distorted, y_distorted, distortion, xnp=np):
  """Inverts `distort` by Newton's method (the model has no closed-form inverse).

  Args:
    x_distorted, y_distorted: [...] distorted normalised image coordinates.
    distortion: [..., 5] coefficients (k1, k2, k3, p1, p2).

  Returns:
    (x, y), [...] each, with distort(x, y) equal to the inputs to float precision for the distortions of
    real lenses (the iteration starts at the distorted point; it need not converge for extreme coefficients
    far outside the image).
  """
  k1, k2, k3, p1, p2 = (distortion[..., i] for i in range(5))
  x, y = x_distorted, y_distorted
  for _ in range(UNDISTORT_ITERATIONS):
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    d_radial = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)  # d radial / d r2.
    fx = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - x_distorted
    fy = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - y_distorted
    # Jacobian of (fx, fy) with respect to (x, y).
    fx_x = radial + 2.0 * x * x * d_radial + 2.0 * p1 * y + 6.0 * p2 * x
    fx_y = 2.0 * x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
    fy_x = 2.0 * x * y * d_radial + 2.0 * p1 * x + 2.0 * p2 * y
    fy_y = radial + 2.0 * y * y * d_radial + 6.0 * p1 * y + 2.0 * p2 * x
    determinant = fx_x * fy_y - fx_y * fy_x
    determinant = xnp.where(xnp.abs(determinant) < 1e-12, 1e-12, determinant)
    x = x - (fx * fy_y - fy * fx_y) / determinant
    y = y - (fy * fx_x - fx * fy_x) / determinant
  return x, y


def camera_directions(pix_x, pix_y, intrinsics: Intrinsics, xnp=np):
  """Camera-space directions [..., 3] (OpenGL, unit depth) through image points (pix_x, pix_y), [...] each,
  given in pixels with pixel centres at integer + 0.5."""
  x = (_expand(pix_x, xnp) - _expand(intrinsics.center_x, xnp)) / _expand(intrinsics.focal_x, xnp)
  y = (_expand(pix_y, xnp) - _expand(intrinsics.center_y, xnp)) / _expand(intrinsics.focal_y, xnp)
  if intrinsics.distortion is not None:
    x, y = undistort(x, y, _expand(intrinsics.distortion, xnp), xnp)
  # y and z flip from the image's (y down, looking down +z) to the OpenGL convention.
  return xnp.stack([x, -y, -xnp.ones_like(x)], axis=-1)


def project(points, camtoworld, intrinsics: Intrinsics, xnp=np):
  """Pixel coordinates (x, y), [...] each, of world points [..., 3] in front of the camera (the inverse of
  `pixels_to_rays`' pixel-to-direction map, distortion included)."""
  camtoworld = _expand(camtoworld, xnp)
  rotation, origin = camtoworld[..., :3, :3], camtoworld[..., :3, 3]
  local = xnp.sum((_expand(points, xnp) - origin)[..., :, None] * rotation, axis=-2)
  x, y = local[..., 0] / -local[..., 2], -local[..., 1] / -local[..., 2]
  if intrinsics.distortion is not None:
    x, y = distort(x, y, _expand(intrinsics.distortion, xnp))
  return (x * _expand(intrinsics.focal_x, xnp) + _expand(intrinsics.center_x, xnp),
          y * _expand(intrinsics.focal_y, xnp) + _expand(intrinsics.center_y, xnp))


class NDCSpace(NamedTuple):
  """Normalised device coordinates of a forward-facing capture (NeRF, appendix C).

  The world must be the reference camera's frame (the LLFF reader's recentred poses): looking down -z, with
  the scene in front of the plane z = -near_plane. That frustum maps to the cube [-1, 1]^3, depth going to
  z' = 1 - 2 near_plane / depth, so a ray's NDC parameter t in [0, 1] runs from the near plane to infinity,
  linearly in disparity.
  """

  focal_x: float
  focal_y: float
  width: float  # Of the reference camera's image (only focal / width matters), in pixels: fractional where a
  height: float  # downsampled size rounds.
  near_plane: float = 1.0

  def convert(self, origins, directions, xnp=np):
    """NDC rays (origins, directions), [..., 3] each, from world rays [..., 3] (Eq. 25 of appendix C,
    after moving each origin along its ray to the near plane)."""
    n = self.near_plane
    t = -(n + origins[..., 2]) / directions[..., 2]
    origins = origins + t[..., None] * directions
    ox, oy, oz = origins[..., 0], origins[..., 1], origins[..., 2]
    dx, dy, dz = directions[..., 0], directions[..., 1], directions[..., 2]
    scale_x, scale_y = -2.0 * self.focal_x / self.width, -2.0 * self.focal_y / self.height
    ndc_origins = xnp.stack([scale_x * ox / oz, scale_y * oy / oz, 1.0 + 2.0 * n / oz], axis=-1)
    ndc_directions = xnp.stack([scale_x * (dx / dz - ox / oz), scale_y * (dy / dz - oy / oz), -2.0 * n / oz],
                               axis=-1)
    return ndc_origins, ndc_directions

  def from_world(self, points, xnp=np):
    """NDC coordinates [..., 3] of world points [..., 3] in front of the near plane (Eq. 22)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return xnp.stack([-2.0 * self.focal_x / self.width * x / z, -2.0 * self.focal_y / self.height * y / z,
                      1.0 + 2.0 * self.near_plane / z], axis=-1)


def pixel_grid(width: int, height: int, xnp=np):
  """Integer pixel coordinates (x, y), each [height, width], row-major like an image."""
  return xnp.meshgrid(xnp.arange(width), xnp.arange(height), indexing='xy')


def _per_ray(value, shape, xnp):
  value = xnp.asarray(value, dtype=xnp.float32)
  return xnp.zeros(shape + (1,), xnp.float32) + value.reshape(xnp.shape(value) + (1,))


def pixels_to_rays(pix_x, pix_y, camtoworld, intrinsics: Intrinsics, near, far,
                   ndc: Optional[NDCSpace] = None, xnp=np, cam_idx=ANY_CAMERA) -> Rays:
  """Rays through the centres of the given pixels: every ray of the project is built here.

  Args:
    pix_x, pix_y: [...] pixel column and row indices (integers, or floats for sub-pixel positions).
    camtoworld: [..., 3, 4] (or [3, 4], broadcast) camera-to-world matrices.
    intrinsics: the camera model, with fields scalar or broadcasting against [...].
    near, far: scalar or [...] bounds on the ray parameter t (depth); for NDC rays, 0 and 1.
    ndc: if given, the rays are returned in this NDC space (origins on the near plane, t in [0, 1]).
    xnp: numpy or jax.numpy.
    cam_idx: scalar or [...] the training image of each ray (Rays.cam_idx), or ANY_CAMERA / NO_CAMERA.

  Returns:
    Rays with fields of shape [..., 3] (origins, directions, viewdirs) and [..., 1] (near, far, radii,
    cam_idx).
  """
  camtoworld = _expand(camtoworld, xnp)
  rotation, origin = camtoworld[..., :3, :3], camtoworld[..., :3, 3]
  pix_x, pix_y = _expand(pix_x, xnp) + 0.5, _expand(pix_y, xnp) + 0.5
  to_world = lambda d: xnp.sum(d[..., None, :] * rotation, axis=-1)
  directions = to_world(camera_directions(pix_x, pix_y, intrinsics, xnp))
  # The neighbouring pixel's direction gives the footprint, which distortion and NDC make vary.
  neighbour_directions = to_world(camera_directions(pix_x + 1.0, pix_y, intrinsics, xnp))
  origins = xnp.broadcast_to(origin, directions.shape)
  viewdirs = directions / xnp.linalg.norm(directions, axis=-1, keepdims=True)
  footprint = neighbour_directions - directions
  if ndc is not None:
    # NDC rays of one camera are nearly parallel: the footprint is the neighbour's offset on the near plane.
    neighbour_origins, _ = ndc.convert(origins, neighbour_directions, xnp)
    origins, directions = ndc.convert(origins, directions, xnp)
    footprint = neighbour_origins - origins
  radii = xnp.linalg.norm(footprint, axis=-1, keepdims=True) * (2.0 / np.sqrt(12.0))
  shape = directions.shape[:-1]
  cam_idx = xnp.asarray(cam_idx, xnp.int32)
  cam_idx = xnp.zeros(shape + (1,), xnp.int32) + cam_idx.reshape(xnp.shape(cam_idx) + (1,))
  return Rays(origins, directions, viewdirs, _per_ray(near, shape, xnp), _per_ray(far, shape, xnp), radii,
              cam_idx)


def image_rays(camtoworld, width: int, height: int, intrinsics, near, far, ndc: Optional[NDCSpace] = None,
               xnp=np, cam_idx=ANY_CAMERA) -> Rays:
  """All rays of one image, each field [height, width, C] (cam_idx as pixels_to_rays takes it).

  `intrinsics` is an `Intrinsics`, or a focal length in pixels for a pinhole camera centred on the image.
  """
  if not isinstance(intrinsics, Intrinsics):
    intrinsics = Intrinsics.pinhole(intrinsics, width, height)
  pix_x, pix_y = pixel_grid(width, height, xnp)
  return pixels_to_rays(pix_x, pix_y, camtoworld, intrinsics, near, far, ndc, xnp, cam_idx)


class CameraTable(NamedTuple):
  """Every camera of a split as arrays, so that rays can be made where a step runs: on the host (numpy), or
  inside a compiled step (jax.numpy) from pixel indices, where gradients reach the poses.

  Attributes:
    camtoworlds: [N, 3, 4] camera-to-world matrices.
    intrinsics: the cameras' projections, each field [N] (distortion [N, 5] or None).
    near, far: scalar bounds of the ray parameter t (0 and 1 for NDC rays).
    ndc: the NDC space every ray is given in (forward-facing captures), or None.
  """

  camtoworlds: np.ndarray
  intrinsics: Intrinsics
  near: float
  far: float
  ndc: Optional[NDCSpace] = None

  def rays(self, image, row, col, cam_idx=ANY_CAMERA, xnp=np) -> Rays:
    """Rays through pixels (image, row, column indices, [...] each) of the table's cameras, as
    `pixels_to_rays` makes them; `cam_idx` scalar or [...] (Rays.cam_idx)."""
    intrinsics = Intrinsics(*(None if v is None else xnp.asarray(v)[image] for v in self.intrinsics))
    return pixels_to_rays(col, row, xnp.asarray(self.camtoworlds)[image], intrinsics, self.near, self.far,
                          self.ndc, xnp, cam_idx)

  def as_arrays(self, xnp=np) -> 'CameraTable':
    """The table with float32 arrays of `xnp` (a step's argument: its NDC space's numbers become arrays)."""
    as_array = lambda v: None if v is None else xnp.asarray(v, xnp.float32)
    return CameraTable(as_array(self.camtoworlds), Intrinsics(*(as_array(v) for v in self.intrinsics)),
                       as_array(self.near), as_array(self.far),
                       None if self.ndc is None else NDCSpace(*(as_array(v) for v in self.ndc)))


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


def average_pose(camtoworlds: np.ndarray) -> np.ndarray:
  """[3, 4] camera-to-world of the mean of cameras [N, 3, 4]: at their mean centre, looking along their mean
  viewing axis, with their mean up vector made orthogonal to it."""
  camtoworlds = np.asarray(camtoworlds, np.float64)
  centre = camtoworlds[:, :, 3].mean(axis=0)
  backward = camtoworlds[:, :, 2].sum(axis=0)
  backward /= np.linalg.norm(backward)
  right = np.cross(camtoworlds[:, :, 1].sum(axis=0), backward)
  right /= np.linalg.norm(right)
  return np.stack([right, np.cross(backward, right), backward, centre], axis=1)


def focus_point(camtoworlds: np.ndarray) -> Optional[np.ndarray]:
  """The point [3] nearest to the optical axes of cameras [N, 3, 4] in the least-squares sense, or None when
  the axes are nearly parallel (a forward-facing capture has no such point)."""
  camtoworlds = np.asarray(camtoworlds, np.float64)
  origins, axes = camtoworlds[:, :, 3], -camtoworlds[:, :, 2]
  projectors = np.eye(3) - axes[:, :, None] * axes[:, None, :]  # Onto the plane normal to each axis.
  matrix = projectors.sum(axis=0)
  if np.linalg.eigvalsh(matrix)[0] < 0.05 * len(axes):  # Axes within about 13 degrees of one direction.
    return None
  return np.linalg.solve(matrix, np.einsum('nij,nj->i', projectors, origins))


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
