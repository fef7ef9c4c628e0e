"""instant-ngp on the Blender 'lego' scene (see chair_ngp.py for the settings and the `:cpu` preset).

  python train.py --config=configs/lego_ngp.py --config.data_dir=/path/to/nerf_synthetic/lego
  python train.py --config=configs/lego_ngp.py:cpu --config.data_dir=/path/to/nerf_synthetic/lego
"""

from configs import chair_ngp


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):  # Checked here, so that the message names this file, not chair_ngp.py.
    raise ValueError(f"Unknown preset {preset!r} for configs/lego_ngp.py: use '' (full resolution) or 'cpu'.")
  config = chair_ngp.get_config(preset)
  config.data_dir = 'data/nerf_synthetic/lego'
  return config
