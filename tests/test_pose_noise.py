"""datasets/pose_noise.py: training poses perturbed by exactly the chosen, seeded rotation and translation, the
true poses kept, held-out views untouched."""

import numpy as np

from jaxnerf import datasets
from jaxnerf.datasets import pose_noise
from jaxnerf.ops import rigid
from tests.tiny_configs import small_mlp_config


def test_perturbed_poses_have_the_chosen_errors_and_keep_the_truth(scene_cache):
  config = small_mlp_config(scene_cache)
  config.pose_noise.update(rotation_degrees=2.0, translation_fraction=0.05, seed=3)
  noisy, clean = datasets.load_split(config, 'train'), datasets.load_split(small_mlp_config(scene_cache), 'train')
  np.testing.assert_array_equal(noisy.true_camtoworlds, clean.camtoworlds)
  np.testing.assert_allclose(rigid.rotation_errors_deg(noisy.camtoworlds, clean.camtoworlds), 2.0, atol=1e-3)
  distances = np.linalg.norm(clean.camtoworlds[:, :, 3] - pose_noise.scene_centre(clean, config.scene_box), axis=-1)
  np.testing.assert_allclose(rigid.centre_errors(noisy.camtoworlds, clean.camtoworlds), 0.05 * distances, rtol=1e-4)
  again = datasets.load_split(config, 'train')
  np.testing.assert_array_equal(again.camtoworlds, noisy.camtoworlds)  # Seeded.
  val = datasets.load_split(config, 'val')
  assert val.true_camtoworlds is None
