"""Rendering from a training workdir (what render.py runs): restore, render, write files and metrics.

Outputs go to <workdir>/render/<scene>/<split>_<step>/ or .../<path>_<step>/ (camera-path videos), where
<scene> names the scene directory rendered, so renders of other scenes (--data_dir) never overwrite those
of the training scene. The folder's name also carries the exported model's file name (--packed, rendered into
render/ beside the file) and --limit's image count where they apply. An earlier render's folder is never
written into: a render whose folder is taken writes to <folder>-2 (-3, ...) and says so
(workdirs.claim_new_folder).
"""

import hashlib
import pathlib
import time
from typing import Dict, NamedTuple, Optional, Sequence, Union

import jax
import ml_collections
import numpy as np

from jaxnerf.commands import export
from jaxnerf import console
from jaxnerf import datasets
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf import models
from jaxnerf.ops import camera
from jaxnerf.outputs import evaluation
from jaxnerf.outputs import pictures as pictures_lib
from jaxnerf import perceptual
from jaxnerf.training import camera_alignment
from jaxnerf.training import checkpoints
from jaxnerf.training import config_checks
from jaxnerf.training import experiment as experiment_lib
from jaxnerf import workdirs

# render.py --appearance: what per-image components (models/conditioning.py) take for every rendered view.
MEAN_APPEARANCE, ZERO_APPEARANCE = 'mean', 'zero'


def newest_workdir(root='runs') -> pathlib.Path:
  """The workdir under `root` whose newest checkpoint is the most recent."""
  candidates = {}
  for config_file in pathlib.Path(root).glob(f'*/{checkpoints.CONFIG_FILE}'):
    steps = [p for p in (config_file.parent / checkpoints.CHECKPOINTS_DIR).glob('*') if p.name.isdigit()]
    if steps:
      candidates[config_file.parent] = max(p.stat().st_mtime for p in steps)
  if not candidates:
    raise CheckpointError(f'No trained workdir under {root}/ (none holds a checkpoint): train first '
                          '(python train.py) or pass --workdir.')
  return max(candidates, key=candidates.get)


class _Model(NamedTuple):
  config: ml_collections.ConfigDict
  experiment: experiment_lib.Experiment
  variables: Dict  # Placed on the devices as the compiled steps expect.
  step: int
  chunk_size: int
  # TrainState.group_params of the checkpoint (an exported model keeps none): refined training cameras.
  group_params: Optional[Dict] = None


def _restore(workdir, chunk_size: Optional[int], packed: Optional[str] = None,
             step: Union[int, str, None] = None) -> _Model:
  """The newest intact checkpoint of `workdir` (or that of `step`: experiment.restore_model), or the model
  exported to the file `packed`."""
  if packed:
    exported = export.read(packed)
    config = exported.config
    experiment = experiment_lib.build_experiment(config)
    variables, step = jax.device_put(exported.variables, experiment.steps.replicated), exported.step
    group_params = None
  else:
    config, experiment, state = experiment_lib.restore_model(workdir, step=step)
    variables, step, group_params = state.variables, int(jax.device_get(state.step)), state.group_params
  chunk_size = config.eval.chunk_size if chunk_size is None else chunk_size
  if chunk_size <= 0:
    raise ConfigError(f'--chunk_size={chunk_size}: expected a positive number of rays.')
  config_checks.check_divisible(chunk_size, '--chunk_size')
  return _Model(config, experiment, variables, step, chunk_size, group_params)


def _check_finite(renderings, model: _Model, workdir, packed: Optional[str]):
  """Raises a CheckpointError, before anything is written, if a view's colours are not all finite: a model
  that renders NaN gives no images and no metrics that could pass for results."""
  for index, rendering in enumerate(renderings):
    bad = int(np.count_nonzero(~np.all(np.isfinite(rendering['rgb']), axis=-1)))
    if bad:
      source = packed or f'the checkpoint of step {model.step} in {workdir}'
      raise CheckpointError(f'{source} renders non-finite colours (NaN or inf) in {bad} pixels of view {index}: '
                            'it is not a usable model, and nothing was written.')


def _scene_label(config, data_dir: Optional[str]) -> str:
  """The scene directory's name; with the training scene's name but another directory, a hash of its path
  is added, so that the two never share an output folder."""
  training_dir = datasets.scene_directory(config, generate=False).resolve()
  scene_dir = pathlib.Path(data_dir).resolve() if data_dir else training_dir
  if scene_dir != training_dir and scene_dir.name == training_dir.name:
    return f'{scene_dir.name}-{hashlib.sha256(str(scene_dir).encode()).hexdigest()[:6]}'
  return scene_dir.name


def _split_to_render(config, split_name: Optional[str], data_dir: Optional[str]) -> str:
  """`split_name`, or by default 'test' where the scene has a test split and 'val' where it has not."""
  if split_name:
    return split_name
  if datasets.has_split(config, 'test', data_dir):
    return 'test'
  console.message('The scene has no test split: rendering the val split.')
  return 'val'


