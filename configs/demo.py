"""The embedded demo: a hash-grid NeRF on the procedural scene, trained in under 5 minutes on a 2-core CPU.

  python train.py

needs no download: the scene (datasets/procedural.py) is ray traced into a cache directory on first use,
which takes about 10 seconds. The field is instant-ngp's multiresolution hash grid with tiny MLPs
(models.HashGridField), sampled 64 times per ray inside the scene's box; it converges far faster than the
paper's 8x256 MLP (configs/chair.py), which needs hours on a CPU. Outputs land in runs/demo: checkpoints,
metrics.jsonl, TensorBoard events, final/val/ (renderings and PSNR/SSIM) and final/orbit.gif.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'procedural'
  config.scene_box = (-1.3, -1.3, -0.7, 1.3, 1.3, 1.0)  # The procedural scene's objects, with a margin.
  config.model.field = 'hash_grid'
  config.model.density_activation = 'trunc_exp'
  config.model.num_coarse_samples = 64
  config.model.num_fine_samples = 0  # One level: on a CPU, more steps beat a second field.
  config.model.hash_grid.update(log2_table_size=15, max_resolution=512)  # 2^15 entries fit in the cache.
  config.optim.update(lr_init=1e-2, lr_final=1e-3, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-15)
  config.train.update(batch_size=512, num_steps=900, max_seconds=170, log_every=50, checkpoint_every=300,
                      random_background=True)
  config.eval.update(every_steps=0, final_num_images=-1, orbit_frames=48, orbit_fps=16, chunk_size=4096)
  return config
