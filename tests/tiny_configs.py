"""Tiny configs on a tiny procedural scene, for tests: importable, and a config file for train.py runs in a
subprocess (the scene is passed as --config.data_dir):

  python train.py --config=tests/tiny_configs.py --config.data_dir=CACHE --workdir=DIR
  python train.py --config=tests/tiny_configs.py:ngp --config.data_dir=CACHE --workdir=DIR
  python train.py --config=tests/tiny_configs.py:mlp --config.data_dir=CACHE --workdir=DIR
"""

import dataclasses
import importlib

from configs import demo
from jaxnerf.datasets import procedural

TINY_SCENE = procedural.ProceduralSceneSpec(resolution=24, num_train=12, num_val=2, num_test=2,
                                            supersampling=2)


def tiny_config(scene_cache='', **train):
  """The coarse-to-fine NeRF over a tiny hash grid (the demo's field), 20 steps of 128 rays."""
  config = demo.get_config()
  config.data_dir = str(scene_cache)
  config.procedural.update(dataclasses.asdict(TINY_SCENE))
  config.model.update(name='nerf', num_coarse_samples=16, num_fine_samples=16)
  config.model.hash_grid.update(num_levels=4, log2_table_size=12, min_resolution=4, max_resolution=64,
                                density_width=16, geo_features=7, color_depth=1, color_width=32,
                                view_max_deg=2)
  config.train.update(batch_size=128, num_steps=20, log_every=5, checkpoint_every=10, keep_checkpoints=5)
  config.train.update(train)
  config.eval.update(every_steps=0, num_images=1, final_num_images=1, video_frames=0, chunk_size=256,
                     video_min_size=32, lpips=())  # LPIPS compiles a network per image size: asked for where tested.
  return config


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
  """The tiny scene with instant-ngp's renderer: marching through a 16^3 occupancy grid."""
  config = tiny_config(scene_cache, **train)
  config.model.name = 'occupancy_grid'
  config.model.hash_grid.view_encoding = 'sh'
  config.model.occupancy_grid.update(grid_resolution=16, step_size=0.04, march_samples_per_ray=64.0,
                                     render_samples_per_ray=48.0, update_every=4, warmup_steps=16,
                                     density_decay=0.8)  # Forgets the untrained field within 100 steps.
  return config


def tiny_method_config(name: str, scene_cache='', **train):
  """configs/<name>.py (mipnerf, mipnerf360, demo360, lego_proposal) on the tiny scene, with its networks and
  sample counts shrunk so that a step compiles and runs in seconds; the method (renderer, fields, warp,
  spacing, loss terms) is the config's own."""
  module = importlib.import_module(f'configs.{name}')
  config = module.get_config()
  tiny = tiny_config(scene_cache, **train)
  config.update(dataset='procedural', data_dir=tiny.data_dir, factor=1, scene_box=config.scene_box,
                near=tiny.near, far=tiny.far, white_background=True)
  config.procedural.update(tiny.procedural)
  config.model.mlp.update(depth=2, width=32, width_view=16, point_max_deg=6)
  config.model.hash_grid.update(tiny.model.hash_grid)
  config.model.mipnerf.update(num_samples=16)
  config.model.proposal.update(num_proposal_samples=(16, 8), num_nerf_samples=8)
  config.model.proposal.mlp.update(depth=1, width=16)
  config.model.proposal.hash_grid.update(num_levels=3, log2_table_size=10, max_resolution=32)
  config.model.refnerf.update(bottleneck_width=8, depth=2, width=16, ide_levels=3)
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
