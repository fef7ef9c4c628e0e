"""Small scenes on disk for tests: hand-made Blender layouts and the tiny procedural scene."""

import json
import pathlib

import numpy as np
from PIL import Image

from jaxnerf.ops import camera
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


def write_llff_scene(directory, num_images=9, resolution=24, seed=0, arc_deg=0.0):
  """A forward-facing LLFF capture of the procedural 'unbounded' scene (opaque everywhere): cameras on a small
  patch looking at the still life (or, with `arc_deg`, spread over an arc of that many degrees around it, an
  inward-facing capture), poses_bounds.npy with the depth range of each view, images/ PNGs.

  Returns:
    (directory, camtoworlds [N, 3, 4] in the procedural scene's world).
  """
  from jaxnerf.datasets import procedural  # The ray tracer only where a test needs it.
  directory = pathlib.Path(directory)
  (directory / 'images').mkdir(parents=True, exist_ok=True)
  spec = procedural.ProceduralSceneSpec(resolution=resolution, supersampling=1, layout='unbounded')
  rng = np.random.default_rng(seed)
  focal = procedural.focal_length(spec)
  poses, rows = [], []
  for i in range(num_images):
    azimuth = np.radians(arc_deg * (i / max(num_images - 1, 1) - 0.5))
    eye = np.array([4.0 * np.cos(azimuth), 4.0 * np.sin(azimuth) + rng.uniform(-0.5, 0.5),
                    1.0 + rng.uniform(-0.3, 0.3)])
    pose = camera.look_at(eye, [0.0, rng.uniform(-0.2, 0.2), 0.3])
    rgba, depth, _, _ = procedural.render_view(spec, pose)
    Image.fromarray(np.uint8(np.round(rgba[..., :3] * 255))).save(directory / 'images' / f'view{i:02d}.png')
    llff_matrix = np.stack([-pose[:, 1], pose[:, 0], pose[:, 2], pose[:, 3],
                            [resolution, resolution, focal]], axis=1)
    rows.append(np.concatenate([llff_matrix.reshape(-1), [depth.min(), depth[np.isfinite(depth)].max()]]))
    poses.append(pose)
  np.save(directory / 'poses_bounds.npy', np.stack(rows))
  return directory, np.stack(poses)
