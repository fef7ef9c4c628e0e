"""Small scenes on disk for tests: hand-made Blender layouts and the tiny procedural scene."""

import json
import pathlib

import numpy as np
from PIL import Image

from jaxnerf import camera


def write_blender_scene(directory, num_images=3, size=(8, 6), splits=('train', 'val'), seed=0):
  """A Blender-layout scene of random RGBA images with look-at poses; returns (directory, images)."""
  directory = pathlib.Path(directory)
  rng = np.random.default_rng(seed)
  images = {}
  for split in splits:
    (directory / split).mkdir(parents=True, exist_ok=True)
    frames, images[split] = [], []
    for i in range(num_images):
      rgba = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
      Image.fromarray(rgba, 'RGBA').save(directory / split / f'r_{i}.png')
      pose = np.concatenate([camera.spherical_pose(40.0 * i, 30.0, 4.0), [[0, 0, 0, 1]]])
      frames.append({'file_path': f'./{split}/r_{i}', 'transform_matrix': pose.tolist()})
      images[split].append(rgba)
    (directory / f'transforms_{split}.json').write_text(
        json.dumps({'camera_angle_x': 0.6911, 'frames': frames}))
  return directory, images
