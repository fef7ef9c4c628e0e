"""The Python API: what train.py and render.py do, as functions for a notebook or another program.

  from jaxnerf import api
  config = api.load_config('configs/demo.py', {'train.max_seconds': 60.0})
  summary = api.train(config, 'runs/demo_notebook')      # {'val_psnr': ..., ...}, as final/summary.json
  model = api.load('runs/demo_notebook')                 # its newest intact checkpoint (the workdir is only read)
  pose = model.cameras('train')[0]                       # [3, 4] camera-to-world (OpenGL: -z looks ahead)
  picture = model.render(pose, width=200, height=200)    # {'rgb': [200, 200, 3], 'depth': [200, 200], ...}
  scores = model.score('val', limit=5)                   # {'mean': {'psnr': ..., 'ssim': ...}, 'per_image': [...]}
  model.summary(), model.history()                       # final/summary.json, the records of metrics.jsonl

`load` never writes into the workdir: a run may still be training there. Errors of bad input are the
library's (jaxnerf.errors: ConfigError, DatasetError, CheckpointError, ...), each naming the key or file.
examples/notebook.py runs these steps end to end (docs/api.md).
"""

import importlib.util
import json
import pathlib
import sys
from typing import Any, Dict, List, Mapping, Optional, Union

import jax
import ml_collections
import numpy as np

from jaxnerf import cli
from jaxnerf import config_groups
from jaxnerf import datasets
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.ops import camera
from jaxnerf.outputs import chunked
from jaxnerf.outputs import evaluation
from jaxnerf.outputs import reporting
from jaxnerf.training import camera_alignment
from jaxnerf.training import default_config
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import trainer


