"""mip-NeRF 360's proposal sampler with instant-ngp's hash-grid field (nerfstudio's nerfacto recipe) on the
Blender 'lego' scene.

  python train.py --config=configs/lego_proposal.py --config.data_dir=/path/to/nerf_synthetic/lego
  python train.py --config=configs/lego_proposal.py:cpu --config.data_dir=/path/to/nerf_synthetic/lego

Instead of an occupancy grid (configs/lego_ngp.py), two small density-only hash grids learn where the scene
is (the interlevel loss) and place the samples of the field that renders colour, so the same model trains on
bounded and unbounded scenes (configs/demo360.py). Rays are clipped to the scene box and sampled linearly in
depth. The first command is for a GPU at 800x800; the `:cpu` preset trains on 100x100 images (factor 8) for
5 minutes on 2 CPU cores.
"""

from configs import default


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/lego_proposal.py: use '' (full resolution) or 'cpu'.")
  config = default.get_config()
  config.dataset = 'blender'
  config.data_dir = 'data/nerf_synthetic/lego'
  config.scene_box = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
  config.model.update(name='proposal', field='hash_grid', density_activation='trunc_exp', warp='none')
  config.model.hash_grid.update(num_levels=16, features_per_level=2, log2_table_size=19, min_resolution=16,
                                max_resolution=2048, view_encoding='sh')
  # nerfacto's samplers: 256 then 96 proposal intervals, 48 for the field.
  config.model.proposal.update(field='hash_grid', num_proposal_samples=(256, 96), num_nerf_samples=48,
                               spacing='linear', anneal_slope=10.0, resample_padding=0.01)
  config.model.proposal.hash_grid.update(num_levels=5, features_per_level=2, log2_table_size=17,
                                         min_resolution=16, max_resolution=256, density_width=16)
  config.loss.update(data='mse', interlevel_weight=1.0, distortion_weight=0.002)
  config.optim.update(lr_init=1e-2, lr_final=1e-3, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-15)
  config.train.update(batch_size=4096, num_steps=30_000, log_every=100, checkpoint_every=2000,
                      random_background=True)
  config.eval.update(every_steps=0, final_num_images=-1, video_frames=60, chunk_size=16384)
  if preset == 'cpu':
    config.factor = 8  # 100x100 images.
    # The lego_ngp :cpu field (a 2^15-entry table of 8 levels of 4 features fits a CPU's cache).
    config.model.hash_grid.update(num_levels=8, features_per_level=4, log2_table_size=15, max_resolution=512)
    config.model.proposal.update(num_proposal_samples=(64, 32), num_nerf_samples=16)
    config.model.proposal.hash_grid.update(log2_table_size=15, max_resolution=128)
    config.optim.update(lr_decay_start=0.5)
    config.train.update(batch_size=2048, num_steps=20_000, max_seconds=300.0, log_every=50)
    config.eval.update(chunk_size=8192, video_frames=0)
  return config
