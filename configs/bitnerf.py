"""BitNeRF: NeRF with BitNet b1.58's ternary, quantisation-aware MLP layers.

  python train.py --config=configs/bitnerf.py --config.data_dir=/path/to/nerf_synthetic/chair
  python train.py --config=configs/bitnerf.py:cpu --config.data_dir=/path/to/nerf_synthetic/lego
  python export.py --workdir=runs/bitnerf --format=packed
  python render.py --packed=runs/bitnerf/export/packed.npz

Without a preset: the paper's model (configs/chair.py: coarse and fine 8x256 MLPs, 64 + 128 samples, 250k
steps, for a GPU) with every hidden layer ternary (models/layers.py: RMSNorm with a learnt gain, 8-bit absmax
activations per sample, absmean ternary weights, straight-through gradients to float32 master weights). As
the BitNet papers keep their embedding and output head, the layer reading the encoded point (trunk_0) and
the density and colour heads stay full precision (config.model.mlp.full_precision_layers).

The `:cpu` preset is the quantised twin of configs/lego_ngp.py:cpu: the same hash grid, occupancy grid,
batches and 5-minute budget, with the hidden layers of the colour MLP ternary (the density MLP is one input
layer and one head, both full precision) and the hash tables 8-bit with a scale per level
(model.hash_grid.table_bits), both trained with the straight-through estimator. docs/results.md gives its
figures against the twin.

`export.py --format=packed` stores the ternary layers in 1.6 bits per weight (five base-3 digits a byte)
with their scales, the tables as their 8-bit integers and scales, and the occupancy grid as bits; `render.py
--packed` renders from that file the images the checkpoint renders.
"""

from configs import chair
from configs import chair_ngp


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/bitnerf.py: use '' (the paper's model) or 'cpu'.")
  if preset == 'cpu':
    config = chair_ngp.get_config('cpu')
    config.data_dir = 'data/nerf_synthetic/lego'
    config.model.hash_grid.update(layers='ternary', table_bits=8)
  else:
    config = chair.get_config()
    config.model.mlp.layers = 'ternary'
  return config
