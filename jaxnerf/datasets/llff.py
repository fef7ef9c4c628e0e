"""Reader for LLFF captures (Mildenhall et al. 2019), the NeRF paper's real forward-facing scenes (fern, ...).

Layout: `poses_bounds.npy`, [N, 17] float: per image a 3x5 matrix, row-major (a 3x4 camera-to-world whose
columns are the camera's down, right and backward axes and its centre, then the column (height, width,
focal) of the full-size images), followed by the near and far depth of the image's content. Rows follow the
image files sorted by name, in `images/` (full size) and its downsampled copies `images_<N>/`, any of which
may be absent: the intrinsics are those of the size the rows describe, and `capture.image_source` picks the
copy to read at each factor.

The reader does what the NeRF code does with these scenes:
- turns the axes into the OpenGL convention (right, up, backward);
- scales the world so that the nearest content lies at depth 1 / 0.75 (`BOUNDS_MARGIN`), beyond NDC's near
  plane at depth 1;
- recentres on the average camera (the mean centre, the mean viewing and up directions), so that the
  reference frame of NDC is the capture's mean view (`forward_facing`), or, for inward-facing 360 captures
  (`spherify`), centres the world on the point the cameras look at with the cameras around it at a mean
  (root-mean-square) distance of 1 and z along their mean offset from it.
"""

import dataclasses
import pathlib

import numpy as np

from jaxnerf.datasets import blender
from jaxnerf.datasets import capture as capture_lib
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

POSES_FILE = 'poses_bounds.npy'
# The nearest depth bound lands at 1 / BOUNDS_MARGIN after scaling (NeRF's bd_factor).
BOUNDS_MARGIN = 0.75


def _image_directory(scene_dir: pathlib.Path, factor: int) -> pathlib.Path:
  """The directory whose file names stand for the capture's images: images/, else images_<factor>/, else
  any images_<N>/ (capture.image_source picks the copy read at each factor)."""
  copies = sorted((d for d in scene_dir.glob('images_*') if capture_lib.copy_factor(d) > 1),
                  key=capture_lib.copy_factor)
  for directory in [scene_dir / 'images', scene_dir / f'images_{factor}'] + copies:
    if directory.is_dir():
      return directory
  raise DatasetError(f'{scene_dir} holds no images/ or images_<N>/ directory of the photos that '
                     f'{POSES_FILE} describes.')


def _read_poses_bounds(path: pathlib.Path) -> np.ndarray:
  """[N, 17] float64 of poses_bounds.npy, checked to be finite with depth bounds 0 < near < far."""
  if not path.is_file():
    raise DatasetError(f'{path} is missing: an LLFF scene needs {POSES_FILE} (N x 17: a 3x5 pose and '
                       'size matrix and two depth bounds per image).')
  expected = f'{path}: expected a .npy array of N x 17 floats (a 3x5 pose and size matrix, near, far per image)'
  try:
    array = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError):
    raise DatasetError(f'{expected}, but numpy cannot read it as one.') from None
  if not isinstance(array, np.ndarray):
    array.close()
    raise DatasetError(f'{expected}, got an .npz archive.')
  if array.dtype.kind not in 'iuf':
    raise DatasetError(f'{expected}, got an array of {array.dtype}.')
  if array.ndim != 2 or array.shape[1] != 17 or not len(array):
    raise DatasetError(f'{expected}, got shape {array.shape}.')
  if not np.all(np.isfinite(array)):
    rows = sorted(set(np.argwhere(~np.isfinite(array))[:, 0].tolist()))
    raise DatasetError(f'{path}: rows {rows[:10]} hold non-finite values.')
  if np.any(array[:, 15:17] <= 0) or np.any(array[:, 15] >= array[:, 16]):
    raise DatasetError(f'{path}: every image needs depth bounds 0 < near < far (columns 15 and 16).')
  return array.astype(np.float64)


