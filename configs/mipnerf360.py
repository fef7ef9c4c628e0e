"""mip-NeRF 360 (Barron et al. 2022) with the paper's settings, on the embedded unbounded scene.

  python train.py --config=configs/mipnerf360.py
  python train.py --config=configs/mipnerf360.py --config.dataset=blender --config.data_dir=/path/to/scene

Space beyond `contract_radius` (5 here: the embedded scene's cameras and objects lie inside it) is contracted into a ball of twice that radius (Eq. 10; Gaussians through its
linearisation, Eq. 9) and rays are sampled evenly in disparity, so that the distant background gets samples
as well as the centre. Two proposal levels of 64 intervals, each a density-only 4x256 MLP, place the 32
intervals of the 8x1024 NeRF MLP (integrated encoding of the contracted Gaussians, 12 octaves). The proposals
learn from the interlevel loss alone (weight 1); the distortion loss (0.01) removes floaters; the data term is
Charbonnier. Adam (eps 1e-6) at 2e-3 decaying to 2e-5 over 250k steps of 16384 rays, after a 512-step
warm-up, gradients clipped to norm 1e-3.

This is the paper's model at full size, meant for a GPU: configs/demo360.py trains the fast variant (hash-grid
fields under the same proposal sampler) on a CPU in minutes.
"""

from configs import demo360


def get_config():
  config = demo360.get_config()
  config.model.update(name='proposal', field='mlp', density_activation='softplus', density_bias=0.0,
                      rgb_padding=0.001, warp='contract')
  config.model.mlp.update(point_min_deg=0, point_max_deg=12, view_max_deg=4, depth=8, width=1024,
                          skip_every=4, width_view=128, encoding='integrated')
  config.model.proposal.update(field='mlp', num_proposal_samples=(64, 64), num_nerf_samples=32,
                               spacing='disparity', gradient_scaling_distance=0.0, opaque_background=True,
                               anneal_slope=10.0,
                               resample_padding=0.0, single_jitter=True)
  config.model.proposal.mlp.update(depth=4, width=256)
  config.loss.update(data='charbonnier', charbonnier_eps=1e-3, coarse_weight=0.0, interlevel_weight=1.0,
                     distortion_weight=0.01)
  config.optim.update(lr_init=2e-3, lr_final=2e-5, lr_delay_steps=512, lr_delay_mult=1e-8,
                      adam_b1=0.9, adam_b2=0.999, adam_eps=1e-6, grad_clip_norm=1e-3, lr_decay_start=0.0)
  config.train.update(batch_size=16384, num_steps=250_000, max_seconds=0.0, checkpoint_every=10_000,
                      random_background=False)
  config.eval.update(every_steps=50_000)
  return config
