"""Dataset lookup by config.dataset."""

import pathlib

import ml_collections
import numpy as np
import pytest

from jaxnerf import datasets
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import DatasetError
from jaxnerf.ops.camera import Intrinsics


def test_unknown_dataset_names_the_key_and_the_choices():
  config = ml_collections.ConfigDict(dict(dataset='llff_typo', data_dir='/nowhere'))
  with pytest.raises(DatasetError, match=r"config.dataset: unknown dataset 'llff_typo'; expected one of "
                                         r"\('blender', 'procedural', 'llff', 'colmap', 'transforms', 'capture', "
                                         r"'tiny_nerf'\)"):
    datasets.load_split(config, 'train')


def test_splits_are_read_by_the_dataset_the_config_names(monkeypatch, tmp_path):
  calls = []
  split = SceneSplit(np.zeros((1, 2, 2, 3)), np.zeros((1, 3, 4)), Intrinsics.pinhole(2.0, 2, 2).repeated(1), 0.0,
                     1.0)
  fake = datasets.Dataset(directory=lambda config, generate: tmp_path / config.data_dir,
                          read_split=lambda directory, name, config: calls.append((directory, name)) or split,
                          has_split=lambda directory, split: split == 'train')
  monkeypatch.setitem(datasets.DATASETS, 'fake', fake)
  config = ml_collections.ConfigDict(dict(dataset='fake', data_dir='scene'))
  assert datasets.load_split(config, 'val').images is split.images
  assert datasets.load_split(config, 'test', data_dir='/elsewhere').images is split.images
  assert calls == [(tmp_path / 'scene', 'val'), (pathlib.Path('/elsewhere'), 'test')]
  # Only the training split's rays carry their image's index (camera.Rays.cam_idx).
  assert datasets.load_split(config, 'train').training and not datasets.load_split(config, 'val').training
  assert datasets.has_split(config, 'train') and not datasets.has_split(config, 'test')
  assert datasets.scene_directory(config) == tmp_path / 'scene'


def test_a_file_given_as_a_scene_directory_is_refused_naming_its_folder(tmp_path):
  (tmp_path / 'poses_bounds.npy').write_bytes(b'')
  for dataset in ('blender', 'llff', 'capture'):
    config = ml_collections.ConfigDict(dict(dataset=dataset, data_dir=str(tmp_path / 'poses_bounds.npy')))
    with pytest.raises(DatasetError, match=rf"poses_bounds.npy is a file; config.dataset='{dataset}' reads a "
                                           rf'scene directory: .* e.g. {tmp_path}\.'):
      datasets.load_split(config, 'train')
    with pytest.raises(DatasetError, match='is a file'):
      datasets.has_split(config, 'train', data_dir=str(tmp_path / 'poses_bounds.npy'))
