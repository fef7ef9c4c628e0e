"""Ref-NeRF (Verbin et al. 2022) on the Blender scenes, with the paper's settings; `:cpu`, its appearance over
the fast proposal + hash-grid model.

  python train.py --config=configs/refnerf.py --config.data_dir=/path/to/nerf_synthetic/chair       # GPU
  python train.py --config=configs/refnerf.py:cpu --config.data_dir=/path/to/nerf_synthetic/lego

mip-NeRF's renderer and 8x256 field (configs/mipnerf.py: one MLP for 2 levels of 128 intervals, IPE of 16
octaves) with Ref-NeRF's appearance (models/appearance.py): diffuse colour plus specular tint times a
specular colour of the view direction reflected about predicted normals, encoded by the integrated
directional encoding of a predicted roughness (degrees 1 to 16), read by an 8x256 directional MLP through a
128-wide bottleneck; linear colour through the sRGB curve. The density's normals (its gradient) are tied to
the predicted ones (weight 3e-4), and predicted normals facing away from the camera are penalised (0.1),
each a tenth as much on the coarse level; softplus density with a bias of +0.5 (density_bias 1.5 over our
softplus(x - 1)); Adam epsilon 1e-8; one image per batch. multinerf's IPE uses an octahedron's directions
where ours uses the axes.
"""

from configs import lego_proposal
from configs import mipnerf


def get_config(preset: str = ''):
  if preset not in ('', 'cpu'):
    raise ValueError(f"Unknown preset {preset!r} for configs/refnerf.py: use '' (the paper's) or 'cpu'.")
  if preset == 'cpu':
    return _fast_config()
  config = mipnerf.get_config()
  config.model.update(normals='density', appearance='refnerf', tone_mapping='srgb', density_bias=1.5)
  config.model.refnerf.update(bottleneck_width=128, depth=8, width=256, skip_every=4, ide_levels=5)
  config.loss.update(orientation_weight=0.1, predicted_normals_weight=3e-4)
  config.optim.adam_eps = 1e-8
  config.batching.mode = 'single_image'
  return config


def _fast_config():
  """configs/lego_proposal.py:cpu with Ref-NeRF's appearance (a 2x64 directional MLP, degrees 1 to 8) over
  its hash grid, and Ref-NeRF's normal losses."""
  config = lego_proposal.get_config('cpu')
  config.model.update(normals='density', appearance='refnerf', tone_mapping='srgb')
  config.model.refnerf.update(bottleneck_width=32, depth=2, width=64, skip_every=4, ide_levels=4)
  config.loss.update(orientation_weight=0.1, predicted_normals_weight=3e-4)
  return config
