"""The embedded demo: a small NeRF on the procedural scene, trained in minutes on a laptop CPU.

  python train.py

needs no download: the scene is ray traced into a cache directory on first use (a few seconds).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'procedural'
  config.model.num_coarse_samples = 32
  config.model.num_fine_samples = 32
  config.model.mlp_depth = 4
  config.model.mlp_width = 64
  config.model.mlp_skip_every = 2
  config.model.mlp_width_view = 32
  config.train.batch_size = 1024
  config.train.num_steps = 3000
  config.train.log_every = 100
  config.train.checkpoint_every = 1000
  config.eval.every_steps = 0
  config.eval.final_num_images = -1
  return config
