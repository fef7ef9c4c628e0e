"""The in-memory form of one split of a scene, shared by every dataset reader."""

import dataclasses
from typing import Optional

import numpy as np

from jaxnerf import camera


@dataclasses.dataclass(frozen=True)
class SceneSplit:
  """Posed images of one split (train, val or test) of a scene.

  Attributes:
    images: [num_images, height, width, 3] float32 RGB in [0, 1], already composited on the background.
    camtoworlds: [num_images, 3, 4] float32 camera-to-world matrices (OpenGL convention, see camera.py).
    focal: focal length in pixels, at this split's resolution.
    near, far: bounds of the ray parameter t (depth along the viewing axis).
    names: one name per image (its file name without extension), for output files.
    depths: optional [num_images, height, width] ground-truth depth (t of the first hit, inf for none).
    alphas: optional [num_images, height, width] float32 opacity of the images (for RGBA images), which
      lets training composite them on other backgrounds.
  """

  images: np.ndarray
  camtoworlds: np.ndarray
  focal: float
  near: float
  far: float
  names: tuple = ()
  depths: Optional[np.ndarray] = None
  alphas: Optional[np.ndarray] = None

  @property
  def num_images(self) -> int:
    return self.images.shape[0]

  @property
  def height(self) -> int:
    return self.images.shape[1]

  @property
  def width(self) -> int:
    return self.images.shape[2]

  def rays_of_pixels(self, image, row, col) -> camera.Rays:
    """Rays through pixels (image, row, column indices, [...] each), each field [..., C]."""
    return camera.pixels_to_rays(col, row, self.camtoworlds[image], self.focal,
                                 camera.image_center(self.width, self.height), self.near, self.far)

  def rays_of_image(self, index: int) -> camera.Rays:
    """All rays of image `index`, each field [height, width, C]."""
    return camera.image_rays(self.camtoworlds[index], self.width, self.height, self.focal, self.near, self.far)
