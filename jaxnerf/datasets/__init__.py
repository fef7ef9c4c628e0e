"""Datasets: readers that turn a scene on disk into `SceneSplit`s, and the ray batcher for training.

config.dataset names an entry of DATASETS: where its scene lives and how a split of it is read.
"""

import dataclasses
import os
import pathlib
from typing import Callable

from jaxnerf.datasets.blender import load_blender_split
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import DatasetError


def default_cache_dir() -> pathlib.Path:
  """Where the procedural scene is generated: $JAXNERF_CACHE, else $XDG_CACHE_HOME/jaxnerf."""
  if os.environ.get('JAXNERF_CACHE'):
    return pathlib.Path(os.environ['JAXNERF_CACHE'])
  return pathlib.Path(os.environ.get('XDG_CACHE_HOME', pathlib.Path.home() / '.cache')) / 'jaxnerf'


def _blender_directory(config, generate: bool) -> pathlib.Path:
  del generate
  if not config.data_dir:
    raise DatasetError('config.data_dir is empty: point it at a Blender scene directory, e.g. '
                       '--config.data_dir=/path/to/nerf_synthetic/chair.')
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


@dataclasses.dataclass(frozen=True)
class Dataset:
  """How to find and read the scenes of one `config.dataset`."""

  # (config, generate) -> the scene's directory; generated scenes are made there first if `generate`.
  directory: Callable[..., pathlib.Path]
  read_split: Callable[..., SceneSplit]  # (directory, split, config) -> the split.
  has_split: Callable[..., bool]  # (directory, split) -> whether the scene has it.


DATASETS = {
    'blender': Dataset(_blender_directory, _read_blender_split, _has_blender_split),
    # The procedural scene is written in the Blender layout.
    'procedural': Dataset(_procedural_directory, _read_blender_split, _has_blender_split),
}


def _dataset(config) -> Dataset:
  if config.dataset not in DATASETS:
    raise DatasetError(f'config.dataset: unknown dataset {config.dataset!r}; expected one of '
                       f'{tuple(DATASETS)}.')
  return DATASETS[config.dataset]


def scene_directory(config, generate: bool = True) -> pathlib.Path:
  """The directory holding the scene `config` names, generating the procedural scene if needed (unless not
  `generate`)."""
  return _dataset(config).directory(config, generate)


def load_split(config, split: str, data_dir=None) -> SceneSplit:
  """Loads `split` of the scene named by `config` (`data_dir` overrides the scene directory)."""
  directory = pathlib.Path(data_dir) if data_dir else scene_directory(config)
  return _dataset(config).read_split(directory, split, config)


def has_split(config, split: str, data_dir=None) -> bool:
  """Whether the scene (`data_dir`, else the one `config` names) has `split`."""
  directory = pathlib.Path(data_dir) if data_dir else scene_directory(config)
  return _dataset(config).has_split(directory, split)
