"""The paper's Blender setting on the 'lego' scene (see chair.py for the settings).

  python train.py --config=configs/lego.py --config.data_dir=/path/to/nerf_synthetic/lego \
      --workdir=runs/lego

For a quick run on a CPU, add --config.factor=8 (100x100 images).
"""

from configs import chair


def get_config():
  config = chair.get_config()
  config.data_dir = 'data/nerf_synthetic/lego'
  return config
