"""Real captures: the contract every photo-capture reader (LLFF, COLMAP, transforms.json) fills, and what they
share after it: scene normalisation, the held-out split, image reading at a downsampling factor, ray bounds.

A reader returns a `Capture`: every posed photo of the scene, in the OpenGL camera convention of ops/camera.py,
with intrinsics at the size its cameras describe (`Capture.sizes`), whatever the size of the files it names.
`load_capture_split` turns it into one split, reading each image from the copy `image_source` picks.

Splits follow the papers' protocol for captures: every `test_every`-th image (the 0th, 8th, 16th, ...) is held
out as 'test', which 'val' names too; the others are 'train'.
"""

import concurrent.futures
import dataclasses
import pathlib
import re
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.datasets import blender
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera
from jaxnerf import values

SPLITS = ('train', 'val', 'test')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')  # Matched without regard to case.
NORMALIZATIONS = ('cameras', 'points', 'none')
# How far (relative, and at least one pixel) an image file's width or height may be from the size its camera
# describes over its images_<N>'s N: tools round downsampled sizes either way.
SIZE_TOLERANCE = 0.02

# config.capture: how the real captures ('llff', 'colmap', 'transforms', 'capture') are split and normalised
# (read by datasets/__init__.py's readers, llff.py and the functions below).
config_groups.register('capture', owner=__name__, settings=dict(
    test_every=Setting(8, "Every test_every-th image (the 0th, 8th, 16th, ...) is held out as the 'test' split, "
                       "which 'val' names too; the others are 'train'.",
                       (lambda v: values.is_positive_int(v) and v >= 2, 'an integer >= 2')),
    forward_facing=Setting(True, "LLFF: recentre on the mean view and give rays in its NDC space (NeRF's LLFF "
                           'setting); False: no NDC, normalised as `normalize` says.'),
    spherify=Setting(False, "LLFF: an inward-facing 360 capture: centre on the cameras' focus, at unit RMS "
                     'distance, no NDC (overrides forward_facing).'),
    normalize=Setting('cameras', "COLMAP, transforms.json (and LLFF without NDC or spherify): 'cameras' (centred on "
                      "their focus, 90% of them within the unit sphere), 'points' (central 98% of the sparse "
                      "points in [-1, 1]^3) or 'none'.", (lambda v: v in NORMALIZATIONS, f'one of {NORMALIZATIONS}')),
    near=Setting(0.0, 'Near ray bound in the normalised world; 0: from the capture (LLFF bounds, sparse points). '
                 'NDC rays run over [0, 1].', values.NON_NEGATIVE),
    far=Setting(0.0, 'Far ray bound in the normalised world; 0: from the capture (LLFF bounds, sparse points). '
                'NDC rays run over [0, 1].', values.NON_NEGATIVE),
))


@dataclasses.dataclass(frozen=True)
class Capture:
  """Every posed photo of a capture, as a reader finds it.

  Attributes:
    image_paths: one file per photo, in the capture's order (sorted by name); at full size or in an
      images_<N>/ copy (`image_source` picks the file read at each factor).
    camtoworlds: [N, 3, 4] float64 camera-to-world matrices (OpenGL convention).
    intrinsics: camera.Intrinsics, each field [N], at the resolution of `sizes`.
    sizes: [N, 2] (width, height) in pixels of the images the intrinsics describe.
    points: optional [P, 3] sparse 3D points of the reconstruction (COLMAP), for normalisation and bounds.
    depth_bounds: optional [N, 2] near and far depth of each camera's content (LLFF's poses_bounds).
    ndc: the NDC space of a forward-facing capture (LLFF), in which rays are given; None otherwise.
    aabb_scale: instant-ngp's hint that the scene extends this many times beyond the unit cube (transforms.json).
    source: the file the cameras came from, for messages.
  """

  image_paths: Tuple[pathlib.Path, ...]
  camtoworlds: np.ndarray
  intrinsics: camera.Intrinsics
  sizes: np.ndarray
  points: Optional[np.ndarray] = None
  depth_bounds: Optional[np.ndarray] = None
  ndc: Optional[camera.NDCSpace] = None
  aabb_scale: Optional[float] = None
  source: str = ''

  @property
  def num_images(self) -> int:
    return len(self.image_paths)

  def transformed(self, transform: np.ndarray, scale: float) -> 'Capture':
    """The capture in new world coordinates x' = scale * (R x + t), for `transform` [3, 4] = [R | t]."""
    rotation, translation = transform[:, :3], transform[:, 3]
    camtoworlds = np.concatenate([rotation @ self.camtoworlds[:, :, :3],
                                  (scale * (self.camtoworlds[:, :, 3] @ rotation.T + translation))[..., None]],
                                 axis=-1)
    points = None if self.points is None else scale * (self.points @ rotation.T + translation)
    depth_bounds = None if self.depth_bounds is None else scale * self.depth_bounds
    return dataclasses.replace(self, camtoworlds=camtoworlds, points=points, depth_bounds=depth_bounds)


