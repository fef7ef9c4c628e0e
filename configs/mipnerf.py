"""mip-NeRF (Barron et al. 2021) on the Blender 'chair' scene, with the paper's settings.

  python train.py --config=configs/mipnerf.py --config.data_dir=/path/to/nerf_synthetic/chair

Rays are cones (each pixel's footprint, `Rays.radii`); each interval along a ray is a conical frustum,
approximated by a Gaussian and encoded by the integrated positional encoding (IPE, 16 octaves), so that the
field sees the region a pixel covers, not a point. One 8x256 MLP serves both levels of 128 intervals; the
second level resamples from the first's weights after a 2-tap max and blur with padding 0.01. Density is
softplus(x - 1), colour a sigmoid widened by 0.001; the coarse level's loss is weighted 0.1. Adam at 5e-4
decaying to 5e-6 over 1M steps of 4096 rays, warmed up over 2500 steps from 1% of the rate.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'blender'
  config.data_dir = 'data/nerf_synthetic/chair'
  config.model.update(name='mipnerf', field='mlp', density_activation='softplus', rgb_padding=0.001)
  config.model.mlp.update(point_min_deg=0, point_max_deg=16, view_max_deg=4, depth=8, width=256,
                          skip_every=4, width_view=128, encoding='integrated')
  config.model.mipnerf.update(num_samples=128, num_levels=2, resample_padding=0.01)
  config.loss.update(data='mse', coarse_weight=0.1)
  config.optim.update(lr_init=5e-4, lr_final=5e-6, lr_delay_steps=2500, lr_delay_mult=0.01)
  config.train.update(batch_size=4096, num_steps=1_000_000, checkpoint_every=10_000)
  config.eval.update(every_steps=50_000)
  return config
