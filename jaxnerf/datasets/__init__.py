"""Datasets: readers that turn a scene on disk into `SceneSplit`s, and the ray batcher for training."""

import os
import pathlib

from jaxnerf.datasets.blender import load_blender_split
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import DatasetError

DATASETS = ('blender', 'procedural')


def default_cache_dir() -> pathlib.Path:
  """Where the procedural scene is generated: $JAXNERF_CACHE, else $XDG_CACHE_HOME/jaxnerf."""
  if os.environ.get('JAXNERF_CACHE'):
    return pathlib.Path(os.environ['JAXNERF_CACHE'])
  return pathlib.Path(os.environ.get('XDG_CACHE_HOME', pathlib.Path.home() / '.cache')) / 'jaxnerf'


def scene_directory(config, generate: bool = True) -> pathlib.Path:
  """The directory holding the scene `config` names, generating the procedural scene if needed (unless not
  `generate`)."""
  if config.dataset == 'blender':
    if not config.data_dir:
      raise DatasetError('config.data_dir is empty: point it at a Blender scene directory, e.g. '
                         '--config.data_dir=/path/to/nerf_synthetic/chair.')
    return pathlib.Path(config.data_dir)
  if config.dataset == 'procedural':
    from jaxnerf.datasets import procedural  # Only the procedural scene needs the ray tracer.
    spec = procedural.ProceduralSceneSpec(**config.procedural)
    cache_dir = config.data_dir or default_cache_dir()
    if not generate:
      return pathlib.Path(cache_dir) / procedural.scene_name(spec)
    return procedural.ensure_scene(cache_dir, spec)
  raise DatasetError(f'config.dataset: unknown dataset {config.dataset!r}; expected one of {DATASETS}.')


def load_split(config, split: str, data_dir=None) -> SceneSplit:
  """Loads `split` of the scene named by `config` (`data_dir` overrides the scene directory)."""
  directory = pathlib.Path(data_dir) if data_dir else scene_directory(config)
  return load_blender_split(directory, split, factor=config.factor,
                            white_background=config.white_background, near=config.near, far=config.far)


def has_split(config, split: str, data_dir=None) -> bool:
  """Whether the scene (`data_dir`, else the one `config` names) has `split`."""
  directory = pathlib.Path(data_dir) if data_dir else scene_directory(config)
  return (directory / f'transforms_{split}.json').is_file()