def image_files(directory: pathlib.Path):
  """The image files of `directory`, sorted by name."""
  if not directory.is_dir():
    raise DatasetError(f'{directory} does not exist: expected a directory of images '
                       f'({", ".join(IMAGE_SUFFIXES)}).')
  files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise DatasetError(f'{directory} holds no images: expected files ending in {", ".join(IMAGE_SUFFIXES)}.')
  return files


def held_out(num_images: int, test_every: int) -> np.ndarray:
  """[num_images] bool: the images held out for testing (every `test_every`-th, from the first)."""
  return np.arange(num_images) % test_every == 0


def split_indices(num_images: int, split: str, test_every: int) -> np.ndarray:
  """Indices of the images of `split` ('train', or 'val' / 'test': the held-out images)."""
  if split not in SPLITS:
    raise DatasetError(f'unknown split {split!r}: captures have {", ".join(SPLITS)} (val = test).')
  if test_every < 2:
    raise DatasetError(f'config.capture.test_every must be at least 2, got {test_every}.')
  test = held_out(num_images, test_every)
  return np.flatnonzero(~test if split == 'train' else test)


# ---------------------------------------------------------------------------------------------------------
# Normalisation.


def rotation_taking(up: np.ndarray) -> np.ndarray:
  """A rotation [3, 3] that takes the unit vector `up` to +z (Rodrigues' formula about up x z)."""
  z = np.array([0.0, 0.0, 1.0])
  axis = np.cross(up, z)
  sine, cosine = np.linalg.norm(axis), float(np.dot(up, z))
  if sine < 1e-9:
    return np.eye(3) if cosine > 0 else np.diag([1.0, -1.0, -1.0])
  k = axis / sine
  cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.eye(3) + sine * cross + (1 - cosine) * cross @ cross


def normalize(capture: Capture, mode: str) -> Tuple[Capture, np.ndarray, float]:
  """Centres, levels and scales a capture so that fields find the scene where they expect it.

  The world is rotated so that the cameras' mean up vector is +z (camera paths orbit about z), and centred
  on the point the cameras look at (the focus of their optical axes; for forward-facing captures, the median
  sparse point, else the cameras' mean). Then, by `mode`:
    'cameras': scaled so that the cameras lie within the unit sphere (90th percentile of their distances
      from the centre at 1): mip-NeRF 360's convention for its contraction, whose radius is then 1.
    'points': scaled so that the central 98% of the sparse points lie within [-1, 1]^3 (for a scene box).
    'none': left as the reader found it.

  Returns:
    (capture, transform [3, 4], scale): the new capture, and x' = scale * (R x + t).
  """
  if mode not in NORMALIZATIONS:
    raise DatasetError(f'config.capture.normalize must be one of {NORMALIZATIONS}, got {mode!r}.')
  if mode == 'none':
    return capture, np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1), 1.0
  up = capture.camtoworlds[:, :, 1].mean(axis=0)
  rotation = rotation_taking(up / np.linalg.norm(up))
  centre = camera.focus_point(capture.camtoworlds)
  if centre is None:
    centre = (np.median(capture.points, axis=0) if capture.points is not None and len(capture.points)
              else capture.camtoworlds[:, :, 3].mean(axis=0))
  transform = np.concatenate([rotation, -(rotation @ centre)[:, None]], axis=1)
  centred = capture.transformed(transform, 1.0)
  if mode == 'cameras':
    extent = np.percentile(np.linalg.norm(centred.camtoworlds[:, :, 3], axis=-1), 90)
  else:
    if centred.points is None or len(centred.points) < 10:
      raise DatasetError(f'{capture.source}: config.capture.normalize=\'points\' needs the sparse points of a '
                         'reconstruction (COLMAP\'s points3D), and this capture has none; use \'cameras\'.')
    extent = np.max(np.abs(np.percentile(centred.points, [1, 99], axis=0)))
  if not np.isfinite(extent) or extent <= 0:
    raise DatasetError(f'{capture.source}: the cameras all sit at one point; cannot scale the scene.')
  return capture.transformed(transform, 1.0 / extent), transform, 1.0 / extent