def _check_cameras(path: pathlib.Path, matrices: np.ndarray, image_paths) -> None:
  """Checks each 3x5 matrix [N, 3, 5] of poses_bounds.npy: a rotation (columns down, right, backward: a
  right-handed frame too) and a positive height, width and focal length."""
  for index, (matrix, image_path) in enumerate(zip(matrices, image_paths)):
    where = f'{path}: row {index} ({image_path.name})'
    if np.any(matrix[:, 4] <= 0):
      raise DatasetError(f'{where}: height, width and focal length (the 5th column) must be positive, got '
                         f'{matrix[:, 4].tolist()}.')
    blender.check_rotation(matrix[:, :3], f'{where} camera matrix')


def _inverse(pose: np.ndarray) -> np.ndarray:
  rotation = pose[:, :3].T
  return np.concatenate([rotation, -(rotation @ pose[:, 3])[:, None]], axis=1)


def read_llff(scene_dir, factor: int = 1, forward_facing: bool = True,
              spherify: bool = False) -> capture_lib.Capture:
  """Reads an LLFF scene into a Capture in the world the NeRF code uses (see the module docstring).

  Args:
    scene_dir: the directory holding poses_bounds.npy and images/ or images_<N>/.
    factor: the downsampling factor that will be read (its images_<factor>/ names the files, if images/ is
      absent); the intrinsics stay at the size poses_bounds.npy describes whatever the directory.
    forward_facing: recentre on the mean camera and give rays in its NDC space (NeRF's LLFF setting).
    spherify: for inward-facing 360 captures: centre on the cameras' focus instead (no NDC).
  """
  scene_dir = pathlib.Path(scene_dir)
  if not scene_dir.is_dir():
    raise DatasetError(f'LLFF scene directory {scene_dir} does not exist.')
  path = scene_dir / POSES_FILE
  array = _read_poses_bounds(path)
  image_paths = capture_lib.image_files(_image_directory(scene_dir, factor))
  if len(image_paths) != len(array):
    raise DatasetError(f'{path} describes {len(array)} images, but {image_paths[0].parent} holds '
                       f'{len(image_paths)}; the rows must match the image files sorted by name.')
  matrices = array[:, :15].reshape(-1, 3, 5)
  _check_cameras(path, matrices, image_paths)
  height, width, focal = matrices[:, 0, 4], matrices[:, 1, 4], matrices[:, 2, 4]
  # Columns (down, right, backward) -> (right, up, backward).
  camtoworlds = np.stack([matrices[:, :, 1], -matrices[:, :, 0], matrices[:, :, 2], matrices[:, :, 3]], axis=-1)
  bounds = array[:, 15:17]
  scale = 1.0 / (bounds.min() * BOUNDS_MARGIN)
  camtoworlds[:, :, 3] *= scale
  bounds = bounds * scale
  intrinsics = camera.Intrinsics(focal, focal, width / 2, height / 2)
  capture = capture_lib.Capture(image_paths=tuple(image_paths), camtoworlds=camtoworlds, intrinsics=intrinsics,
                                sizes=np.stack([width, height], axis=-1), depth_bounds=bounds, source=str(path))
  if spherify:
    return spherified(capture)
  reference = _inverse(camera.average_pose(camtoworlds))
  capture = capture.transformed(reference, 1.0)
  if not forward_facing:
    return capture
  return dataclasses.replace(
      capture, ndc=camera.NDCSpace(float(focal[0]), float(focal[0]), int(width[0]), int(height[0]), 1.0))


def spherified(capture: capture_lib.Capture) -> capture_lib.Capture:
  """The capture centred on the point its cameras look at, with z along the cameras' mean offset from it
  and their root-mean-square distance from it 1 (NeRF's spherify_poses)."""
  centre = camera.focus_point(capture.camtoworlds)
  if centre is None:
    raise DatasetError(f'{capture.source}: config.capture.spherify needs cameras looking inwards at a common '
                       'point, but their viewing axes are nearly parallel (a forward-facing capture).')
  offsets = capture.camtoworlds[:, :, 3] - centre
  mean_offset = offsets.mean(axis=0)
  rotation = capture_lib.rotation_taking(mean_offset / np.linalg.norm(mean_offset))
  transform = np.concatenate([rotation, -(rotation @ centre)[:, None]], axis=1)
  radius = np.sqrt(np.mean(np.sum(offsets**2, axis=-1)))
  return capture.transformed(transform, 1.0 / radius)
