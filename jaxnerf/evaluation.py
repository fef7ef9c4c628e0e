"""Evaluating and rendering a trained model: split metrics, images on disk, and orbit videos."""

import json
import pathlib
from typing import Dict, List, Sequence

import numpy as np

from jaxnerf import camera
from jaxnerf import image_rendering
from jaxnerf import metrics
from jaxnerf import visualization
from jaxnerf.datasets.scene import SceneSplit


def render_views(steps, variables, split: SceneSplit, indices: Sequence[int],
                 chunk_size: int) -> List[Dict[str, np.ndarray]]:
  """Renders the views `indices` of `split`: one {'rgb', 'depth', 'acc'} dict of [H, W, ...] per view."""
  return [image_rendering.render_image(steps.render_rays, variables, split.rays_of_image(i), chunk_size,
                                       steps.batch_sharding) for i in indices]


def image_metrics(rendering: Dict[str, np.ndarray], target: np.ndarray) -> Dict[str, float]:
  return {'psnr': float(metrics.psnr(rendering['rgb'], target)),
          'ssim': float(metrics.ssim(rendering['rgb'], target))}


def evaluate(steps, variables, split: SceneSplit, indices: Sequence[int], chunk_size: int):
  """Renders views and scores them against the split's images.

  Returns:
    (per_image, renderings): per_image is a list of {'name', 'psnr', 'ssim'}; renderings as render_views.
  """
  renderings = render_views(steps, variables, split, indices, chunk_size)
  per_image = [{'name': split.names[i] if split.names else str(i), **image_metrics(r, split.images[i])}
               for i, r in zip(indices, renderings)]
  return per_image, renderings


def mean_metrics(per_image: List[Dict[str, float]]) -> Dict[str, float]:
  return {key: float(np.mean([m[key] for m in per_image])) for key in ('psnr', 'ssim')}


def visualize(rendering: Dict[str, np.ndarray], split: SceneSplit, background: float) -> Dict[str, np.ndarray]:
  """Pictures of a rendering: {'rgb', 'depth'} images [H, W, 3]."""
  return {'rgb': rendering['rgb'],
          'depth': visualization.colorize_depth(rendering['depth'], rendering['acc'], split.near, split.far,
                                                background)}


def write_split(out_dir, split: SceneSplit, per_image, renderings, background: float,
                extra: Dict = None) -> Dict:
  """Writes <name>.png and <name>_depth.png per view and metrics.json (per image and mean) to `out_dir`."""
  out_dir = pathlib.Path(out_dir)
  for record, rendering in zip(per_image, renderings):
    pictures = visualize(rendering, split, background)
    visualization.save_png(out_dir / f"{record['name']}.png", pictures['rgb'])
    visualization.save_png(out_dir / f"{record['name']}_depth.png", pictures['depth'])
  summary = {**(extra or {}), 'num_images': len(per_image), 'mean': mean_metrics(per_image),
             'per_image': per_image}
  (out_dir / 'metrics.json').write_text(json.dumps(summary, indent=2))
  return summary


def render_orbit(steps, variables, split: SceneSplit, num_frames: int, chunk_size: int, background: float):
  """Renders a 360-degree orbit around the origin at the cameras' median distance and elevation.

  Returns:
    A list of {'rgb', 'depth'} pictures, [H, W, 3] each, at the split's resolution and focal length.
  """
  poses = camera.orbit_like(split.camtoworlds, num_frames)
  frames = []
  for pose in poses:
    rays = camera.image_rays(pose, split.width, split.height, split.focal, split.near, split.far)
    rendering = image_rendering.render_image(steps.render_rays, variables, rays, chunk_size,
                                             steps.batch_sharding)
    frames.append(visualize(rendering, split, background))
  return frames


def write_orbit(out_dir, frames, fps: int, formats=('gif',)) -> List[pathlib.Path]:
  """Writes orbit.<fmt> (colour) and orbit_depth.<fmt> for each format in 'gif', 'mp4'."""
  out_dir = pathlib.Path(out_dir)
  writers = {'gif': visualization.write_gif, 'mp4': visualization.write_mp4}
  paths = []
  for fmt in formats:
    for kind, suffix in (('rgb', ''), ('depth', '_depth')):
      path = out_dir / f'orbit{suffix}.{fmt}'
      writers[fmt](path, [f[kind] for f in frames], fps)
      paths.append(path)
  return paths
