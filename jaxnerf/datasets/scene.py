"""The in-memory form of one split of a scene, shared by every dataset reader."""

import dataclasses
from typing import Optional, Tuple

import numpy as np

from jaxnerf.ops import camera
@dataclasses.dataclass(frozen=True)
class SceneSplit:
  """Posed images of one split (train, val or test) of a scene.

  Attributes:
    images: [num_images, height, width, 3] float32 RGB in [0, 1], already composited on the background.
    camtoworlds: [num_images, 3, 4] float32 camera-to-world matrices (OpenGL convention, see ops/camera.py).
    intrinsics: the cameras' projections at this split's resolution, each field [num_images] (distortion
      [num_images, 5] or None).
    near, far: bounds of the ray parameter t (depth along the viewing axis; 0 and 1 for NDC rays).
    names: one name per image (its file name without extension), for output files.
    depths: optional [num_images, height, width] ground-truth depth (t of the first hit, inf for none).
    normals: optional [num_images, height, width, 3] ground-truth unit world normals at those hits (0 for
      none).
    regions: optional [num_images, height, width] uint8 kind of surface each pixel centre sees, as an index
      into metrics.REGIONS (background, matte, glossy, mirror), for scoring by region.
    alphas: optional [num_images, height, width] float32 opacity of the images (for RGBA images), which
      lets training composite them on other backgrounds.
    ndc: for forward-facing captures, the NDC space every ray of the scene is given in (camera.NDCSpace).
    depth_range: (nearest, farthest) depth of the content in world units where a capture tells (LLFF
      bounds, sparse points); camera paths aim by it.
    training: whether these are the training images, whose rays carry their image's index (Rays.cam_idx,
      what per-image components read); other splits' rays carry camera.ANY_CAMERA.
    true_camtoworlds: [num_images, 3, 4] the true poses where `camtoworlds` were perturbed on purpose
      (config.pose_noise), for scoring cameras refined in training; None otherwise.
  """

  images: np.ndarray
  camtoworlds: np.ndarray
  intrinsics: camera.Intrinsics
  near: float
  far: float
  names: tuple = ()
  depths: Optional[np.ndarray] = None
  normals: Optional[np.ndarray] = None
  regions: Optional[np.ndarray] = None
  alphas: Optional[np.ndarray] = None
  ndc: Optional[camera.NDCSpace] = None
  depth_range: Optional[Tuple[float, float]] = None
  training: bool = False
  true_camtoworlds: Optional[np.ndarray] = None

  def __post_init__(self):
    n = self.images.shape[0]
    for name, value in zip(camera.Intrinsics._fields, self.intrinsics):
      if value is not None and np.shape(value)[:1] != (n,):
        raise ValueError(f'SceneSplit.intrinsics.{name} has shape {np.shape(value)}; expected one per image '
                         f'({n}).')

  @property
  def num_images(self) -> int:
    return self.images.shape[0]

  @property
  def height(self) -> int:
    return self.images.shape[1]

  @property
  def width(self) -> int:
    return self.images.shape[2]

  def camera_index(self, image):
    """Rays.cam_idx of the rays of image(s) `image` (an index or [...]): the image's own index in the training
    split, else camera.ANY_CAMERA."""
    return np.asarray(image) if self.training else camera.ANY_CAMERA

  def camera_table(self) -> camera.CameraTable:
    """The split's cameras as arrays (poses, intrinsics, bounds, NDC space): what makes its rays."""
    return camera.CameraTable(self.camtoworlds, self.intrinsics, self.near, self.far, self.ndc)

  def rays_of_pixels(self, image, row, col) -> camera.Rays:
    """Rays through pixels (image, row, column indices, [...] each), each field [..., C]."""
    return self.camera_table().rays(image, row, col, self.camera_index(image))

  def rays_of_image(self, index: int) -> camera.Rays:
    """All rays of image `index`, each field [height, width, C]."""
    return self.rays_of_view(self.camtoworlds[index], self.intrinsics.take(index), self.width, self.height,
                             self.camera_index(index))

  def rays_of_view(self, camtoworld, intrinsics: camera.Intrinsics, width: int, height: int,
                   cam_idx=camera.ANY_CAMERA) -> camera.Rays:
    """All rays [height, width, C] of another view of this scene (a camera path's frame): the split's
    bounds and NDC space, any pose and camera, and `cam_idx` (Rays.cam_idx)."""
    return camera.image_rays(camtoworld, width, height, intrinsics, self.near, self.far, self.ndc,
                             cam_idx=cam_idx)