def _config_module(path: pathlib.Path):
  """The module of config file `path`. A config in a package folder (the repository's configs/, whose files
  import each other as `from configs import default`) is loaded with the folder's parent importable while it
  loads; sys.path is left as it was."""
  if not path.is_file():
    raise ConfigError(f'config file {path} does not exist.')
  root = str(path.resolve().parent.parent) if (path.parent / '__init__.py').is_file() else None
  spec = importlib.util.spec_from_file_location(f'jaxnerf_config_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  added = root is not None and root not in sys.path
  if added:
    sys.path.insert(0, root)
  try:
    spec.loader.exec_module(module)
  finally:
    if added:
      sys.path.remove(root)
  if not callable(getattr(module, 'get_config', None)):
    raise ConfigError(f'config file {path} defines no get_config().')
  return module


def load_config(path: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None
                ) -> ml_collections.ConfigDict:
  """The config of file `path` (`configs/lego_ngp.py:cpu`: a preset after the colon), or with no path the
  library's default (the paper's NeRF, configs/default.py), with `overrides` {'train.batch_size': 1024, ...}
  set (dotted keys, as --config.<key>=<value> on the command line; a key the config lacks or a value of the
  wrong type is a ConfigError). The config comes back locked, as train.py's: no new keys."""
  if path is None:
    config = default_config.get_config()
  else:
    file, _, preset = str(path).partition(':')
    module = _config_module(pathlib.Path(file))
    try:
      config = module.get_config(preset) if preset else module.get_config()
    except ValueError as e:  # An unknown preset.
      raise ConfigError(str(e)) from None
  config_groups.apply_overrides(config, overrides or {})
  config.lock()
  return config


def train(config: ml_collections.ConfigDict, workdir, resume_step: Union[int, str, None] = None) -> Dict:
  """Trains `config` in `workdir` (resuming from its newest intact checkpoint, or that of `resume_step`),
  evaluates and renders as train.py does, and returns the summary it writes to final/summary.json. Compiled
  programs are kept in $JAXNERF_CACHE/xla, as the commands keep them."""
  cli.keep_compiled_programs()
  return trainer.train_and_evaluate(config, workdir, resume_step)


class TrainedModel:
  """A trained workdir's model, restored for rendering and scoring in memory (`load`). Nothing is written:
  not into the workdir, not anywhere else.

  Attributes:
    workdir: the workdir (pathlib.Path).
    config: the config it was trained with (its saved config.json).
    step: the step of the restored checkpoint.
  """

  def __init__(self, workdir, step: Union[int, str, None] = None, data_dir: Optional[str] = None):
    self.workdir = pathlib.Path(workdir)
    self.config, self._experiment, self._state = experiment_lib.restore_model(self.workdir, step=step)
    self.step = int(jax.device_get(self._state.step))
    self._data_dir = data_dir
    self._splits = {}

  def split(self, name: str = 'train'):
    """The scene's split `name` ('train', 'val', 'test'; datasets.SceneSplit), read once, with its cameras as
    the run placed them (refined ones where it refined its training cameras)."""
    if name not in self._splits:
      if name == 'train':
        split = camera_alignment.training_split(self.config, self._state.group_params, self._data_dir)
      else:
        split = camera_alignment.held_out_split(
            self.config, self._state.group_params, datasets.load_split(self.config, name, self._data_dir),
            self._data_dir)
      self._splits[name] = split
    return self._splits[name]

  def cameras(self, split: str = 'train') -> np.ndarray:
    """The camera-to-world matrices [num_images, 3, 4] of a split's views."""
    return self.split(split).camtoworlds

  def render(self, camtoworld, width: Optional[int] = None, height: Optional[int] = None,
             focal: Optional[float] = None, chunk_size: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Renders any camera: camtoworld [3, 4] (or [4, 4]), a pinhole of `focal` pixels centred on a `width` x
    `height` image. Unset, each is the first training camera's (its focal length scaled with the width).
    The scene's ray bounds and NDC space apply. Returns host arrays {'rgb': [H, W, 3] in [0, 1], 'depth': [H, W],
    'median_depth', 'acc', and 'normals', Ref-NeRF's parts, ... where the model renders them}."""
    pose = np.asarray(camtoworld, np.float32)
    if pose.shape not in ((3, 4), (4, 4)):
      raise ConfigError(f'camtoworld: expected a [3, 4] or [4, 4] matrix, got shape {pose.shape}.')
    if not np.all(np.isfinite(pose)):
      raise ConfigError('camtoworld: expected finite values, got NaN or inf.')
    if not all(n is None or (isinstance(n, (int, np.integer)) and n > 0) for n in (width, height)):
      raise ConfigError(f'render: expected a positive whole width and height in pixels, got {width}x{height}.')
    if focal is not None and not (np.isfinite(focal) and focal > 0):
      raise ConfigError(f'render: expected a positive, finite focal length in pixels, got {focal}.')
    train_split = self.split('train')  # (Read once the camera is known to be valid.)
    width = train_split.width if width is None else width
    height = train_split.height if height is None else height
    if focal is None:  # The first training camera's focal length, for an image of that width.
      focal = float(np.asarray(train_split.intrinsics.focal_x)[0]) * width / train_split.width
    intrinsics = camera.Intrinsics.pinhole(focal, width, height)
    rays = train_split.rays_of_view(pose[:3], intrinsics, width, height)
    return chunked.render_image(self._experiment.steps, self._state.variables, rays,
                                chunk_size or self.config.eval.chunk_size)

  def score(self, split: str = 'val', limit: Optional[int] = None, lpips: tuple = ()) -> Dict:
    """Renders the first `limit` views of a split (all: None) and scores them against its images:
    {'mean': {'psnr', 'ssim', ... every metric the scene's ground truth allows}, 'per_image': [...]}, as
    render.py's metrics.json holds them (LPIPS on the networks `lpips` names, 'alex' and 'vgg')."""
    views = self.split(split)
    count = views.num_images if limit is None else min(int(limit), views.num_images)
    if count <= 0:
      raise ConfigError(f'score: limit={limit}: expected a positive number of views.')
    per_image, _ = evaluation.evaluate(self._experiment.steps, self._state.variables, views, range(count),
                                       self.config.eval.chunk_size, f'scoring the {split} split', tuple(lpips))
    return evaluation.split_summary(per_image, {'step': self.step, 'split': split})

  def summary(self) -> Dict:
    """The final evaluation the run wrote (final/summary.json: val PSNR, SSIM, steps, seconds, ...)."""
    path = self.workdir / 'final' / 'summary.json'
    if not path.is_file():
      raise CheckpointError(f'{path} does not exist: the run has not finished its final evaluation (its '
                            'checkpoints can still be rendered and scored: score()).')
    try:
      return json.loads(path.read_text())
    except json.JSONDecodeError as e:
      raise CheckpointError(f'{path} is not valid JSON ({e}).') from None

  def history(self) -> List[Dict]:
    """The training and validation records of metrics.jsonl, oldest first ({'step', 'split', 'psnr', ...})."""
    return reporting.read_metrics(self.workdir)


def load(workdir, step: Union[int, str, None] = None, data_dir: Optional[str] = None) -> TrainedModel:
  """The model of a trained workdir: its newest intact checkpoint, or that of `step` (an int, or 'best' for
  config.train.keep_best's); the scene read from `data_dir` where given (another copy of it)."""
  return TrainedModel(workdir, step, data_dir)
