"""Evaluating and rendering a trained model: split metrics, images on disk, and camera-path videos."""

import json
import pathlib
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from jaxnerf import console
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import ConfigError
from jaxnerf import metrics
from jaxnerf.ops import camera
from jaxnerf.ops import camera_paths
from jaxnerf.outputs import chunked
from jaxnerf.outputs import pictures
from jaxnerf.outputs import visualization
from jaxnerf import workdirs


def _ray_progress(description: str, num_rays: int):
  return console.progress(None, description, total=num_rays, unit='ray', unit_scale=True)


def render_views(steps, variables, split: SceneSplit, indices: Sequence[int], chunk_size: int,
                 description: str = 'rendering', cam_idx: Optional[int] = None) -> List[Dict[str, np.ndarray]]:
  """Renders the views `indices` of `split`: one {'rgb', 'depth', 'acc'} dict of [H, W, ...] per view. The
  progress bar counts rays: views are rendered in batches, which can take long. `cam_idx`: the training
  image whose appearance every view takes (camera.Rays.cam_idx; None: each view's own)."""
  views = (_seen_as(split.rays_of_image(i), cam_idx) for i in indices)
  with _ray_progress(description, len(indices) * split.width * split.height) as bar:
    return list(chunked.render_images(steps, variables, views, chunk_size, on_rays=bar.update))


def _seen_as(rays: camera.Rays, cam_idx: Optional[int]) -> camera.Rays:
  """rays with every cam_idx set to `cam_idx` (None: unchanged)."""
  return rays if cam_idx is None else rays._replace(cam_idx=np.full_like(rays.cam_idx, cam_idx))


def held_out_scores(steps, variables, split: SceneSplit, indices: Sequence[int], chunk_size: int,
                    scorers: Sequence[Callable], renderings) -> List[Dict[str, float]]:
  """What `scorers` (models.conditioning.held_out_scorers) add to the metrics of each view `indices` of
  `split`, given its renderings (render_views, each view as its own camera): one {name: value} per view
  (empty without scorers)."""
  if not scorers:
    return [{} for _ in indices]

  def render_view(view_variables, rays):
    return next(chunked.render_images(steps, view_variables, [rays], chunk_size))

  views = console.progress(zip(indices, renderings), 'held-out scores', total=len(indices), unit='view')
  return [{name: value for score in scorers
           for name, value in score(render_view, variables, split.rays_of_image(i), split.images[i],
                                    rendering).items()}
          for i, rendering in views]


def ground_truth(split: SceneSplit, index: int) -> Dict[str, np.ndarray]:
  """What `split` holds of view `index` to score a rendering against: 'rgb', and 'depth' and 'normals' where
  it has such maps."""
  truth = {'rgb': split.images[index]}
  if split.depths is not None:
    truth['depth'] = split.depths[index]
  if split.normals is not None:
    truth['normals'] = split.normals[index]
  return truth


def evaluate(steps, variables, split: SceneSplit, indices: Sequence[int], chunk_size: int,
             description: str = 'evaluating', lpips_nets: Sequence[str] = (), scorers: Sequence[Callable] = ()):
  """Renders views and scores them against the split's images.

  Returns:
    (per_image, renderings): per_image is a list of {'name', 'psnr', 'ssim', ...}, every metric whose ground
    truth the split holds (metrics.view_metrics), LPIPS on `lpips_nets` ('lpips_alex', ...) and the scores of
    `scorers` (held_out_scores); renderings as render_views.
  """
  renderings = render_views(steps, variables, split, indices, chunk_size, description)
  extra = held_out_scores(steps, variables, split, indices, chunk_size, scorers, renderings)
  return score_views(split, indices, renderings, lpips_nets, extra), renderings


def score_views(split: SceneSplit, indices: Sequence[int], renderings, lpips_nets: Sequence[str] = (),
                extra: Optional[Sequence[Dict[str, float]]] = None):
  """`evaluate`'s per_image of renderings (render_views) of the views `indices` of `split`, with the `extra`
  scores of each view (held_out_scores)."""
  optional = metrics.lpips_metric_names(lpips_nets)
  extra = extra or [{} for _ in indices]
  views = console.progress(zip(indices, renderings, extra), 'scoring', total=len(indices), unit='view')
  return [{'name': split.names[i] if split.names else str(i),
           **metrics.view_metrics(r, ground_truth(split, i), optional), **more} for i, r, more in views]


