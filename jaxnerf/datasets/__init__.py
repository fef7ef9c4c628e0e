"""Datasets: readers that turn a scene on disk into `SceneSplit`s, and the ray batcher for training.

config.dataset names an entry of DATASETS: where its scene lives and how a split of it is read. Real
captures ('llff', 'colmap', 'transforms', or 'capture' to tell them apart by their files) are read into a
`capture.Capture` and split and normalised the same way (config.capture); 'tiny_nerf' reads the tiny_nerf
notebook's .npz file.
"""

import dataclasses
import os
import pathlib
from typing import Callable, Optional

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.datasets.blender import load_blender_split
from jaxnerf.datasets import capture as capture_lib
from jaxnerf.datasets import colmap  # pycolmap itself is imported only when a model is read.
from jaxnerf.datasets import llff
from jaxnerf.datasets import pose_noise
from jaxnerf.datasets import tiny_nerf
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.datasets import transforms_json
from jaxnerf.errors import DatasetError
from jaxnerf import values


def default_cache_dir() -> pathlib.Path:
  """Where the procedural scene is generated: $JAXNERF_CACHE, else $XDG_CACHE_HOME/jaxnerf."""
  if os.environ.get('JAXNERF_CACHE'):
    return pathlib.Path(os.environ['JAXNERF_CACHE'])
  return pathlib.Path(os.environ.get('XDG_CACHE_HOME', pathlib.Path.home() / '.cache')) / 'jaxnerf'


def _given_directory(config, generate: bool) -> pathlib.Path:
  del generate
  if not config.data_dir:
    raise DatasetError(f'config.data_dir is empty: point it at the {config.dataset} scene directory, e.g. '
                       '--config.data_dir=/path/to/nerf_synthetic/chair or /path/to/nerf_llff_data/fern.')
  return pathlib.Path(config.data_dir)


def _procedural_directory(config, generate: bool) -> pathlib.Path:
  from jaxnerf.datasets import procedural  # Only the procedural scene needs the ray tracer.
  spec = procedural.ProceduralSceneSpec(**config.procedural)
  cache_dir = config.data_dir or default_cache_dir()
  if not generate:
    return pathlib.Path(cache_dir) / procedural.scene_name(spec)
  return procedural.ensure_scene(cache_dir, spec)


def _read_blender_split(directory: pathlib.Path, split: str, config) -> SceneSplit:
  return load_blender_split(directory, split, factor=config.factor, white_background=config.white_background,
                            near=config.near, far=config.far)


def _has_blender_split(directory: pathlib.Path, split: str) -> bool:
  return (directory / f'transforms_{split}.json').is_file()


def capture_format(directory: pathlib.Path) -> str:
  """Which capture reader `directory` is for, by its files: 'transforms' (transforms.json), 'colmap'
  (sparse/0/, sparse/ or colmap/sparse/0/ holding cameras.bin or cameras.txt) or 'llff' (poses_bounds.npy),
  in that order of preference."""
  directory = pathlib.Path(directory)
  if (directory / 'transforms.json').is_file():
    return 'transforms'
  if colmap.find_model(directory) is not None:
    return 'colmap'
  if (directory / llff.POSES_FILE).is_file():
    return 'llff'
  raise DatasetError(f'{directory} is not a capture this project reads: expected transforms.json, a COLMAP '
                     f'model (sparse/0/cameras.bin or .txt) or {llff.POSES_FILE}.')


def read_capture(directory: pathlib.Path, config, capture_format_name: str) -> capture_lib.Capture:
  """The capture in `directory`, read by `capture_format_name` and normalised as config.capture says (LLFF
  scenes in NDC or spherified keep the world those need)."""
  options = config.capture
  if capture_format_name == 'llff':
    capture = llff.read_llff(directory, config.factor, options.forward_facing, options.spherify)
    if options.forward_facing or options.spherify:  # Already in the world NDC or spherify expects.
      return capture
  elif capture_format_name == 'colmap':
    capture = colmap.read_colmap(directory)
  else:
    capture = transforms_json.read_transforms(directory)
  return capture_lib.normalize(capture, options.normalize)[0]


def _read_tiny_nerf_split(path: pathlib.Path, split: str, config) -> SceneSplit:
  if config.factor != 1:
    raise DatasetError(f'config.factor={config.factor}: the tiny NeRF data is read at its own size (factor 1).')
  return tiny_nerf.load_tiny_nerf_split(path, split, config.near, config.far)


def _has_tiny_nerf_split(path: pathlib.Path, split: str) -> bool:
  del path
  return split in tiny_nerf.SPLITS


def _capture_reader(capture_format_name: Optional[str]):
  def read_split(directory: pathlib.Path, split: str, config) -> SceneSplit:
    name = capture_format_name or capture_format(directory)
    options = config.capture
    return capture_lib.load_capture_split(read_capture(directory, config, name), split, config.factor,
                                          options.test_every, options.near, options.far)
  return read_split


def _has_capture_split(directory: pathlib.Path, split: str) -> bool:
  return split in capture_lib.SPLITS


@dataclasses.dataclass(frozen=True)
class Dataset:
  """How to find and read the scenes of one `config.dataset`."""

  # (config, generate) -> the scene's directory; generated scenes are made there first if `generate`.
  directory: Callable[..., pathlib.Path]
  read_split: Callable[..., SceneSplit]  # (directory, split, config) -> the split.
  has_split: Callable[..., bool]  # (directory, split) -> whether the scene has it.
  is_file: bool = False  # The scene is one file (config.data_dir names it), not a directory.


