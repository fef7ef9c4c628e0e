"""instant-ngp (Mueller et al. 2022) on the Blender 'chair' scene, in pure JAX.

  python train.py --config=configs/chair_ngp.py --config.data_dir=/path/to/nerf_synthetic/chair
  python train.py --config=configs/chair_ngp.py:cpu --config.data_dir=/path/to/nerf_synthetic/chair

The field is a multiresolution hash grid with tiny MLPs (models.HashGridField), rendered by fixed-step ray
marching that skips empty space with an occupancy grid and packs the surviving samples into fixed-size
buffers (models.OccupancyGridNeRF). The first command uses the paper's settings at full 800x800 resolution
(for a GPU); the `:cpu` preset trains on 100x100 images (factor 8) with a grid and a marching step sized for
them, which reaches about 33 dB on lego in 5 minutes of training on 2 CPU cores (docs/results.md).
"""

from configs import default


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/chair_ngp.py: use '' (full resolution) or 'cpu'.")
  config = default.get_config()
  config.dataset = 'blender'
  config.data_dir = 'data/nerf_synthetic/chair'
  config.scene_box = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)  # instant-ngp's unit cube (aabb_scale 1), scaled.
  config.model.update(name='occupancy_grid', field='hash_grid', density_activation='trunc_exp')
  # The paper's field: 16 levels of 2 features, tables of 2^19 entries, resolutions 16 to 2048 (over the
  # unit cube: 2048 cells per side of the box), one 64-unit hidden layer for density and two for colour,
  # spherical harmonics of degree 4 for the view direction.
  config.model.hash_grid.update(num_levels=16, features_per_level=2, log2_table_size=19, min_resolution=16,
                                max_resolution=2048, density_width=64, geo_features=15, color_depth=2,
                                color_width=64, view_encoding='sh', sh_degree=4)
  # Marching as instant-ngp marches the Blender scenes: 1024 steps across the box's diagonal (sqrt(3) * 3 /
  # 1024 ~ 0.005), a 128^3 occupancy grid updated every 16 steps, early termination at transmittance 1e-4.
  config.model.occupancy_grid.update(grid_resolution=128, step_size=0.005, march_samples_per_ray=96.0,
                                     render_samples_per_ray=32.0)
  # The paper's optimiser: Adam with beta2 0.99 and epsilon 1e-15 (tiny, so that rarely-touched hash
  # entries still move); learning rate 1e-2, here decayed log-linearly to 1e-3.
  config.optim.update(lr_init=1e-2, lr_final=1e-3, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-15)
  config.train.update(batch_size=8192, num_steps=30_000, log_every=100, checkpoint_every=2000,
                      random_background=True)
  config.eval.update(every_steps=0, final_num_images=-1, video_frames=60, chunk_size=16384)
  if preset == 'cpu':
    config.factor = 8  # 100x100 images.
    # Pixels of 100x100 images are 8 times wider: coarser steps, grid and finest level lose nothing, and a
    # 2^15-entry table fits in a CPU's cache (faster than 2^19 here).
    # 8 levels of 4 features cost less per sample on a CPU than 16 of 2, and learn as fast here.
    config.model.hash_grid.update(num_levels=8, features_per_level=4, log2_table_size=15, max_resolution=512)
    # Slots for 20 marched and 8 rendered samples per ray on average (instant-ngp's fixed sample budget):
    # the rays that do not fit are left out of the loss (75% early on, 6% by the end on lego). 5 minutes
    # hold 2.1x the steps of 64 and 24 slots, which pays: 33.0 dB at 300 s against 32.2.
    config.model.occupancy_grid.update(grid_resolution=64, step_size=0.01, march_samples_per_ray=20.0,
                                       render_samples_per_ray=8.0)
    # Five minutes of training: the learning rate holds for the first half of the steps the budget allows
    # (estimated from the measured step time) and decays over the second half; batches of 2048 rays (twice
    # the steps of 4096 in the same time) learn a little more.
    config.optim.update(lr_decay_start=0.5)
    config.train.update(batch_size=2048, num_steps=20_000, max_seconds=300.0, log_every=50)
    # An eval chunk of 4096 rays holds one 100x100 view's rays that meet lego (about 3600, 46 steps each).
    config.eval.update(chunk_size=4096, video_frames=0)
  return config
