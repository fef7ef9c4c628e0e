"""Your own capture: a COLMAP model, a transforms.json or an LLFF poses_bounds.npy, told apart by the files.

  python process_photos.py --photos=/path/to/photos --out=/path/to/scene   # COLMAP, if you have only photos.
  python train.py --config=configs/capture.py --config.data_dir=/path/to/scene
  python train.py --config=configs/capture.py:cpu --config.data_dir=/path/to/scene
  python render.py --workdir=runs/capture --path=ellipse

The reader is chosen by what data_dir holds (transforms.json, then sparse/0/, then poses_bounds.npy; see
datasets.capture_format). The world is normalised: centred on the point the cameras look at (for
forward-facing captures, the sparse points' median or the cameras' mean), z along their mean up vector, and
scaled so that the cameras lie within the unit sphere (config.capture.normalize='cameras'); LLFF scenes get
no NDC here, the contraction covers what lies beyond. Every 8th image is held out for testing.

The model is mip-NeRF 360's method over hash grids (configs/demo360.py's, scaled to this unit world): space
beyond radius 1 is contracted, so the background reaches any distance; intervals run linearly to 1.5 units
and in disparity beyond; two density-only hash-grid proposals place the field's samples. The first command
is for a GPU with images downsampled 4 times (--config.factor); the `:cpu` preset trains 5 minutes on 2 CPU
cores at the same size (200x150 for an 800x600 capture), with the demo's smaller grid.
"""

from configs import default


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/capture.py: use '' (GPU) or 'cpu'.")
  config = default.get_config()
  config.dataset = 'capture'
  config.data_dir = ''  # Required: the scene directory.
  config.factor = 4
  config.white_background = False
  # Ray bounds in the unit world: near from the sparse points (or LLFF bounds), far 20 camera radii (the
  # contraction makes far cheap; disparity spacing puts few samples there).
  config.capture.update(forward_facing=False, normalize='cameras', test_every=8, near=0.0, far=20.0)
  config.scene_box = ()
  config.model.update(name='proposal', field='hash_grid', density_activation='trunc_exp', density_bias=-3.0,
                      warp='contract', contract_radius=1.0)
  config.model.hash_grid.update(num_levels=16, features_per_level=2, log2_table_size=19, min_resolution=16,
                                max_resolution=4096, view_encoding='sh')
  config.model.proposal.update(field='hash_grid', num_proposal_samples=(256, 96), num_nerf_samples=48,
                               spacing='linear_disparity', spacing_pivot=1.5, gradient_scaling_distance=0.5,
                               anneal_slope=10.0, resample_padding=0.01)
  config.model.proposal.hash_grid.update(num_levels=5, features_per_level=2, log2_table_size=17,
                                         min_resolution=16, max_resolution=256, density_width=16)
  config.loss.update(data='mse', interlevel_weight=1.0, distortion_weight=0.002)
  config.optim.update(lr_init=1e-2, lr_final=1e-3, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-15)
  config.train.update(batch_size=4096, num_steps=30_000, log_every=100, checkpoint_every=2000)
  # Learned cameras stay off (--config.camera_optimizer.mode=SE3 turns them on). COLMAP's poses are close
  # already: a tenth of BARF's rate (which lego_ngp_cameras.py needs for 3-degree errors) leaves them close.
  # The cup at 1500 steps: 26.95 dB refined at 1e-4 against 27.54 unrefined (22.33 at 1e-3, measured before
  # the proposal levels stopped passing gradients to the rays).
  config.camera_optimizer.update(lr_init=1e-4, lr_final=1e-6)
  config.eval.update(every_steps=0, final_num_images=-1, path='auto', video_frames=60, chunk_size=16384)
  if preset == 'cpu':
    # configs/demo360.py's budget: the demo's grid, 48 + 24 proposal intervals and 16 for the field.
    config.model.hash_grid.update(num_levels=8, features_per_level=4, log2_table_size=17, max_resolution=1024)
    config.model.proposal.update(num_proposal_samples=(48, 24), num_nerf_samples=16)
    config.model.proposal.hash_grid.update(log2_table_size=15, max_resolution=128)
    config.loss.distortion_weight = 0.01
    config.optim.update(lr_decay_start=0.5)
    config.train.update(batch_size=2048, num_steps=20_000, max_seconds=300.0, log_every=50)
    config.eval.update(chunk_size=8192, video_frames=30, video_fps=10, video_min_size=160)
  return config