def mean_metrics(per_image: List[Dict[str, float]]) -> Dict[str, float]:
  """The mean of each metric over the views (NaN values, e.g. the depth error of a view of empty space, left
  out)."""
  keys = [key for key in (per_image[0] if per_image else ()) if key != 'name']
  return {key: float('nan') if all(np.isnan(m[key]) for m in per_image) else
          float(np.nanmean([m[key] for m in per_image])) for key in keys}


def visualize(rendering: Dict[str, np.ndarray], split: SceneSplit, background: float) -> Dict[str, np.ndarray]:
  """Pictures of a rendering, [H, W, 3] each: every registered picture (outputs/pictures.py) whose key it
  holds: 'rgb', 'depth', 'median_depth', 'acc', and 'normals', Ref-NeRF's 'diffuse', 'tint', ... where the
  model renders them."""
  return pictures.draw(rendering, pictures.Frame(split.near, split.far, background))


def split_summary(per_image: List[Dict], extra: Dict = None) -> Dict:
  """What metrics.json holds: `extra`, the number of images, the mean and the per-image metrics."""
  return {**(extra or {}), 'num_images': len(per_image), 'mean': mean_metrics(per_image),
          'per_image': per_image}


def write_split(out_dir, split: SceneSplit, summary: Dict, renderings, background: float):
  """Writes <name>.png and <name>_<picture>.png of every other picture of each view (`visualize`: depth,
  median_depth, acc, normals, ...), <name>_depth.npy (the expected depth, float32 [H, W]) and metrics.json
  (`summary`) to `out_dir`."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  for record, rendering in zip(summary['per_image'], renderings):
    for kind, picture in visualize(rendering, split, background).items():
      visualization.save_png(out_dir / f"{record['name']}{'' if kind == 'rgb' else '_' + kind}.png", picture)
    np.save(out_dir / f"{record['name']}_depth.npy", np.asarray(rendering['depth'], np.float32))
  workdirs.write_text_atomically(out_dir / 'metrics.json', json.dumps(summary, indent=2))


def video_frame_size(split: SceneSplit, min_size: int):
  """(width, height, intrinsics) of video frames: the split's first camera, scaled up so that the shorter
  side has at least `min_size` pixels (small training images make small videos)."""
  scale = max(1.0, min_size / min(split.width, split.height))
  return round(split.width * scale), round(split.height * scale), split.intrinsics.take(0).scaled(scale)


def camera_path(split: SceneSplit, name: str, num_frames: int):
  """(the path's name, poses [num_frames, 3, 4]) of camera path `name` (camera_paths.PATHS) over the
  split's cameras."""
  try:
    return camera_paths.path_for(name, split.camtoworlds, num_frames, split.ndc is not None, split.depth_range)
  except ValueError as e:
    raise ConfigError(f'config.eval.path / --path: {e}') from e


def render_path(steps, variables, split: SceneSplit, poses, chunk_size: int, background: float,
                min_size: int = 0, description: str = 'rendering the path', cam_idx: int = camera.ANY_CAMERA):
  """Renders a camera path: poses [num_frames, 3, 4] with the split's camera (scaled to `min_size`), bounds
  and NDC space, seen as `cam_idx` (camera.Rays.cam_idx).

  Returns:
    A list of {'rgb', 'depth'} pictures, [H, W, 3] each.
  """
  width, height, intrinsics = video_frame_size(split, min_size)
  views = (split.rays_of_view(pose, intrinsics, width, height, cam_idx) for pose in poses)
  with _ray_progress(f'{description} ({width}x{height})', len(poses) * width * height) as bar:
    renderings = chunked.render_images(steps, variables, views, chunk_size, on_rays=bar.update)
    return [visualize(rendering, split, background) for rendering in renderings]


def write_video(out_dir, name: str, frames, fps: int, formats=('gif',)) -> List[pathlib.Path]:
  """Writes <name>.<fmt> (colour) and <name>_depth.<fmt> for each format in 'gif', 'mp4'."""
  out_dir = pathlib.Path(out_dir)
  writers = {'gif': visualization.write_gif, 'mp4': visualization.write_mp4}
  paths = []
  for fmt in formats:
    for kind, suffix in (('rgb', ''), ('depth', '_depth')):
      path = out_dir / f'{name}{suffix}.{fmt}'
      writers[fmt](path, [f[kind] for f in frames], fps)
      paths.append(path)
  return paths
