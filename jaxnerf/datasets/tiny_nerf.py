"""Reader for the tiny NeRF data of the NeRF authors' tiny_nerf notebook (`tiny_nerf_data.npz`).

Layout: one .npz file with
- `images`: [N, H, W, 3] float RGB in [0, 1] (the real file: 106 views of the Blender lego at 100x100, on
  black);
- `poses`: [N, 4, 4] camera-to-world matrices (Blender/OpenGL convention, as transforms.json's);
- `focal`: the focal length in pixels, one number for all views.
The notebook trains on the first 100 views and looks at the rest (it shows view 101): here 'train' is the
first 100 and 'val' and 'test' are the others. Near and far are config.near and config.far (the notebook's
2 and 6).

Every check fails with a `DatasetError` naming the file and the key at fault and what was expected.
"""

import pathlib
import zipfile

import numpy as np

from jaxnerf.datasets.blender import check_pose
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

NUM_TRAIN = 100  # The notebook's: images[:100] train, the rest are held out.
ZIP_MAGIC = b'PK\x03\x04'  # How every .npz file starts.
NPY_MAGIC = b'\x93NUMPY'  # How a single array's .npy file starts.
SPLITS = ('train', 'val', 'test')
DOWNLOAD_HINT = ('tiny_nerf_data.npz comes from the NeRF authors (linked from the tiny_nerf notebook of '
                 'https://github.com/bmild/nerf); point at the file with --config.data_dir=/path/to/'
                 'tiny_nerf_data.npz.')


def _read_arrays(path: pathlib.Path):
  if not path.is_file():
    raise DatasetError(f'{path} does not exist or is not a file. {DOWNLOAD_HINT}')
  with open(path, 'rb') as f:
    magic = f.read(len(NPY_MAGIC))
  if magic.startswith(NPY_MAGIC):
    raise DatasetError(f'{path} is a single .npy array; expected an .npz archive of the arrays '
                       f"'images', 'poses' and 'focal'. {DOWNLOAD_HINT}")
  if not magic.startswith(ZIP_MAGIC):  # (NumPy would take it for a pickle and suggest loading it so.)
    raise DatasetError(f'{path} is not a readable .npz file: not a zip archive. {DOWNLOAD_HINT}')
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DatasetError(f'{path} is not a readable .npz file ({e}). {DOWNLOAD_HINT}') from None
  for key in ('images', 'poses', 'focal'):
    if key not in arrays:
      raise DatasetError(f'{path} has no {key!r} array (it has {sorted(arrays)}); the tiny NeRF layout is '
                         "'images' [N, H, W, 3], 'poses' [N, 4, 4] and 'focal'.")
  return arrays['images'], arrays['poses'], arrays['focal']


def _check(path: pathlib.Path, images, poses, focal):
  if images.ndim != 4 or images.shape[-1] != 3 or not np.issubdtype(images.dtype, np.floating):
    raise DatasetError(f"{path}: 'images' must be [N, H, W, 3] floats in [0, 1], got {images.dtype} "
                       f'{list(images.shape)}.')
  if images.shape[0] <= NUM_TRAIN or not images[0].size:  # Before the value checks: min() of nothing raises.
    raise DatasetError(f'{path} holds {images.shape[0]} views of {images.shape[1]}x{images.shape[2]} pixels; '
                       f'the tiny NeRF split trains on the first {NUM_TRAIN} and holds out the rest, so it '
                       f'needs more than {NUM_TRAIN} views of at least one pixel.')
  if not np.all(np.isfinite(images)):
    raise DatasetError(f"{path}: 'images' must hold finite values in [0, 1]; "
                       f'{np.sum(~np.isfinite(images))} are non-finite.')
  if images.min() < 0.0 or images.max() > 1.0:
    raise DatasetError(f"{path}: 'images' must hold finite values in [0, 1], got [{images.min():g}, "
                       f'{images.max():g}].')
  if poses.shape != (images.shape[0], 4, 4):
    raise DatasetError(f"{path}: 'poses' must be [{images.shape[0]}, 4, 4] (one per image), got "
                       f'{list(poses.shape)}.')
  if np.size(focal) != 1 or not np.isfinite(focal).all() or float(np.reshape(focal, ())) <= 0:
    raise DatasetError(f"{path}: 'focal' must be one positive number (pixels), got {focal!r:.80}.")


def load_tiny_nerf_split(path, split: str, near: float = 2.0, far: float = 6.0) -> SceneSplit:
  """Loads `split` ('train': the first 100 views; 'val', 'test': the others) of a tiny_nerf_data.npz."""
  path = pathlib.Path(path)
  if split not in SPLITS:
    raise DatasetError(f'The tiny NeRF data has the splits {SPLITS}, not {split!r}.')
  images, poses, focal = _read_arrays(path)
  _check(path, images, poses, focal)
  chosen = slice(0, NUM_TRAIN) if split == 'train' else slice(NUM_TRAIN, None)
  indices = np.arange(images.shape[0])[chosen]
  camtoworlds = np.stack([check_pose(poses[i], path, i, f"{path}: 'poses'[{i}]")[:3]
                          for i in indices]).astype(np.float32)
  height, width = images.shape[1:3]
  intrinsics = camera.Intrinsics.pinhole(float(np.reshape(focal, ())), width, height).repeated(len(indices))
  return SceneSplit(images=images[chosen].astype(np.float32), camtoworlds=camtoworlds, intrinsics=intrinsics,
                    near=near, far=far, names=tuple(f'view_{i:03d}' for i in indices))


def write_tiny_nerf_npz(path, splits) -> pathlib.Path:
  """Writes the views of `splits` (SceneSplits with one pinhole focal length; the first 100 views are the
  training views) to `path` in the tiny NeRF layout, images as they are composited: e.g. a Blender scene's
  train and val splits at factor 8 on black make a file like tiny_nerf_data.npz."""
  path = pathlib.Path(path)
  images = np.concatenate([split.images for split in splits]).astype(np.float32)
  height, width = images.shape[1:3]
  per_view = lambda name: np.concatenate([np.broadcast_to(np.asarray(getattr(split.intrinsics, name), np.float64),
                                                           (split.num_images,)) for split in splits])
  focal_x, focal_y, center_x, center_y = map(per_view, ('focal_x', 'focal_y', 'center_x', 'center_y'))
  if (not np.allclose(np.concatenate([focal_x, focal_y]), focal_x[0], rtol=1e-6)
      or not np.allclose(center_x, width / 2) or not np.allclose(center_y, height / 2)
      or any(split.intrinsics.distortion is not None for split in splits)):
    raise DatasetError(f'{path}: the tiny NeRF layout has one focal length, square pixels, centred optical '
                       'axes and no distortion; these views differ.')
  bottom = np.broadcast_to([0.0, 0.0, 0.0, 1.0], (images.shape[0], 1, 4))
  poses = np.concatenate([np.concatenate([split.camtoworlds for split in splits]), bottom], axis=1)
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, 'wb') as f:
    np.savez(f, images=images, poses=poses.astype(np.float32), focal=np.float64(focal_x[0]))
  return path