DATASETS = {
    'blender': Dataset(_given_directory, _read_blender_split, _has_blender_split),
    # The procedural scene is written in the Blender layout.
    'procedural': Dataset(_procedural_directory, _read_blender_split, _has_blender_split),
    'llff': Dataset(_given_directory, _capture_reader('llff'), _has_capture_split),
    'colmap': Dataset(_given_directory, _capture_reader('colmap'), _has_capture_split),
    'transforms': Dataset(_given_directory, _capture_reader('transforms'), _has_capture_split),
    'capture': Dataset(_given_directory, _capture_reader(None), _has_capture_split),
    # The tiny_nerf notebook's tiny_nerf_data.npz: config.data_dir is the file.
    'tiny_nerf': Dataset(_given_directory, _read_tiny_nerf_split, _has_tiny_nerf_split, is_file=True),
}


def _check_bounds(config) -> Optional[str]:
  """config.near must lie before config.far."""
  if 'near' in config and 'far' in config and not config.near < config.far:
    return f'config.near={config.near} must be less than config.far={config.far}.'
  return None


def _check_scene_box(config) -> Optional[str]:
  """config.scene_box is () or 6 numbers, each min below its max."""
  box = tuple(config.get('scene_box', ()))
  if box and (len(box) != 6 or not all(values.is_number(v) for v in box) or
              not all(lo < hi for lo, hi in zip(box[:3], box[3:]))):
    return (f'config.scene_box={box}: expected () or 6 numbers (x_min, y_min, z_min, x_max, y_max, z_max) with '
            'each min below its max.')
  return None


# The scene: which reader (DATASETS) reads it, where, and how.
config_groups.register('', owner=__name__, settings=dict(
    dataset=Setting('procedural', "The scene's reader (DATASETS): 'procedural' (the embedded scene), 'blender', "
                    "'llff', 'colmap', 'transforms', 'capture' (any of these 3, by its files; config.capture) or "
                    "'tiny_nerf'.", values.one_of(DATASETS, ordered=True)),
    data_dir=Setting('', "The scene directory; 'procedural': its cache directory ('' = $JAXNERF_CACHE, else "
                     "$XDG_CACHE_HOME/jaxnerf); 'tiny_nerf': the .npz file."),
    factor=Setting(1, 'Integer downsampling factor of the images (area averaging); 1: full size.',
                   values.POSITIVE_INT),
    white_background=Setting(True, 'Composite RGBA images (and renderings) on white; False: on black.'),
    near=Setting(2.0, "Near ray bound (depth along the viewing axis) of 'blender', 'procedural' and 'tiny_nerf' "
                 "scenes; the Blender scenes' 2. Captures use config.capture.near.", values.NON_NEGATIVE),
    far=Setting(6.0, "Far ray bound (depth along the viewing axis) of 'blender', 'procedural' and 'tiny_nerf' "
                "scenes; the Blender scenes' 6. Captures use config.capture.far.", values.POSITIVE),
    scene_box=Setting((), 'Box (x_min, y_min, z_min, x_max, y_max, z_max) around the scene, () for none; rays are '
                      "sampled only inside it. Hash grids (unless model.warp='contract') and the occupancy grid "
                      'need it. Blender scenes: [-1.5, 1.5]^3.'),
), checks=(_check_bounds, _check_scene_box))


def _dataset(config) -> Dataset:
  if config.dataset not in DATASETS:
    raise DatasetError(f'config.dataset: unknown dataset {config.dataset!r}; expected one of '
                       f'{tuple(DATASETS)}.')
  return DATASETS[config.dataset]


def scene_directory(config, generate: bool = True) -> pathlib.Path:
  """The directory holding the scene `config` names, generating the procedural scene if needed (unless not
  `generate`)."""
  return _dataset(config).directory(config, generate)


def _scene_path(config, data_dir) -> pathlib.Path:
  """`data_dir`, else the scene `config` names; a file where the dataset reads a directory is refused."""
  path = pathlib.Path(data_dir) if data_dir else scene_directory(config)
  if path.is_file() and not _dataset(config).is_file:
    raise DatasetError(f'{path} is a file; config.dataset={config.dataset!r} reads a scene directory: point '
                       f'config.data_dir (or --data_dir) at the folder that holds the scene, e.g. {path.parent}.')
  return path


def load_split(config, split: str, data_dir=None) -> SceneSplit:
  """Loads `split` of the scene named by `config` (`data_dir` overrides the scene directory). The 'train'
  split's rays carry the index of their image (camera.Rays.cam_idx); the others' camera.ANY_CAMERA. The
  'train' split's poses are perturbed as config.pose_noise says (the given ones kept as true_camtoworlds)."""
  loaded = dataclasses.replace(_dataset(config).read_split(_scene_path(config, data_dir), split, config),
                               training=split == 'train')
  if split != 'train' or 'pose_noise' not in config:
    return loaded
  return pose_noise.perturbed(loaded, config.pose_noise, config.scene_box)


def has_split(config, split: str, data_dir=None) -> bool:
  """Whether the scene (`data_dir`, else the one `config` names) has `split`."""
  return _dataset(config).has_split(_scene_path(config, data_dir), split)
