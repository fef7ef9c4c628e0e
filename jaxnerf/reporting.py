"""Reporting a run: metrics as JSON lines and TensorBoard events in the workdir, and a progress bar.

Only process 0 writes; the others get writers that do nothing.
"""

import json
import pathlib
import time
from typing import Dict

import jax
import numpy as np

METRICS_FILE = 'metrics.jsonl'


class MetricsWriter:
  """Appends {'step', 'split', 'wall_time', metrics...} records to workdir/metrics.jsonl and mirrors
  scalars and images to TensorBoard event files in workdir/tensorboard."""

  def __init__(self, workdir, enable_tensorboard: bool = True):
    self._active = jax.process_index() == 0
    self._path = pathlib.Path(workdir) / METRICS_FILE
    self._tensorboard = None
    if self._active:
      self._path.parent.mkdir(parents=True, exist_ok=True)
      if enable_tensorboard:
        from tensorboardX import SummaryWriter  # Imported here: it is slow to import.
        self._tensorboard = SummaryWriter(str(self._path.parent / 'tensorboard'))

  def write_scalars(self, step: int, split: str, scalars: Dict[str, float]):
    if not self._active:
      return
    scalars = {k: float(v) for k, v in scalars.items()}
    record = {'step': int(step), 'split': split, 'wall_time': time.time(), **scalars}
    with open(self._path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._tensorboard is not None:
      for name, value in scalars.items():
        self._tensorboard.add_scalar(f'{split}/{name}', value, step)

  def write_images(self, step: int, split: str, images: Dict[str, np.ndarray]):
    """Images [H, W, 3] in [0, 1], to TensorBoard only."""
    if self._tensorboard is not None:
      for name, image in images.items():
        self._tensorboard.add_image(f'{split}/{name}', np.clip(image, 0, 1), step, dataformats='HWC')

  def flush(self):
    if self._tensorboard is not None:
      self._tensorboard.flush()

  def close(self):
    if self._tensorboard is not None:
      self._tensorboard.close()


def read_metrics(workdir):
  """All records of workdir/metrics.jsonl, oldest first."""
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ProgressBar:
  """A tqdm bar over training steps showing loss, PSNR, rays/s and the ETA.

  `advance` moves it every step (tqdm redraws at most once a second); `update` also shows the metrics of a
  log interval.
  """

  def __init__(self, start_step: int, num_steps: int, rays_per_step: int):
    from tqdm import tqdm
    self._bar = tqdm(total=num_steps, initial=start_step, unit='step', dynamic_ncols=True,
                     disable=jax.process_index() != 0, mininterval=1.0, smoothing=0.1)
    self._rays_per_step = rays_per_step
    self._last = (start_step, time.perf_counter())

  def advance(self):
    self._bar.update(1)

  def update(self, step: int, metrics: Dict[str, float]):
    last_step, last_time = self._last
    now = time.perf_counter()
    rays_per_second = (step - last_step) * self._rays_per_step / max(now - last_time, 1e-9)
    self._last = (step, now)
    self._bar.set_postfix(loss=f"{metrics['loss']:.4g}", psnr=f"{metrics['psnr']:.2f}",
                          rays_per_s=f'{rays_per_second:,.0f}', refresh=False)
    self._bar.update(step - self._bar.n)
    self._bar.refresh()
    return rays_per_second

  def write(self, message: str):
    self._bar.write(message)

  def close(self):
    self._bar.close()
