"""Fast forward-facing NeRF on LLFF 'fern': configs/lego_proposal.py's model in NDC.

  python train.py --config=configs/fern_ngp.py --config.data_dir=/path/to/nerf_llff_data/fern
  python train.py --config=configs/fern_ngp.py:cpu --config.data_dir=/path/to/nerf_llff_data/fern
  python render.py --workdir=runs/fern_ngp --split=test
  python render.py --workdir=runs/fern_ngp --path=spiral

The model is configs/lego_proposal.py's (mip-NeRF 360's proposal sampling over instant-ngp's hash grids, as
nerfstudio's nerfacto) in the NDC space of configs/fern.py: the frustum of the mean view is the box
[-1, 1]^3 (a margin in x and y holds the other cameras' views) and intervals are spaced linearly in NDC,
that is in disparity. The first command is for a GPU at images_4 (1008x756); the `:cpu` preset trains at
images_8 (504x378) for 5 minutes on 2 CPU cores.
"""

from configs import lego_proposal


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/fern_ngp.py: use '' (GPU, images_4) or 'cpu'.")
  config = lego_proposal.get_config(preset)
  config.dataset = 'llff'
  config.data_dir = 'data/nerf_llff_data/fern'
  config.factor = 8 if preset == 'cpu' else 4
  config.white_background = False
  config.capture.update(forward_facing=True, test_every=8)
  config.scene_box = (-1.5, -1.5, -1.0, 1.5, 1.5, 1.0)  # NDC: the mean view's frustum, with a margin.
  config.train.random_background = False  # Photos have no alpha.
  config.eval.path = 'spiral'
  if preset == 'cpu':
    # 504x378 images hold 19 times the pixels of lego's 100x100: a finer grid and a larger table.
    config.model.hash_grid.update(log2_table_size=17, max_resolution=1024)
    # Batches of 1024 rays: at 120 s, 21.7 dB against 20.9 with 2048 and 21.5 with 512.
    config.train.batch_size = 1024
  return config
