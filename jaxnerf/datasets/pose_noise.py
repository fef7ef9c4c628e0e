"""Training poses perturbed by a chosen, seeded noise, the true ones kept: scenes on which refining the
cameras while training (a parameter group that corrects them) is measured exactly.

Every training camera is turned by exactly `rotation_degrees` about a uniformly random axis through its
centre, and its centre moved by exactly `translation_fraction` of its distance to the scene's centre, in a
uniformly random direction (config.pose_noise). The scene's centre is the point nearest to the cameras'
optical axes (camera.focus_point); for forward-facing cameras, whose axes nearly agree, the point at the
middle of the content's depth range along their mean axis (or, with no depth range, the scene box's centre, or
the origin).
Held-out views are not perturbed: they are scored with the cameras as given.
"""

import dataclasses

import numpy as np

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.ops import camera
from jaxnerf.ops import rigid
from jaxnerf import values

config_groups.register('pose_noise', owner=__name__, settings=dict(
    rotation_degrees=Setting(0.0, 'Turn every training camera by this angle (degrees) about a random axis '
                             'through its centre (0: its pose as given). The true poses are kept for scoring.',
                             values.NON_NEGATIVE),
    translation_fraction=Setting(0.0, "Move every training camera's centre by this fraction of its distance to "
                                 'the scene centre, in a random direction (0: as given).', values.NON_NEGATIVE),
    seed=Setting(0, 'Seed of the random axes and directions of pose_noise.', values.NON_NEGATIVE_INT),
))


def is_on(noise_config) -> bool:
  return noise_config.rotation_degrees > 0 or noise_config.translation_fraction > 0


def scene_centre(split: SceneSplit, scene_box=None) -> np.ndarray:
  """[3] the point the distances of `translation_fraction` are measured to (see the module's docstring; the
  origin where neither the cameras nor a depth range nor `scene_box` tell)."""
  focus = camera.focus_point(split.camtoworlds)
  if focus is not None:
    return focus
  if split.depth_range is not None:
    mean_pose = camera.average_pose(split.camtoworlds)
    return mean_pose[:, 3] - 0.5 * sum(split.depth_range) * mean_pose[:, 2]
  if not scene_box:
    return np.zeros(3)
  box = np.asarray(scene_box, np.float64)
  return 0.5 * (box[:3] + box[3:])


def _random_unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
  vectors = rng.normal(size=(count, 3))
  return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def perturbed(split: SceneSplit, noise_config, scene_box) -> SceneSplit:
  """`split` with its cameras perturbed by `noise_config` (config.pose_noise) and the given ones kept as its
  true_camtoworlds; `split` itself where the noise is off."""
  if not is_on(noise_config):
    return split
  rng = np.random.default_rng(noise_config.seed)
  given = np.asarray(split.camtoworlds, np.float64)
  count = len(given)
  angles = np.radians(noise_config.rotation_degrees)
  turn = rigid.exp_so3(angles * _random_unit_vectors(rng, count))
  distances = np.linalg.norm(given[:, :3, 3] - scene_centre(split, scene_box), axis=-1)
  shift = noise_config.translation_fraction * distances[:, None] * _random_unit_vectors(rng, count)
  noisy = np.concatenate([given[:, :3, :3] @ turn, (given[:, :3, 3] + shift)[..., None]], axis=-1)
  return dataclasses.replace(split, camtoworlds=noisy.astype(np.float32), true_camtoworlds=split.camtoworlds)
