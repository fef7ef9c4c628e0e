"""The NeRF paper's LLFF setting (forward-facing real scenes, NDC rays) on 'fern'.

  python train.py --config=configs/fern.py --config.data_dir=/path/to/nerf_llff_data/fern --workdir=runs/fern
  python render.py --workdir=runs/fern --split=test
  python render.py --workdir=runs/fern --path=spiral

The paper's settings for these scenes: images downsampled 8 times (504x378 for fern), every 8th image held out
for testing, rays in the normalised device coordinates of the mean view (appendix C: t from the near plane to
infinity, linearly in disparity), 64 coarse and 128 fine samples, noise of std 1 added to the raw density while
training, a black background, 4096-ray batches, Adam at 5e-4 decaying to 5e-6 over 200k steps; the default
8x256 MLP.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset = 'llff'
  config.data_dir = 'data/nerf_llff_data/fern'
  config.factor = 8
  config.white_background = False
  config.capture.update(forward_facing=True, test_every=8)
  config.model.update(name='nerf', field='mlp', num_coarse_samples=64, num_fine_samples=128,
                      density_noise_std=1.0)
  config.train.update(batch_size=4096, num_steps=200_000)
  config.eval.update(every_steps=25_000, final_num_images=-1, path='spiral', video_frames=120)
  return config