def _out_root(workdir, packed: Optional[str]) -> pathlib.Path:
  """Renders of an exported model go beside its file (<dir>/render/...), others into the workdir; checked
  writable before anything is rendered."""
  root = pathlib.Path(packed).parent if packed else pathlib.Path(workdir)
  if not packed and not (root / checkpoints.CONFIG_FILE).is_file():
    checkpoints.load_config(root)  # Raises the error that says what a workdir holds.
  workdirs.check_writable(root / 'render', 'the folder of the renders')
  return root


def _output_folder(out_root: pathlib.Path, scene: str, name: str, step: int, packed: Optional[str] = None,
                   first: Optional[int] = None, appearance: str = MEAN_APPEARANCE) -> pathlib.Path:
  """<out_root>/render/<scene>/<name>_<step>[_<model file's stem>][_first<N>][_appearance-<choice>]: keyed by
  what fixes the result."""
  key = f'{name}_{step}' + (f'_{pathlib.Path(packed).stem}' if packed else '') + (f'_first{first}' if first else '')
  if appearance != MEAN_APPEARANCE:
    key += f'_appearance-{appearance}'
  return out_root / 'render' / scene / key


def appearance_index(config, appearance: str, train_names: Optional[Sequence[str]] = None) -> Optional[int]:
  """The Rays.cam_idx of every view rendered with --appearance=`appearance`: None for 'mean' (each view's
  own: the mean over the training images for views that are not one), camera.NO_CAMERA for 'zero', or the
  index of the run's own training image of that name (whatever --data_dir renders; `train_names`: their
  names where the caller has read them, else they are read). Refused in one line for a model without
  per-image components or an unknown name."""
  if appearance == MEAN_APPEARANCE:
    return None
  if not models.conditioning.enabled(config.model):
    groups = ', '.join(f'config.model.{group}' for group in sorted(models.conditioning.CONDITIONINGS))
    raise ConfigError(f'--appearance={appearance}: this model has no per-image components ({groups}), so every '
                      f'view renders alike; leave --appearance at {MEAN_APPEARANCE!r}.')
  if appearance == ZERO_APPEARANCE:
    return camera.NO_CAMERA
  # The run's own training images: its codes.
  names = list(datasets.load_split(config, 'train').names if train_names is None else train_names)
  if appearance not in names:
    shown = ', '.join(names[:5]) + (', ...' if len(names) > 5 else '')
    raise ConfigError(f'--appearance={appearance}: expected {MEAN_APPEARANCE!r}, {ZERO_APPEARANCE!r} or the '
                      f'name of a training image ({len(names)}: {shown}).')
  return names.index(appearance)


def render_split(workdir, split_name: Optional[str] = None, data_dir: Optional[str] = None, limit: int = -1,
                 chunk_size: Optional[int] = None, packed: Optional[str] = None,
                 lpips_nets: Optional[Sequence[str]] = None, step: Union[int, str, None] = None,
                 appearance: str = MEAN_APPEARANCE) -> Dict:
  """Renders every image of a split (default: test, else val) to <workdir>/render/<scene>/<split>_<step>/
  and scores it; with `packed`, the model exported to that file, to <its directory>/render/... LPIPS on
  `lpips_nets` (default: the run's config.eval.lpips). `step`: the checkpoint (default: the newest intact
  one; checkpoints.BEST: the best one). `appearance`: what per-image components take (`appearance_index`);
  with the default, the held-out scores of those components are added (models.conditioning).

  Returns:
    The metrics written to metrics.json: {'step', 'split', 'scene_dir', 'mean': {'psnr', 'ssim'}, ...},
    without the per-image list, and 'out_dir'. Held-out views of a run that refined its cameras are scored
    again after fitting each one's pose to its pixels, the model held fixed: 'registered': {'psnr', ...,
    'pose_fit_rotation_deg', 'pose_fit_translation', 'pose_fit_failed_views'} (camera_alignment.registered_scores;
    BARF's protocol).
  """
  if limit == 0 or limit < -1:
    raise ConfigError(f'--limit={limit}: expected a positive number of images, or -1 for all of them.')
  unknown = sorted(set(lpips_nets or ()) - set(perceptual.NETS))
  if unknown:
    raise ConfigError(f'--lpips={",".join(lpips_nets)}: unknown network {unknown[0]!r}; expected names from '
                      f'{",".join(perceptual.NETS)}, or none.')
  out_root = _out_root(workdir, packed)
  model = _restore(workdir, chunk_size, packed, step)
  split_name = _split_to_render(model.config, split_name, data_dir)
  if split_name == 'train':  # (Its cameras as the run refined them, where it did.)
    split = camera_alignment.training_split(model.config, model.group_params, data_dir)
  else:
    split = camera_alignment.held_out_split(model.config, model.group_params,
                                            datasets.load_split(model.config, split_name, data_dir), data_dir)
  cam_idx = appearance_index(model.config, appearance)
  indices = range(split.num_images if limit < 0 else min(limit, split.num_images))
  start = time.perf_counter()
  renderings = evaluation.render_views(model.experiment.steps, model.variables, split, indices, model.chunk_size,
                                       description=f'rendering the {split_name} split', cam_idx=cam_idx)
  render_seconds = time.perf_counter() - start
  _check_finite(renderings, model, workdir, packed)
  held_out = appearance == MEAN_APPEARANCE and split_name != 'train'
  scorers = () if not held_out else models.conditioning.held_out_scorers(
      model.experiment.model, model.config.model, model.experiment.background)
  extra = evaluation.held_out_scores(model.experiment.steps, model.variables, split, indices, model.chunk_size,
                                     scorers, renderings)
  per_image = evaluation.score_views(split, indices, renderings,
                                     model.config.eval.lpips if lpips_nets is None else lpips_nets, extra)
  seconds = time.perf_counter() - start
  out_dir = _output_folder(out_root, _scene_label(model.config, data_dir), split_name, model.step, packed,
                           len(indices) if len(indices) < split.num_images else None, appearance)
  summary = evaluation.split_summary(per_image, {
      'step': model.step, 'split': split_name, 'appearance': appearance,
      'scene_dir': str(pathlib.Path(data_dir) if data_dir else datasets.scene_directory(model.config)),
      # Rendering and scoring, and rendering alone (both with any compilation a cold cache needs).
      'seconds': seconds, 'render_seconds': render_seconds,
      'rays_per_second': len(indices) * split.height * split.width / render_seconds})
  if packed:
    summary['exported_model'] = str(packed)
  if held_out and model.group_params is not None:  # A run that refined its cameras: BARF's score beside.
    registered = camera_alignment.registered_scores(
        model.config, model.experiment, model.variables, split, indices, model.chunk_size,
        model.config.eval.lpips if lpips_nets is None else lpips_nets)
    if registered:
      summary['registered'] = registered
  if jax.process_index() == 0:
    out_dir = workdirs.claim_new_folder(out_dir)
    evaluation.write_split(out_dir, split, summary, renderings, model.experiment.background)
  return {k: v for k, v in summary.items() if k != 'per_image'} | {'out_dir': str(out_dir)}


