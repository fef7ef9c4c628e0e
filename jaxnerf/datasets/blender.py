"""Reader for the Blender synthetic scenes of the NeRF paper (and scenes written in their layout).

Layout: `transforms_{train,val,test}.json`, each holding `camera_angle_x` (horizontal field of view in
radians) and `frames`, a list of {"file_path": "./train/r_0", "transform_matrix": 4x4 camera-to-world}.
Images are RGBA PNGs with straight (not premultiplied) alpha, all of one size. A frame may have a
ground-truth depth map beside its image as `<file_path>_depth.npy`, a normal map `<file_path>_normals.npy`
and a region map `<file_path>_regions.npy` (MAPS; the procedural scenes write these).

Every check fails with a `DatasetError` naming the file or field at fault and what was expected.
"""

import concurrent.futures
import functools
import json
import math
import pathlib
from typing import Optional

import numpy as np
from PIL import Image

from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import DatasetError
from jaxnerf import metrics
from jaxnerf.ops import camera

# How far a camera-to-world matrix may be from a rigid motion (rounding in the files written by tools).
POSE_TOLERANCE = 1e-3
DOWNLOAD_HINT = (
    'The NeRF synthetic scenes (chair, lego, ...) come from the NeRF authors: download nerf_synthetic.zip '
    '(linked from https://github.com/bmild/nerf, "nerf_synthetic"), unzip it, and point at a scene with '
    '--config.data_dir=/path/to/nerf_synthetic/<scene>.')


