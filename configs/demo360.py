"""The unbounded embedded scene, trained by the fast 360 model in under 5 minutes on a 2-core CPU.

  python train.py --config=configs/demo360.py

needs no download: the scene (datasets/procedural.py, layout 'unbounded') is the demo's still life on a
checkered ground reaching 25 units out, under a sky dome of radius 30 with hills on its horizon, seen by
cameras standing low around the objects at radius 4; it is ray traced into the cache on first use. The model
is nerfstudio's nerfacto recipe on mip-NeRF 360's method: space beyond radius 5 (the cameras and the objects
inside it) is contracted (mip-NeRF 360, Eq. 10), rays are sampled linearly to 6 units and in disparity from
there to 40, two small density-only hash grids (proposals) place the samples of the hash-grid field that
renders colour and learn from the interlevel loss, and the distortion loss keeps the weights compact.
Outputs land in runs/demo360, with final/orbit.gif and its depth (orbit_depth.gif).

Two settings keep the sky where it is (without them the sky was painted on fog 1-2.5 units before the cameras,
15-18 dB on its pixels): the density starts low (density_bias -3: an untrained hash grid has density ~1 per
unit, which makes every 40-unit ray opaque within its first units), and gradients within 2 units of a camera
are scaled down (gradient_scaling_distance). mip-NeRF 360's opaque background (proposal.opaque_background)
is left off: in this budget the last interval became a sink for the ground's colours (19.0 dB); without it
the pale sky is partly learnt as the white background showing through (its depth picture is pale there).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'procedural'
  config.procedural.update(layout='unbounded', camera_radius=4.0)
  config.near, config.far = 1.0, 40.0  # Nothing lies within 1.7 units of a camera; the dome is at most 34 away.
  config.scene_box = ()
  config.model.update(name='proposal', field='hash_grid', density_activation='trunc_exp', density_bias=-3.0,
                      warp='contract', contract_radius=5.0)
  # The demo's field (8 levels of 4 features; see demo.py), over the contracted space [-10, 10]^3.
  config.model.hash_grid.update(num_levels=8, features_per_level=4, log2_table_size=16, max_resolution=1024,
                                view_encoding='sh')
  # 48 then 24 proposal intervals and 16 for the field: 494 steps in the budget, 26.3 dB; 64, 32 and 24 gave
  # 374 steps and 25.4 dB.
  config.model.proposal.update(field='hash_grid', num_proposal_samples=(48, 24), num_nerf_samples=16,
                               spacing='linear_disparity', spacing_pivot=6.0, gradient_scaling_distance=2.0,
                               anneal_slope=10.0, resample_padding=0.01)
  config.model.proposal.hash_grid.update(num_levels=5, features_per_level=2, log2_table_size=15,
                                         min_resolution=16, max_resolution=256, density_width=16)
  config.loss.update(data='mse', interlevel_weight=1.0, distortion_weight=0.01)
  config.optim.update(lr_init=1e-2, lr_final=1e-3, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-15)
  config.train.update(batch_size=2048, num_steps=2000, max_seconds=170, log_every=25, checkpoint_every=250,
                      random_background=False)
  config.eval.update(every_steps=0, final_num_images=-1, video_frames=30, video_fps=10, video_min_size=160,
                     chunk_size=4096)
  return config
