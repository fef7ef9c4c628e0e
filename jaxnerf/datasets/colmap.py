"""Reader for COLMAP models (binary or text), read with pycolmap: the layout that COLMAP, process_photos.py,
nerfstudio's ns-process-data and multinerf use.

Layout: `images/` (the photos) and a model in `sparse/0/`, `sparse/` or `colmap/sparse/0/` (`cameras`,
`images` and `points3D`, `.bin` or `.txt`). Only registered images are read, sorted by name.

Conventions: COLMAP's `cam_from_world` maps world points into an OpenCV camera (x right, y down, looking
down +z); camera.py's OpenGL camera-to-world is its inverse with the y and z axes negated. Pixel centres
are at +0.5 in both. Camera models map to camera.Intrinsics (distortion (k1, k2, k3, p1, p2)):
SIMPLE_PINHOLE (f, cx, cy), PINHOLE (fx, fy, cx, cy), SIMPLE_RADIAL (f, cx, cy, k1), RADIAL (f, cx, cy, k1,
k2), OPENCV (fx, fy, cx, cy, k1, k2, p1, p2), FULL_OPENCV (fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6;
only with k4 = k5 = k6 = 0, the rational terms this project does not model).
"""

import pathlib
from typing import Optional

import numpy as np

from jaxnerf.datasets import capture as capture_lib
from jaxnerf.errors import ConfigError
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

MODEL_DIRECTORIES = ('sparse/0', 'sparse', 'colmap/sparse/0')
SUPPORTED_MODELS = ('SIMPLE_PINHOLE', 'PINHOLE', 'SIMPLE_RADIAL', 'RADIAL', 'OPENCV', 'FULL_OPENCV')
# OpenCV camera axes (y down, looking down +z) to OpenGL (y up, looking down -z): negate y and z.
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def find_model(scene_dir: pathlib.Path) -> Optional[pathlib.Path]:
  """The directory of the scene's COLMAP model (the first of MODEL_DIRECTORIES holding cameras.bin/.txt), or
  None."""
  for name in MODEL_DIRECTORIES:
    directory = pathlib.Path(scene_dir) / name
    if any((directory / f'cameras.{ext}').is_file() for ext in ('bin', 'txt')):
      return directory
  return None


def model_directory(scene_dir: pathlib.Path) -> pathlib.Path:
  """`find_model`, or a DatasetError saying what was looked for."""
  directory = find_model(scene_dir)
  if directory is not None:
    return directory
  raise DatasetError(f'{scene_dir} holds no COLMAP model: expected cameras, images and points3D (.bin or .txt) '
                     f'in one of {", ".join(MODEL_DIRECTORIES)}/. (process_photos.py makes one from photos.)')


def intrinsics_of(model_name: str, params, where: str) -> camera.Intrinsics:
  """camera.Intrinsics (scalar fields, distortion [5] or None) of a COLMAP camera model and its params."""
  p = [float(v) for v in params]
  zero = [0.0] * 5
  if model_name == 'SIMPLE_PINHOLE':
    return camera.Intrinsics(p[0], p[0], p[1], p[2])
  if model_name == 'PINHOLE':
    return camera.Intrinsics(p[0], p[1], p[2], p[3])
  if model_name == 'SIMPLE_RADIAL':
    return camera.Intrinsics(p[0], p[0], p[1], p[2], np.array([p[3]] + zero[1:]))
  if model_name == 'RADIAL':
    return camera.Intrinsics(p[0], p[0], p[1], p[2], np.array([p[3], p[4], 0.0, 0.0, 0.0]))
  if model_name == 'OPENCV':
    return camera.Intrinsics(p[0], p[1], p[2], p[3], np.array([p[4], p[5], 0.0, p[6], p[7]]))
  if model_name == 'FULL_OPENCV':
    if any(p[9:12]):
      raise DatasetError(f'{where}: FULL_OPENCV camera with rational coefficients k4, k5, k6 = {p[9:12]}; only '
                         'k1, k2, k3, p1, p2 are modelled. Re-run COLMAP with the OPENCV model.')
    return camera.Intrinsics(p[0], p[1], p[2], p[3], np.array([p[4], p[5], p[8], p[6], p[7]]))
  raise DatasetError(f'{where}: camera model {model_name} is not supported; expected one of '
                     f'{", ".join(SUPPORTED_MODELS)} (fisheye lenses: undistort the images first, e.g. with '
                     'process_photos.py or colmap image_undistorter).')


def import_pycolmap():
  """pycolmap, imported where COLMAP is needed (reading models, structure from motion), or a ConfigError
  saying how to install it."""
  try:
    import pycolmap  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ConfigError('COLMAP models and structure from motion need pycolmap (COLMAP\'s Python bindings): '
                      'pip install -r requirements.txt') from None
  return pycolmap


def read_colmap(scene_dir) -> capture_lib.Capture:
  """Reads the registered images of a COLMAP model into a Capture (OpenGL cameras, per-image intrinsics at
  the model's image sizes, the sparse points)."""
  scene_dir = pathlib.Path(scene_dir)
  if not scene_dir.is_dir():
    raise DatasetError(f'COLMAP scene directory {scene_dir} does not exist.')
  model_dir = model_directory(scene_dir)
  pycolmap = import_pycolmap()
  try:
    reconstruction = pycolmap.Reconstruction(str(model_dir))
  except Exception as e:  # pycolmap's errors for damaged files (IndexError, ValueError, MemoryError) name
    # its internals ("Rig with ID -2112926112 does not exist"), which say nothing to the user.
    files = ', '.join(sorted(p.name for p in model_dir.iterdir() if p.stem in ('cameras', 'images', 'points3D')))
    raise DatasetError(f'{model_dir}: could not read the COLMAP model ({files}): the files are damaged or not a '
                       'COLMAP model.') from e
  images = sorted((reconstruction.images[i] for i in reconstruction.reg_image_ids()), key=lambda im: im.name)
  if not images:
    raise DatasetError(f'{model_dir}: the COLMAP model has no registered images.')
  paths, camtoworlds, intrinsics, sizes = [], [], [], []
  for image in images:
    path = scene_dir / 'images' / image.name
    if not path.is_file():
      raise DatasetError(f'{path} is missing: {model_dir} lists {image.name} among its registered images.')
    cam = reconstruction.cameras[image.camera_id]
    intrinsics.append(intrinsics_of(cam.model_name, cam.params, f'{model_dir}, camera {image.camera_id}'))
    world_to_camera = np.asarray(image.cam_from_world().matrix(), np.float64)
    rotation = world_to_camera[:, :3].T  # Camera axes in the world.
    centre = -rotation @ world_to_camera[:, 3]
    camtoworlds.append(np.concatenate([rotation @ OPENCV_TO_OPENGL, centre[:, None]], axis=1))
    paths.append(path)
    sizes.append((cam.width, cam.height))
  points = np.array([point.xyz for point in reconstruction.points3D.values()], np.float64).reshape(-1, 3)
  return capture_lib.Capture(image_paths=tuple(paths), camtoworlds=np.stack(camtoworlds),
                             intrinsics=camera.Intrinsics.stack(intrinsics),
                             sizes=np.array(sizes, np.float64), points=points, source=str(model_dir))
