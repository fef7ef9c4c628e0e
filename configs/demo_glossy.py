"""The glossy embedded scene: materials from matte to mirror-like reflecting a studio, with exact normals, for
measuring view-dependent appearance and geometry (Ref-NeRF's case), in under 5 minutes on a 2-core CPU.

  python train.py --config=configs/demo_glossy.py        # proposal sampler over hash grids, NeRF's colour
  python train.py --config=configs/demo_glossy.py:ref    # the same with Ref-NeRF's appearance and losses

The scene (datasets/procedural.py, layout 'glossy') is the still life's pedestal and cameras with four balls
(mirror 0, 0.35, 0.65, 0.9), a half-mirror box and a glossy ring, reflecting a sky, a sun, a ring of coloured
panels and a checkered floor that are seen only in reflections. The model is configs/lego_proposal.py:cpu's
(two density-only hash grids place the samples of a hash-grid field) on 80x80 images, with the fields'
density normals on in both, so that `final/summary.json` reports `val_normal_mae_deg` (and `val_depth_mae`)
beside `val_psnr`, and renders hold normal maps. `:ref` replaces the field's colour network with Ref-NeRF's
appearance (models/appearance.py: diffuse + tint x specular of the view direction reflected about the
density's normals, sRGB tone mapping) and adds its orientation loss on those normals (at a tenth of the
paper's weight).
"""

from configs import lego_proposal


def get_config(preset: str = ''):
  if preset not in ('', 'ref'):
    raise ValueError(f"Unknown preset {preset!r} for configs/demo_glossy.py: use '' or 'ref' (Ref-NeRF).")
  config = lego_proposal.get_config('cpu')
  config.dataset = 'procedural'
  config.data_dir = ''
  config.factor = 1
  config.procedural.update(layout='glossy')
  config.scene_box = (-1.3, -1.3, -0.7, 1.3, 1.3, 1.0)  # The pedestal and what stands on it, with a margin.
  config.model.normals = 'density'
  config.train.update(max_seconds=150.0, log_every=25, checkpoint_every=250)
  # A 3-second orbit at 128x128 to look at the highlights (30 frames at 160x160 took 78 s of the 5 minutes).
  config.eval.update(final_num_images=-1, video_frames=24, video_fps=8, video_min_size=128, chunk_size=4096)
  if preset == 'ref':
    config.model.update(appearance='refnerf', tone_mapping='srgb')
    # The view direction reflected about the density's normals (multinerf's enable_pred_normals=False), which
    # the colour and the orientation loss then shape; with the paper's predicted normals and their tie, one
    # run each: 28.6 dB, density normals 36.7 degrees, predicted ones 36.2 (27.9 dB, 34.5 degrees with the
    # tie shaping the density too); this way 29.9 dB, 22.6 degrees (3 runs, medians; the twin 31.7 dB, 32.2).
    config.model.refnerf.update(bottleneck_width=32, depth=2, width=64, skip_every=4, ide_levels=4,
                                reflect_about='density')
    # A tenth of the paper's orientation weight (one run each: 28.1 dB, 23.2 degrees at 0.1; 30.7 dB, 29.7
    # degrees without it).
    config.loss.update(orientation_weight=0.01, orientation_target='normals')
  return config
