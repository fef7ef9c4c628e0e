"""Tiny configs on a tiny procedural scene, for tests: importable, and a config file for train.py runs in a
subprocess (the scene is passed as --config.data_dir):

  python train.py --config=tests/tiny_configs.py --config.data_dir=CACHE --workdir=DIR
  python train.py --config=tests/tiny_configs.py:ngp --config.data_dir=CACHE --workdir=DIR
  python train.py --config=tests/tiny_configs.py:mlp --config.data_dir=CACHE --workdir=DIR
"""

import importlib

from configs import demo
from jaxnerf import config_groups
from jaxnerf.datasets import procedural


def tiny_config(scene_cache='', **train):
  """The coarse-to-fine NeRF over a hash grid (the demo's field) with every group at the test size its
  component registers (config_groups.apply_small): a 24-pixel scene, 16 + 16 samples, 20 steps of 128 rays."""
  config = config_groups.apply_small(demo.get_config())
  config.data_dir = str(scene_cache)
  config.model.name = 'nerf'
  config.train.update(train)
  return config


TINY_SCENE = procedural.ProceduralSceneSpec(**tiny_config().procedural)


def use_small_mlp_field(config):
  """Gives `config`'s renderer a small MLP field (2x32), which compiles in half the hash grid's time."""
  config.model.update(field='mlp', density_activation='relu')
  config.model.mlp.update(depth=2, width=32, width_view=16, point_max_deg=4, view_max_deg=2)
  return config


def small_mlp_config(scene_cache='', **train):
  """tiny_config with the small MLP field (use_small_mlp_field): for tests of what every model does alike
  (checkpoints, crashes, processes, sweeps, loss scaling)."""
  return use_small_mlp_field(tiny_config(scene_cache, **train))


def tiny_ngp_config(scene_cache='', **train):
  """The tiny scene with instant-ngp's renderer: marching through a 16^3 occupancy grid (its test size)."""
  config = tiny_config(scene_cache, **train)
  config.model.name = 'occupancy_grid'
  config.model.hash_grid.view_encoding = 'sh'
  return config


def tiny_method_config(name: str, scene_cache='', **train):
  """configs/<name>.py (mipnerf, mipnerf360, demo360, lego_proposal) on the tiny scene, with every group at its
  registered test size, so that a step compiles and runs in seconds; the method (renderer, fields, warp,
  spacing, loss terms) is the config's own."""
  module = importlib.import_module(f'configs.{name}')
  config = config_groups.apply_small(module.get_config())
  tiny = tiny_config(scene_cache, **train)
  config.update(dataset='procedural', data_dir=tiny.data_dir, factor=1, scene_box=config.scene_box,
                near=tiny.near, far=tiny.far, white_background=True)
  config.procedural.update(tiny.procedural)
  config.optim.update(lr_delay_steps=0, grad_clip_norm=0.0)
  config.train = tiny.train
  config.eval = tiny.eval
  return config


def tiny_capture_config(name: str, scene_dir, **train):
  """configs/<name>.py (fern, fern_ngp, capture) on a small capture in `scene_dir`, shrunk as
  `tiny_method_config` shrinks the methods; the dataset, reader options and model are the config's own."""
  config = importlib.import_module(f'configs.{name}').get_config()
  tiny = tiny_method_config(name, **train)
  config.update(data_dir=str(scene_dir), factor=1)
  for group in ('model', 'optim', 'train', 'eval'):
    config[group] = tiny[group]
  config.model.num_coarse_samples = config.model.num_fine_samples = 16
  return config


def get_config(preset: str = ''):
  presets = {'': tiny_config, 'ngp': tiny_ngp_config, 'mlp': small_mlp_config}
  if preset not in presets:
    raise ValueError(f"Unknown preset {preset!r} for tests/tiny_configs.py: use '', 'ngp' or 'mlp'.")
  return presets[preset]()