def content_depths(capture: Capture) -> Optional[Tuple[float, float]]:
  """(nearest, farthest) depth of the capture's content in front of its cameras: LLFF's per-image bounds,
  else the 0.1th and 99.9th percentiles of the sparse points' depths, else (transforms.json has neither)
  from the cameras' distances d to the point they look at: 0.1 x the nearest d to 10 x the farthest; None
  when the cameras look at no common point either."""
  if capture.depth_bounds is not None:
    return float(capture.depth_bounds[:, 0].min()), float(capture.depth_bounds[:, 1].max())
  if capture.points is None or not len(capture.points):
    focus = camera.focus_point(capture.camtoworlds)
    if focus is None:
      return None
    distances = np.linalg.norm(capture.camtoworlds[:, :, 3] - focus, axis=-1)
    return 0.1 * float(distances.min()), 10.0 * float(distances.max())
  offsets = capture.points[None, :, :] - capture.camtoworlds[:, None, :, 3]
  depths = -np.einsum('npi,ni->np', offsets, capture.camtoworlds[:, :, 2])
  depths = depths[depths > 0]
  if not len(depths):
    return None
  return float(np.percentile(depths, 0.1)), float(np.percentile(depths, 99.9))


def ray_bounds(capture: Capture, near: float, far: float,
               depths: Optional[Tuple[float, float]] = None) -> Tuple[float, float]:
  """(near, far) of the rays: NDC rays run over [0, 1]; otherwise the given values where positive, else
  from the capture's `content_depths`: 0.9 x the nearest, and the farthest (LLFF's bounds, as NeRF) or 1.5 x
  the farthest sparse point (the percentile cuts the farthest off). `depths`: content_depths(capture), when
  the caller has it already."""
  if capture.ndc is not None:
    return 0.0, 1.0
  if near > 0 and far > 0:
    return near, far
  depths = content_depths(capture) if depths is None else depths
  if depths is None:
    raise DatasetError(f'{capture.source}: this capture has no depth bounds or sparse points, and its cameras '
                       'look at no common point, to derive the ray bounds from; set --config.capture.near and '
                       '--config.capture.far.')
  far_margin = 1.0 if capture.depth_bounds is not None else 1.5
  return (near if near > 0 else 0.9 * depths[0]), (far if far > 0 else far_margin * depths[1])


# ---------------------------------------------------------------------------------------------------------
# Images.


def copy_factor(directory: pathlib.Path) -> int:
  """N for a directory named images_<N> (by LLFF's and COLMAP tools' convention, the photos downsampled N
  times), else 1 (full size)."""
  match = re.fullmatch(r'images_([1-9][0-9]*)', pathlib.Path(directory).name)
  return int(match.group(1)) if match else 1


def _image_size(path: pathlib.Path) -> Tuple[int, int]:
  """(width, height) of an image file, from its header."""
  try:
    with Image.open(path) as image:
      return image.size
  except OSError as e:
    raise DatasetError(f'{path} could not be read as an image: {e}') from e