def render_path_video(workdir, path: str, num_frames: int, fps: int, data_dir: Optional[str] = None,
                      chunk_size: Optional[int] = None, min_size: Optional[int] = None,
                      packed: Optional[str] = None, step: Union[int, str, None] = None,
                      appearance: str = MEAN_APPEARANCE, pictures: Optional[Sequence[str]] = None) -> Dict:
  """Renders camera path `path` (camera_paths.PATHS; None: the config's eval.path) over the training cameras
  to <workdir>/render/<scene>/<path>_<step>/<path>.{gif,mp4} (the colour) and <path>_<picture>.{gif,mp4} of
  each of `pictures` the model renders (default: the config's eval.video_pictures), with the training images'
  camera, at least `min_size` pixels on the shorter side (default: the config's eval.video_min_size); with
  `packed`, from the model exported to that file, to <its directory>/render/...; `appearance` as
  render_split's.
  """
  if num_frames <= 0 or fps <= 0:  # Before the checkpoint's restore, which takes a while.
    raise ConfigError(f'--frames={num_frames} and --fps={fps}: expected positive numbers.')
  if pictures is not None and not evaluation.is_picture_list(pictures):
    raise ConfigError(f'--pictures={",".join(pictures)}: expected distinct names from '
                      f'{sorted(pictures_lib.PICTURES)}, comma-separated.')
  out_root = _out_root(workdir, packed)
  model = _restore(workdir, chunk_size, packed, step)
  config, step = model.config, model.step
  train_split = camera_alignment.training_split(config, model.group_params, data_dir)
  cam_idx = appearance_index(config, appearance, None if data_dir else train_split.names)
  name, poses = evaluation.camera_path(train_split, path or config.eval.path, num_frames)
  start = time.perf_counter()
  min_size = config.eval.video_min_size if min_size is None else min_size
  frames = evaluation.render_path(model.experiment.steps, model.variables, train_split, poses, model.chunk_size,
                                  model.experiment.background, min_size, f'rendering the {name}',
                                  camera.ANY_CAMERA if cam_idx is None else cam_idx)
  seconds = time.perf_counter() - start
  _check_finite(frames, model, workdir, packed)
  out_dir = _output_folder(out_root, _scene_label(config, data_dir), name, step, packed, appearance=appearance)
  paths = []
  if jax.process_index() == 0:
    paths = evaluation.write_video(workdirs.claim_new_folder(out_dir), name, frames, fps, formats=('gif', 'mp4'),
                                   pictures_wanted=config.eval.video_pictures if pictures is None else pictures)
  return {'step': step, 'path': name, 'frames': num_frames, 'size': list(frames[0]['rgb'].shape[1::-1]),
          'seconds': seconds, 'files': [str(p) for p in paths]}
