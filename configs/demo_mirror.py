"""The mirror scene: where reflections dominate, for judging Ref-NeRF where it is meant to win, 2,000 steps at
128x128 on a 2-core CPU.

  python train.py --config=configs/demo_mirror.py        # proposal sampler over hash grids, NeRF's colour
  python train.py --config=configs/demo_mirror.py:ref    # the same with Ref-NeRF's appearance and losses

The scene (datasets/procedural.py, layout 'mirror') puts large mirror-like and glossy objects on a wide
pedestal: a chrome ball, a gold ring, a glossy ball, a satin box and a small matte ball, in the glossy scene's
studio (configs/demo_glossy.py). Of the val pixels, about 19% are mirror-like, 12% glossy, 22% matte and 48%
background. Every view is written with its exact normals and material regions, so `final/summary.json`
scores each region apart: `val_psnr_shiny` (glossy and mirror-like pixels), `val_psnr_mirror`,
`val_normal_mae_deg_shiny`, ... beside the whole image's `val_psnr`. Both presets use configs/demo_glossy.py's
model and run exactly `train.num_steps` steps (no time budget), so their figures compare at equal steps.
"""

from configs import demo_glossy


def get_config(preset: str = ''):
  if preset not in ('', 'ref'):
    raise ValueError(f"Unknown preset {preset!r} for configs/demo_mirror.py: use '' or 'ref' (Ref-NeRF).")
  config = demo_glossy.get_config(preset)
  config.procedural.update(layout='mirror', resolution=128)
  config.scene_box = (-1.45, -1.45, -0.6, 1.45, 1.45, 0.95)  # The pedestal and what stands on it, with a margin.
  config.train.update(num_steps=2000, max_seconds=0.0, log_every=100, checkpoint_every=500)
  config.eval.update(video_frames=0)
  return config
