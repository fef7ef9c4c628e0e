"""The NeRF paper's Blender setting, on the 'chair' scene at full 800x800 resolution.

  python train.py --config=configs/chair.py --config.data_dir=/path/to/nerf_synthetic/chair \
      --workdir=runs/chair

The paper's settings are configs/default.py's: an 8x256 MLP with a skip at layer 4, positional encoding
of 10 octaves for points and 4 for directions, 64 coarse + 128 fine samples, white background, 4096-ray
batches, Adam with a learning rate decaying log-linearly from 5e-4 to 5e-6. The paper trains for 100-300k
steps; we use 250k.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'blender'
  config.data_dir = 'data/nerf_synthetic/chair'
  config.train.num_steps = 250_000
  config.eval.every_steps = 25_000
  return config
