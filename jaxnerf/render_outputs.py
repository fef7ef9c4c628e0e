"""Rendering from a training workdir (what render.py runs): restore, render, write files and metrics."""

import pathlib
import time
from typing import Dict, Optional

import jax

from jaxnerf import datasets
from jaxnerf import evaluation
from jaxnerf import parallel
from jaxnerf import trainer


def _restore(workdir, chunk_size: Optional[int]):
  config, experiment, state = trainer.restore_model(workdir)
  chunk_size = chunk_size or config.eval.chunk_size
  parallel.check_divisible(chunk_size, '--chunk_size')
  return config, experiment, state, chunk_size


def render_split(workdir, split_name: str, data_dir: Optional[str] = None, limit: int = -1,
                 chunk_size: Optional[int] = None) -> Dict:
  """Renders every image of a split to <workdir>/render/<split>_<step>/ and scores it.

  Returns:
    The metrics written to metrics.json: {'step', 'split', 'mean': {'psnr', 'ssim'}, 'per_image': [...]}.
  """
  config, experiment, state, chunk_size = _restore(workdir, chunk_size)
  split = datasets.load_split(config, split_name, data_dir)
  step = int(jax.device_get(state.step))
  indices = range(split.num_images if limit < 0 else min(limit, split.num_images))
  start = time.perf_counter()
  per_image, renderings = evaluation.evaluate(experiment.steps, state.variables, split, indices, chunk_size)
  seconds = time.perf_counter() - start
  out_dir = pathlib.Path(workdir) / 'render' / f'{split_name}_{step}'
  extra = {'step': step, 'split': split_name, 'seconds': seconds,
           'rays_per_second': len(indices) * split.height * split.width / seconds}
  summary = evaluation.write_split(out_dir, split, per_image, renderings, experiment.background,
                                   extra)
  return {k: v for k, v in summary.items() if k != 'per_image'} | {'out_dir': str(out_dir)}


def render_orbit_video(workdir, num_frames: int, fps: int, data_dir: Optional[str] = None,
                       chunk_size: Optional[int] = None) -> Dict:
  """Renders a 360-degree orbit to <workdir>/render/orbit_<step>/orbit{,_depth}.{gif,mp4}.

  The orbit circles the origin at the median distance and elevation of the training cameras, with the
  training images' focal length and size.
  """
  config, experiment, state, chunk_size = _restore(workdir, chunk_size)
  train_split = datasets.load_split(config, 'train', data_dir)
  step = int(jax.device_get(state.step))
  start = time.perf_counter()
  frames = evaluation.render_orbit(experiment.steps, state.variables, train_split, num_frames, chunk_size,
                                   experiment.background)
  seconds = time.perf_counter() - start
  out_dir = pathlib.Path(workdir) / 'render' / f'orbit_{step}'
  paths = evaluation.write_orbit(out_dir, frames, fps, formats=('gif', 'mp4'))
  return {'step': step, 'frames': num_frames, 'seconds': seconds, 'files': [str(p) for p in paths]}