def load_blender_split(data_dir, split: str, factor: int = 1, white_background: bool = True,
                       near: float = 2.0, far: float = 6.0) -> SceneSplit:
  """Loads one split, composited on the background and downsampled by `factor` (area averaging).

  Args:
    data_dir: the scene directory holding transforms_{split}.json.
    split: 'train', 'val' or 'test'.
    factor: integer downsampling factor; image sizes must be divisible by it.
    white_background: composite on white (True) or black.
    near, far: ray bounds.
  """
  data_dir = pathlib.Path(data_dir)
  if not data_dir.is_dir():
    raise DatasetError(f'Scene directory {data_dir} does not exist. {DOWNLOAD_HINT}')
  if not isinstance(factor, int) or factor < 1:
    raise DatasetError(f'config.factor must be a positive integer, got {factor!r}.')
  meta_path = data_dir / f'transforms_{split}.json'
  meta = _read_json(meta_path, split)
  frames, camera_angle_x = _check_meta(meta, meta_path)
  image_paths = [_image_path(data_dir, frame, meta_path, i) for i, frame in enumerate(frames)]
  camtoworlds = np.stack([check_pose(f.get('transform_matrix'), meta_path, i)
                          for i, f in enumerate(frames)])

  background = 1.0 if white_background else 0.0
  # Each image is composited and downsampled as it is read: the split holds only its final pixels, never all
  # of its images at full size (1 GB of float32 for 100 images of 800x800 RGBA).
  with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    read = list(pool.map(functools.partial(_read_downsampled, background=background, factor=factor), image_paths))
  first_shape = read[0][0]
  for path, (shape, _, _) in zip(image_paths, read):
    if shape != first_shape:
      raise DatasetError(f'{path}: image is {shape[1]}x{shape[0]}, but {image_paths[0]} is '
                         f'{first_shape[1]}x{first_shape[0]}; all images of a split must have one size.')
  height, width = first_shape[:2]
  if height % factor or width % factor:
    raise DatasetError(f'config.factor={factor} does not divide the image size {width}x{height} of '
                       f'{meta_path.parent}.')
  images = np.stack([rgb for _, rgb, _ in read])
  alphas = np.stack([alpha for _, _, alpha in read])
  focal = 0.5 * width / math.tan(0.5 * camera_angle_x) / factor
  intrinsics = camera.Intrinsics.pinhole(focal, width // factor, height // factor).repeated(len(frames))
  # Maps of what each pixel centre sees are only meaningful at the images' own resolution.
  maps = {kind: _read_maps(image_paths, kind, trailing, dtype, (height, width)) if factor == 1 else None
          for kind, (trailing, dtype) in MAPS.items()}
  return SceneSplit(images=images, camtoworlds=camtoworlds[:, :3, :].astype(np.float32), intrinsics=intrinsics,
                    near=near, far=far, names=tuple(p.stem for p in image_paths), depths=maps['depth'],
                    normals=maps['normals'], regions=maps['regions'], alphas=alphas)


def _read_downsampled(path, background: float, factor: int):
  """(full [H, W, 4] shape, [H / factor, W / factor, 3] composited RGB, [H / factor, W / factor] alpha) of one
  image; the last two None where `factor` does not divide its size (the caller says so)."""
  rgba = read_rgba(path)
  height, width = rgba.shape[:2]
  if height % factor or width % factor:
    return rgba.shape, None, None
  rgb = downsample(composite(rgba, background)[None], factor)[0]
  return rgba.shape, rgb, downsample(rgba[None, ..., 3:], factor)[0, ..., 0]


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
  """Box-filters [N, H, W, C] images by an integer `factor` (area averaging)."""
  if factor == 1:
    return images
  n, h, w, c = images.shape
  return images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _read_json(path: pathlib.Path, split: str):
  if not path.is_file():
    available = sorted(p.stem.removeprefix('transforms_') for p in path.parent.glob('transforms_*.json'))
    if available:
      raise DatasetError(f'{path} is missing: {path.parent} has no {split!r} split; its splits are '
                         f'{", ".join(available)}.')
    raise DatasetError(f'{path} is missing: {path.parent} holds no transforms_*.json. {DOWNLOAD_HINT}')
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DatasetError(f'{path} is not valid JSON: {e}.') from e


def _check_meta(meta, meta_path):
  if not isinstance(meta, dict):
    raise DatasetError(f'{meta_path}: expected a JSON object with "camera_angle_x" and "frames".')
  camera_angle_x = meta.get('camera_angle_x')
  if not isinstance(camera_angle_x, (int, float)) or not 0 < camera_angle_x < math.pi:
    raise DatasetError(f'{meta_path}: "camera_angle_x" must be a field of view in radians in (0, pi), '
                       f'got {camera_angle_x!r}.')
  frames = meta.get('frames')
  if not isinstance(frames, list) or not frames:
    raise DatasetError(f'{meta_path}: "frames" must be a non-empty list, got {type(frames).__name__}.')
  return frames, float(camera_angle_x)


def _image_path(data_dir, frame, meta_path, index) -> pathlib.Path:
  file_path = frame.get('file_path') if isinstance(frame, dict) else None
  if not isinstance(file_path, str):
    raise DatasetError(f'{meta_path}: frame {index} has no "file_path" string.')
  path = data_dir / file_path
  if not path.suffix:
    path = path.with_name(path.name + '.png')
  if not path.is_file():
    raise DatasetError(f'{meta_path}: frame {index} refers to {path}, which does not exist.')
  return path


def check_pose(matrix, meta_path, index, where: str = '') -> np.ndarray:
  """The 4x4 camera-to-world matrix of frame `index`, checked to be a rigid motion: a rotation (orthonormal
  columns, determinant +1, no scale) and a translation, over the row (0, 0, 0, 1). `where` names the
  matrix in errors (default: the frame's "transform_matrix" in `meta_path`)."""
  where = where or f'{meta_path}: frame {index} "transform_matrix"'
  try:
    pose = np.asarray(matrix, dtype=np.float64)
  except (TypeError, ValueError):
    pose = None
  if pose is None or pose.shape != (4, 4):
    raise DatasetError(f'{where} must be a 4x4 matrix of numbers, got {matrix!r:.80}.')
  if not np.all(np.isfinite(pose)):
    raise DatasetError(f'{where} has non-finite entries.')
  if np.max(np.abs(pose[3] - [0, 0, 0, 1])) > POSE_TOLERANCE:
    raise DatasetError(f'{where} must end in the row (0, 0, 0, 1), got {pose[3].tolist()}.')
  check_rotation(pose[:3, :3], where)
  return pose


def check_rotation(rotation: np.ndarray, where: str) -> None:
  """Checks that the [3, 3] part of a camera-to-world matrix is a rotation (orthonormal columns, determinant +1,
  no scale) to within POSE_TOLERANCE; `where` names the matrix in the DatasetError."""
  lengths = np.linalg.norm(rotation, axis=0)
  determinant = np.linalg.det(rotation)
  expected = ('a camera-to-world matrix must hold a rotation (orthonormal columns, determinant +1) and a '
              'translation')
  if abs(determinant) < POSE_TOLERANCE:
    raise DatasetError(f'{where} is singular (its 3x3 part has determinant {determinant:.3g}): {expected}.')
  if np.max(np.abs(lengths - 1)) > POSE_TOLERANCE:
    raise DatasetError(f'{where} scales (its 3x3 part has columns of lengths '
                       f'{", ".join(f"{v:.4g}" for v in lengths)}): {expected}, no scale.')
  if np.max(np.abs(rotation.T @ rotation - np.eye(3))) > POSE_TOLERANCE or determinant < 0:
    raise DatasetError(f'{where} is not a rotation (its 3x3 part shears or mirrors; determinant '
                       f'{determinant:.4g}): {expected}.')


def _png_bit_depth(path: pathlib.Path) -> Optional[int]:
  """The bit depth a PNG's header declares; None for other files."""
  with open(path, 'rb') as f:
    header = f.read(26)
  if len(header) < 26 or header[:8] != b'\x89PNG\r\n\x1a\n' or header[12:16] != b'IHDR':
    return None
  return header[24]


def _read_png16(path: pathlib.Path) -> np.ndarray:
  """[H, W, 4] float32 in [0, 1] of a 16-bit PNG, at its full precision (Pillow keeps 8 bits of colour
  channels and clips grey ones)."""
  import png  # pypng; only 16-bit files need it.
  width, height, rows, info = png.Reader(filename=str(path)).asDirect()
  pixels = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(height, width, info['planes'])
  pixels = pixels.astype(np.float32) / 65535.0
  colour = np.repeat(pixels[..., :1], 3, axis=-1) if info['greyscale'] else pixels[..., :3]
  alpha = pixels[..., -1:] if info['alpha'] else np.ones_like(pixels[..., :1])
  return np.concatenate([colour, alpha], axis=-1)


def read_rgba(path: pathlib.Path) -> np.ndarray:
  """[H, W, 4] float32 in [0, 1], at the image's own bit depth (8 or 16); an image without alpha gets
  alpha 1."""
  try:
    if _png_bit_depth(path) == 16:
      return _read_png16(path)
    with Image.open(path) as image:
      if image.mode.startswith('I;16'):  # 16-bit grey of other formats (TIFF).
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.stack([grey, grey, grey, np.ones_like(grey)], axis=-1)
      if image.mode in ('I', 'F'):
        raise DatasetError(f'{path}: {image.mode!r} images (32-bit integer or float) are not supported; '
                           'expected 8- or 16-bit RGB(A) or grey.')
      return np.asarray(image.convert('RGBA'), dtype=np.float32) / 255.0
  except (OSError, SyntaxError, ValueError) as e:
    if isinstance(e, DatasetError):
      raise
    raise DatasetError(f'{path} could not be read as an image: {e}') from e


def composite(rgba: np.ndarray, background: float) -> np.ndarray:
  rgb, alpha = rgba[..., :3], rgba[..., 3:]
  return rgb * alpha + background * (1.0 - alpha)


# The ground-truth maps an image may have beside it, <image>_<kind>.npy (the procedural scenes write them):
# kind: (the shape after [H, W], the dtype they are read as).
MAPS = {'depth': ((), np.float32), 'normals': ((3,), np.float32), 'regions': ((), np.uint8)}


def _read_maps(image_paths, kind: str, trailing: tuple, dtype, image_size: tuple):
  """[N, H, W, *trailing] of the <image>_<kind>.npy files beside every image (of (H, W) `image_size`), read as
  `dtype`, or None where any is missing.

  Raises:
    DatasetError: a map is not [H, W, *trailing] of its image's size, or (regions) holds an index outside
      metrics.REGIONS.
  """
  paths = [p.with_name(f'{p.stem}_{kind}.npy') for p in image_paths]
  if not all(p.is_file() for p in paths):
    return None
  maps = []
  for image_path, path in zip(image_paths, paths):
    try:
      array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
      raise DatasetError(f'{path} could not be read as a NumPy array: {e}') from e
    if array.shape != image_size + trailing:
      raise DatasetError(f'{path} holds an array of shape {array.shape}; expected {image_size + trailing} '
                         f'(the {kind} map of {image_path.name}, {image_size[1]}x{image_size[0]}).')
    if kind == 'regions' and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0
                              or array.max() >= len(metrics.REGIONS)):
      raise DatasetError(f'{path} must hold integer indices into {metrics.REGIONS} (0 to '
                         f'{len(metrics.REGIONS) - 1}); it holds {array.dtype} from {array.min()} to {array.max()}.')
    maps.append(array.astype(dtype))
  return np.stack(maps)