def _directories_beside(image_paths) -> list:
  """The directories of the images, and the images/ and images_<N>/ directories beside them, sorted."""
  directories = {pathlib.Path(p).parent for p in image_paths}
  for parent in {d.parent for d in directories}:
    directories.update(d for d in parent.iterdir() if d.is_dir() and (d.name == 'images' or copy_factor(d) > 1))
  return sorted(directories)


def _describe_directories(directories) -> str:
  """'images_4/ (1008x756, 20 images), ...': what the directories hold, for messages."""
  found = []
  for directory in directories:
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if files:
      width, height = _image_size(files[0])
      found.append(f'{directory.name}/ ({width}x{height}, {len(files)} images)')
  return ', '.join(found) or 'no images'


def image_source(capture: Capture, factor: int) -> Tuple[Tuple[pathlib.Path, ...], int]:
  """Where to read the capture's images at 1 / `factor` of the size its cameras describe (`Capture.sizes`).

  The first of these that holds every image (by file name, whatever the suffix): `images_<factor>/`, read as
  it is; the full-size images (the capture's own files, or `images/` beside them where those are in an
  `images_<N>/`); `images_<k>/` for the largest k < factor that divides it, downsampled by factor / k. The
  images are never upsampled. Each file's size is checked against this when it is read (`read_image`).

  Returns:
    (files, k): one file per capture image, from a copy k times smaller than `Capture.sizes`.
  """
  own = [pathlib.Path(p) for p in capture.image_paths]
  listings = {}

  def copy_of(k: int) -> Optional[Tuple[pathlib.Path, ...]]:
    files = []
    for path in own:
      if k == 1 and copy_factor(path.parent) == 1:
        files.append(path)
        continue
      directory = path.parent.with_name(f'images_{k}' if k > 1 else 'images')
      if directory not in listings:
        listings[directory] = ({p.stem: p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
                               if directory.is_dir() else {})
      if path.stem not in listings[directory]:
        return None
      files.append(listings[directory][path.stem])
    return tuple(files)

  coarser = [k for k in range(factor - 1, 1, -1) if factor % k == 0]
  for k in dict.fromkeys([factor, 1] + coarser):
    files = copy_of(k)
    if files is not None:
      return files, k
  needed = ([f'images_{factor}/'] if factor > 1 else []) + ['the full-size images/']
  if coarser:
    needed.append(' or '.join(f'images_{k}/' for k in sorted(coarser)) + ' to downsample further')
  directories = _directories_beside(own)
  usable = sorted(k for k in {copy_factor(d) for d in directories} if copy_of(k) is not None)
  smallest = [k for k in usable if not any(k % j == 0 for j in usable if j < k)]
  hint = f' config.factor can be a multiple of {" or ".join(map(str, smallest))}.' if smallest else ''
  width, height = (int(v) for v in capture.sizes[0])
  raise DatasetError(f'{capture.source}: config.factor={factor} needs {", or ".join(needed)} (the cameras '
                     f'describe {width}x{height} images), but beside them are only '
                     f'{_describe_directories(directories)}; images are not upsampled.{hint}')


def read_image(path: pathlib.Path, size, copy: int, factor: int, source: str) -> Tuple[np.ndarray, np.ndarray]:
  """One photo at 1 / `factor` of the `size` its camera describes, from its `copy` times smaller file.

  Args:
    path: the image file (alpha is composited on white).
    size: (width, height) the camera describes.
    copy: how many times smaller the file should be than `size` (its images_<copy>/ directory's N).
    factor: the downsampling factor wanted; a multiple of `copy`.
    source: the file that describes the camera, for messages.

  Returns:
    (image [H, W, 3], scale [2]): the file averaged over whole factor / copy blocks (a ragged right or bottom
    edge cropped), and (x, y) by which intrinsics at `size` scale to it: the file's size over `size`, over
    factor / copy (cropping moves neither the focal length nor the principal point).
  """
  image = blender.composite(blender.read_rgba(path), 1.0)
  height, width = image.shape[:2]
  expected = np.asarray(size, np.float64) / copy
  tolerance = np.maximum(1.0, SIZE_TOLERANCE * expected)
  if np.any(np.abs([width, height] - expected) > tolerance):
    described = f'{source} describes {int(size[0])}x{int(size[1])}'
    if abs(height - width * size[1] / size[0]) > max(1.0, SIZE_TOLERANCE * height):
      raise DatasetError(f'{path} is {width}x{height}, but {described}: another aspect ratio. Are the images '
                         'rotated, or from another capture?')
    wanted = (f'about {expected[0]:g}x{expected[1]:g} (1/{copy} of that, as its directory\'s name says)'
              if copy > 1 else 'that size (the full-size images)')
    raise DatasetError(f'{path} is {width}x{height}, but {described}: expected {wanted}.')
  blocks = factor // copy
  if width < blocks or height < blocks:
    raise DatasetError(f'{path} is {width}x{height}, too small to downsample {blocks} times more for '
                       f'config.factor={factor}.')
  image = blender.downsample(image[None, :height // blocks * blocks, :width // blocks * blocks], blocks)[0]
  return image, np.array([width / size[0], height / size[1]]) / blocks


def load_capture_split(capture: Capture, split: str, factor: int, test_every: int, near: float = 0.0,
                       far: float = 0.0) -> SceneSplit:
  """One split of a capture, its images read at 1 / `factor` of the size its cameras describe (from the files
  `image_source` picks) and its intrinsics (and NDC space) scaled by the size of each file read.

  Args:
    capture: the (normalised) capture.
    split: 'train', 'val' or 'test' (val and test are the held-out images).
    factor: integer downsampling factor of the images.
    test_every: hold out every `test_every`-th image.
    near, far: ray bounds, or 0 to derive them from the capture (`ray_bounds`).
  """
  if not isinstance(factor, int) or factor < 1:
    raise DatasetError(f'config.factor must be a positive integer, got {factor!r}.')
  indices = split_indices(capture.num_images, split, test_every)
  if not len(indices):
    raise DatasetError(f'{capture.source}: the capture has {capture.num_images} images, too few to hold out '
                       f'every {test_every}th for the {split!r} split.')
  files, copy = image_source(capture, factor)
  paths = [files[i] for i in indices]
  with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    read = list(pool.map(lambda i: read_image(files[i], capture.sizes[i], copy, factor, capture.source), indices))
  images = [image for image, _ in read]
  first = images[0].shape
  for path, image in zip(paths, images):
    if image.shape != first:
      raise DatasetError(f'{path}: image is {image.shape[1]}x{image.shape[0]} at factor {factor}, but '
                         f'{paths[0]} is {first[1]}x{first[0]}; all images of a capture must have one size.')
  scale_x, scale_y = np.stack([scale for _, scale in read], axis=-1)
  intrinsics = capture.intrinsics.take(indices)
  intrinsics = intrinsics._replace(
      focal_x=(intrinsics.focal_x * scale_x).astype(np.float32),
      focal_y=(intrinsics.focal_y * scale_y).astype(np.float32),
      center_x=(intrinsics.center_x * scale_x).astype(np.float32),
      center_y=(intrinsics.center_y * scale_y).astype(np.float32),
      distortion=None if intrinsics.distortion is None else intrinsics.distortion.astype(np.float32))
  ndc = capture.ndc
  if ndc is not None:  # Scaled like the images; its map from the world depends on focal / width alone.
    ndc = ndc._replace(focal_x=float(ndc.focal_x * scale_x[0]), focal_y=float(ndc.focal_y * scale_y[0]),
                       width=float(ndc.width * scale_x[0]), height=float(ndc.height * scale_y[0]))
  depths = content_depths(capture)
  near, far = ray_bounds(capture, near, far, depths)
  return SceneSplit(images=np.stack(images).astype(np.float32),
                    camtoworlds=capture.camtoworlds[indices].astype(np.float32), intrinsics=intrinsics,
                    near=near, far=far, names=tuple(p.stem for p in paths), ndc=ndc,
                    depth_range=depths)
