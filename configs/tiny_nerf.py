"""The NeRF authors' tiny_nerf notebook: its data and its model, the starting point of many NeRF projects.

  python train.py --config=configs/tiny_nerf.py --config.data_dir=/path/to/tiny_nerf_data.npz
  python train.py --config=configs/tiny_nerf.py:cpu --config.data_dir=/path/to/tiny_nerf_data.npz

tiny_nerf_data.npz (106 views of the Blender lego at 100x100 on black, one focal length; linked from the
notebook in https://github.com/bmild/nerf) is read by datasets/tiny_nerf.py: the first 100 views train, the
other 6 are the val and test views. The model is the notebook's: an 8x256 MLP with a skip at layer 4, 6
octaves of positional encoding of the points and no view directions (colour from the trunk alone), 64
stratified samples between t = 2 and 6 and no fine level; Adam at 5e-4. The notebook trains on one whole
image a step (10,000 rays) for 1000 steps on a GPU. The `cpu` preset takes 256-ray batches drawn from all
images instead (a 1024-ray step takes 2.5 s on a 2-core CPU), trains for 300 s and writes no video.
"""

from configs import default


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/tiny_nerf.py: use '' (the notebook's) or 'cpu'.")
  config = default.get_config()
  config.dataset = 'tiny_nerf'
  config.data_dir = 'data/tiny_nerf_data.npz'
  config.white_background = False  # The images are on black.
  config.near, config.far = 2.0, 6.0
  config.model.update(name='nerf', field='mlp', num_coarse_samples=64, num_fine_samples=0)
  config.model.mlp.update(depth=8, width=256, skip_every=4, point_max_deg=6, use_viewdirs=False)
  config.optim.update(lr_init=5e-4, lr_final=5e-4)  # The notebook's constant rate.
  config.batching.mode = 'single_image'
  config.train.update(batch_size=10_000, num_steps=1000)
  config.eval.update(every_steps=250, chunk_size=10_000)
  if preset == 'cpu':
    config.batching.mode = 'all_images'
    config.train.update(batch_size=256, num_steps=100_000, max_seconds=300.0)
    # The 8x256 MLP renders about 1,000 rays/s here: an orbit video would take minutes (render.py --path).
    config.eval.video_frames = 0
  return config
