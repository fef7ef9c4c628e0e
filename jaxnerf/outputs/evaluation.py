"""Evaluating and rendering a trained model: split metrics, images on disk, and camera-path videos."""

import json
import pathlib
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf import console
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import ConfigError
from jaxnerf import metrics
from jaxnerf.ops import camera
from jaxnerf.ops import camera_paths
from jaxnerf.outputs import chunked
from jaxnerf.outputs import pictures
from jaxnerf.outputs import visualization
from jaxnerf import perceptual
from jaxnerf import values
from jaxnerf import workdirs


def is_picture_list(names) -> bool:
  """Whether `names` is a non-empty tuple (or list) of distinct registered pictures."""
  return (isinstance(names, (tuple, list)) and len(names) > 0 and len(set(names)) == len(names)
          and all(isinstance(n, str) and n in pictures.PICTURES for n in names))


config_groups.register('eval', owner=__name__, settings=dict(
    every_steps=Setting(10_000, 'Training steps between validations (0: never; see at_train_seconds).',
                        values.NON_NEGATIVE_INT),
    at_train_seconds=Setting((), 'Also validate when the training time (as train.max_seconds counts it) passes '
                             'each of these seconds.',
                             (lambda v: all(values.is_non_negative(t) for t in v), 'a list of seconds >= 0')),
    num_images=Setting(3, 'Val images rendered at each validation: the first ones of the split.',
                       values.NON_NEGATIVE_INT),
    final_num_images=Setting(8, 'Val images evaluated when training ends (-1: all, 0: none).',
                             (lambda v: isinstance(v, int) and v >= -1, 'an integer >= -1 (-1: all)')),
    chunk_size=Setting(8192, 'Rays rendered at once, over all devices (divisible by the device count); bounds '
                       'memory at any resolution.', values.POSITIVE_INT),
    memory_budget_mb=Setting(6144.0, 'MiB one render call (and export.py --format=mesh in all) may take, per '
                             'accelerator (CPU devices: in all); a call that would exceed it renders fewer rays '
                             'than chunk_size.', values.POSITIVE),
    lpips=Setting(('alex', 'vgg'), "LPIPS networks scored in every evaluation beside PSNR and SSIM ('alex', 'vgg'; "
                  '(): none). On 2 CPU cores, per 800x800 view: AlexNet 0.45 s, VGG 6.5 s.',
                  (lambda v: isinstance(v, (tuple, list)) and len(set(v)) == len(v)
                   and all(net in perceptual.NETS for net in v),
                   f"a tuple of distinct LPIPS networks from {perceptual.NETS}, e.g. \"('alex',)\" or ()")),
    path=Setting('auto', "Camera path of the video written when training ends: 'orbit', 'spiral', 'ellipse', "
                 "'interpolate' or 'auto' (spiral: forward-facing captures, ellipse: other captures, orbit: "
                 'synthetic scenes).', (lambda v: v in camera_paths.PATHS, f'one of {camera_paths.PATHS}')),
    video_frames=Setting(60, 'Frames of that video (0: none).', values.NON_NEGATIVE_INT),
    pose_fit_steps=Setting(100, "Where a run refined its training cameras: Adam steps fitting each held-out "
                           "view's pose, the model held fixed, before a second score of the final evaluation "
                           "(BARF's protocol: 'val_registered_psnr', ..., beside the views placed by the "
                           'similarity alone; 0: no such score).', values.NON_NEGATIVE_INT),
    pose_fit_rays=Setting(64, 'Pixels of each held-out view per step of that fit.', values.POSITIVE_INT),
    pose_fit_learning_rate=Setting(2e-3, "That fit's learning rate at its start, decaying to a twentieth of it "
                                   '(log-linear).', values.POSITIVE),
    video_every=Setting(0, 'Also write that video every this many training steps (0: never), to '
                        'workdir/videos/<path>_<step>.gif and TensorBoard/W&B; costs video_frames renders each time.',
                        values.NON_NEGATIVE_INT),
    video_fps=Setting(20, 'Frames per second of the videos.', values.POSITIVE_INT),
    video_min_size=Setting(160, 'Video frames have at least this many pixels on their shorter side.',
                           values.NON_NEGATIVE_INT),
    video_pictures=Setting(('rgb', 'depth', 'normals', 'normals_pred', 'diffuse', 'tint', 'specular', 'roughness'),
                           'Pictures (outputs/pictures.py) written as camera-path videos where the model renders '
                           "them: <path>.gif is the colour (always written), <path>_<picture>.gif each other one.",
                           (is_picture_list, 'a tuple of distinct picture names from '
                            f"{sorted(pictures.PICTURES)}, e.g. \"('rgb', 'depth')\"")),
), small=dict(every_steps=0, num_images=1, final_num_images=1, video_frames=0, chunk_size=256, video_min_size=32,
              lpips=(), pose_fit_steps=5, pose_fit_rays=32))


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
  """What `split` holds of view `index` to score a rendering against: 'rgb', and 'depth', 'normals' and
  'regions' where it has such maps."""
  maps = {'depth': split.depths, 'normals': split.normals, 'regions': split.regions}
  return {'rgb': split.images[index], **{key: value[index] for key, value in maps.items() if value is not None}}


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
  """The mean of each metric over the views, NaN values left out (the depth error of a view of empty space, a
  region the view does not show); a metric that no view could score (NaN in every one: the mirror region of a
  scene without mirrors) is left out of the means altogether."""
  keys = [key for key in (per_image[0] if per_image else ()) if key != 'name']
  return {key: float(np.nanmean([m[key] for m in per_image])) for key in keys
          if not all(np.isnan(m[key]) for m in per_image)}


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


def write_video(out_dir, name: str, frames, fps: int, formats=('gif',),
                pictures_wanted: Sequence[str] = ('rgb', 'depth')) -> List[pathlib.Path]:
  """Writes, for each format in 'gif', 'mp4', <name>.<fmt> (the colour) and <name>_<picture>.<fmt> of every
  other picture of `pictures_wanted` that the frames hold (config.eval.video_pictures); returns their paths,
  each format's colour video first."""
  out_dir = pathlib.Path(out_dir)
  writers = {'gif': visualization.write_gif, 'mp4': visualization.write_mp4}
  kinds = ['rgb'] + [kind for kind in pictures_wanted if kind != 'rgb' and kind in frames[0]]
  paths = []
  for fmt in formats:
    for kind in kinds:
      path = out_dir / f"{name}{'' if kind == 'rgb' else '_' + kind}.{fmt}"
      writers[fmt](path, [f[kind] for f in frames], fps)
      paths.append(path)
  return paths
