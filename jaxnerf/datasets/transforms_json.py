"""Reader and writer of instant-ngp's and nerfstudio's `transforms.json`, what most capture apps export.

Layout: `transforms.json` beside the images, holding `frames`, a list of {"file_path", "transform_matrix"}
(4x4 OpenGL camera-to-world, as in the Blender scenes), with the intrinsics at the top level or per frame
(a frame's value wins): `fl_x`, `fl_y` (or `camera_angle_x`, `camera_angle_y`), `cx`, `cy`, `w`, `h`,
`k1`, `k2`, `k3`, `p1`, `p2`, and `camera_model` ('OPENCV' or 'PINHOLE'; fisheye models are refused).
`file_path` is relative to the JSON's directory (or absolute), with or without its extension. `aabb_scale`
is kept as Capture.aabb_scale. Frames are read in the order of their file names.

Every check fails with a DatasetError naming the file, the frame and the field.
"""

import json
import math
import pathlib
from typing import Optional

import numpy as np
from PIL import Image

from jaxnerf.datasets.blender import check_pose
from jaxnerf.datasets import capture as capture_lib
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

FILE_NAME = 'transforms.json'
DISTORTION_KEYS = ('k1', 'k2', 'k3', 'p1', 'p2')  # camera.Intrinsics' order.
CAMERA_MODELS = ('OPENCV', 'PINHOLE')


def _number(frame: dict, meta: dict, key: str, where: str) -> Optional[float]:
  value = frame.get(key, meta.get(key))
  if value is None:
    return None
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise DatasetError(f'{where}: "{key}" must be a finite number, got {value!r}.')
  return float(value)


def _image_path(directory: pathlib.Path, frame: dict, where: str) -> pathlib.Path:
  file_path = frame.get('file_path')
  if not isinstance(file_path, str) or not file_path:
    raise DatasetError(f'{where}: "file_path" must be the path of the frame\'s image, got {file_path!r}.')
  path = directory / file_path  # An absolute file_path stays as it is.
  if path.is_file():
    return path
  for suffix in capture_lib.IMAGE_SUFFIXES + tuple(s.upper() for s in capture_lib.IMAGE_SUFFIXES):
    if path.with_name(path.name + suffix).is_file():
      return path.with_name(path.name + suffix)
  raise DatasetError(f'{where}: "file_path" refers to {path}, which does not exist.')


def _frame_intrinsics(frame: dict, meta: dict, path: pathlib.Path, where: str):
  """(camera.Intrinsics with scalar fields, (width, height)) of one frame."""
  model = frame.get('camera_model', meta.get('camera_model', 'OPENCV'))
  if model not in CAMERA_MODELS:
    raise DatasetError(f'{where}: "camera_model" {model!r} is not supported; expected one of {CAMERA_MODELS} '
                       '(fisheye captures: undistort the images first).')
  width, height = _number(frame, meta, 'w', where), _number(frame, meta, 'h', where)
  if width is None or height is None:
    try:
      with Image.open(path) as image:
        width, height = image.size
    except OSError as e:
      raise DatasetError(f'{path} could not be read as an image: {e}') from e
  focal_x, focal_y = _number(frame, meta, 'fl_x', where), _number(frame, meta, 'fl_y', where)
  angle_x, angle_y = _number(frame, meta, 'camera_angle_x', where), _number(frame, meta, 'camera_angle_y', where)
  if focal_x is None and angle_x is not None:
    focal_x = 0.5 * width / math.tan(0.5 * angle_x)
  if focal_y is None and angle_y is not None:
    focal_y = 0.5 * height / math.tan(0.5 * angle_y)
  focal_x, focal_y = focal_x or focal_y, focal_y or focal_x
  if not focal_x or focal_x <= 0 or focal_y <= 0:
    raise DatasetError(f'{where}: no focal length: expected "fl_x" (and "fl_y") in pixels, or "camera_angle_x" '
                       'in radians, in the frame or at the top level.')
  centre_x, centre_y = _number(frame, meta, 'cx', where), _number(frame, meta, 'cy', where)
  coefficients = [_number(frame, meta, key, where) or 0.0 for key in DISTORTION_KEYS]
  distortion = np.array(coefficients) if model == 'OPENCV' and any(coefficients) else None
  intrinsics = camera.Intrinsics(focal_x, focal_y, width / 2 if centre_x is None else centre_x,
                                 height / 2 if centre_y is None else centre_y, distortion)
  return intrinsics, (width, height)


def read_transforms(scene_dir) -> capture_lib.Capture:
  """Reads `scene_dir`/transforms.json into a Capture (see the module docstring)."""
  scene_dir = pathlib.Path(scene_dir)
  path = scene_dir / FILE_NAME
  if not path.is_file():
    raise DatasetError(f'{path} is missing: expected an instant-ngp / nerfstudio transforms.json.')
  try:
    meta = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DatasetError(f'{path} is not valid JSON: {e}') from e
  frames = meta.get('frames') if isinstance(meta, dict) else None
  if not isinstance(frames, list) or not frames:
    raise DatasetError(f'{path}: expected a JSON object with a non-empty list "frames".')
  records = []
  for index, frame in enumerate(frames):
    where = f'{path}: frame {index}'
    if not isinstance(frame, dict):
      raise DatasetError(f'{where} must be a JSON object, got {type(frame).__name__}.')
    if 'transform_matrix' not in frame:
      raise DatasetError(f'{where} has no "transform_matrix" (4x4 camera-to-world).')
    image_path = _image_path(scene_dir, frame, where)
    pose = check_pose(frame['transform_matrix'], path, index)
    intrinsics, size = _frame_intrinsics(frame, meta, image_path, where)
    records.append((image_path, pose[:3], intrinsics, size))
  records.sort(key=lambda record: record[0].name)
  aabb_scale = meta.get('aabb_scale')
  return capture_lib.Capture(
      image_paths=tuple(record[0] for record in records), camtoworlds=np.stack([r[1] for r in records]),
      intrinsics=camera.Intrinsics.stack(record[2] for record in records),
      sizes=np.array([record[3] for record in records], np.float64),
      aabb_scale=float(aabb_scale) if isinstance(aabb_scale, (int, float)) else None, source=str(path))


def write_transforms(capture: capture_lib.Capture, path) -> None:
  """Writes a Capture as a transforms.json at `path`, with per-frame intrinsics and file paths relative to
  the JSON's directory where they lie below it (else absolute)."""
  path = pathlib.Path(path)
  frames = []
  for i, image_path in enumerate(capture.image_paths):
    image_path = pathlib.Path(image_path).resolve()
    try:
      file_path = str(image_path.relative_to(path.parent.resolve()))
    except ValueError:
      file_path = str(image_path)
    k = capture.intrinsics.take(i)
    frame = {'file_path': file_path,
             'transform_matrix': np.concatenate([capture.camtoworlds[i], [[0, 0, 0, 1]]]).tolist(),
             'fl_x': float(k.focal_x), 'fl_y': float(k.focal_y), 'cx': float(k.center_x),
             'cy': float(k.center_y), 'w': int(capture.sizes[i, 0]), 'h': int(capture.sizes[i, 1])}
    if k.distortion is not None:
      frame.update(zip(DISTORTION_KEYS, map(float, k.distortion)))
    frames.append(frame)
  meta = {'camera_model': 'OPENCV', 'frames': frames}
  if capture.aabb_scale is not None:
    meta['aabb_scale'] = capture.aabb_scale
  path.write_text(json.dumps(meta, indent=2))
