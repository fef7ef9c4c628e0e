"""Learned cameras on the Blender 'lego' scene: instant-ngp (configs/lego_ngp.py) trained from training poses
perturbed by 3 degrees of rotation and 3% of the camera distance in translation (config.pose_noise; the true
poses are kept, and the final summary reports the cameras' errors against them), refining every training
camera in SE(3) while the scene trains (config.camera_optimizer; docs/methods/learned-cameras.md).

  python train.py --config=configs/lego_ngp_cameras.py:cpu --config.data_dir=/path/to/nerf_synthetic/lego
  # The same noisy poses, not refined (the baseline):
  python train.py --config=configs/lego_ngp_cameras.py:cpu --config.data_dir=/path/to/nerf_synthetic/lego \\
      --config.camera_optimizer.mode=off
  python export.py --workdir=DIR --format=cameras   # The refined cameras, as a transforms.json.

For a capture whose poses are merely imprecise, turn the optimiser on in its own config instead:
--config.camera_optimizer.mode=SE3.
"""

from configs import lego_ngp


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):  # Checked here, so that the message names this file.
    raise ValueError(f"Unknown preset {preset!r} for configs/lego_ngp_cameras.py: use '' (full resolution) or "
                     "'cpu'.")
  config = lego_ngp.get_config(preset)
  config.pose_noise.update(rotation_degrees=3.0, translation_fraction=0.03, seed=0)
  config.camera_optimizer.mode = 'SE3'
  return config
