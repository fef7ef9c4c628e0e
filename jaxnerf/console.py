"""What a command shows on the terminal: one-line messages and progress bars, on stderr, in process 0 only
(the other processes of a multi-process run stay silent)."""

import sys
import time
from typing import Dict, Iterable, Optional

import jax


def progress(iterable: Iterable, description: str, total: Optional[int] = None, unit: str = 'it',
             unit_scale: bool = False):
  """`iterable`, with a progress bar on stderr in process 0 (for jobs that take more than a few seconds);
  with `unit_scale`, counts such as rays read 1.2M."""
  from tqdm import tqdm
  return tqdm(iterable, desc=description, total=total, unit=unit, unit_scale=unit_scale, dynamic_ncols=True,
              file=sys.stderr, disable=jax.process_index() != 0, mininterval=1.0, leave=False)


def message(text: str):
  """Prints a line in process 0 only, between progress bars."""
  if jax.process_index() == 0:
    from tqdm import tqdm
    tqdm.write(text, file=sys.stderr)


class ProgressBar:
  """A bar over training steps showing loss, PSNR, training rays/s, the learning rate and the time left.

  Rates and the time left come from training time alone (compilation, validation and checkpointing
  excluded). `advance` moves the bar every step; `update` shows the metrics of a log interval.
  """

  def __init__(self, start_step: int, num_steps: int, rays_per_step: int):
    from tqdm import tqdm
    self._bar = tqdm(total=num_steps, initial=start_step, unit='step', dynamic_ncols=True, file=sys.stderr,
                     disable=jax.process_index() != 0, mininterval=1.0,
                     bar_format='{l_bar}{bar}| {n_fmt}/{total_fmt} [{postfix}]')
    self._rays_per_step = rays_per_step
    self._last = None  # (step, train_seconds) at the last update.

  def advance(self):
    self._bar.update(1)

  def set_total(self, num_steps: int):
    """The step at which training is now expected to end (a time budget can move it)."""
    if num_steps != self._bar.total:
      self._bar.total = num_steps
      self._bar.refresh()

  def update(self, step: int, metrics: Dict[str, float], train_seconds: float,
             seconds_left: Optional[float]) -> Optional[float]:
    """Shows `metrics` at `step`; returns the training rays/s since the previous update (None at the first
    update of a run, when there is no interval to measure). Only rays that reached the loss count: models
    with packed samples leave out the rays that did not fit (metrics['complete_rays'])."""
    rays_per_second = None
    if self._last is not None and train_seconds > self._last[1]:
      trained_per_step = self._rays_per_step * metrics.get('complete_rays', 1.0)
      rays_per_second = (step - self._last[0]) * trained_per_step / (train_seconds - self._last[1])
    self._last = (step, train_seconds)
    postfix = {'loss': f"{metrics['loss']:.4g}", 'psnr': f"{metrics['psnr']:.2f}",
               'lr': f"{metrics['learning_rate']:.2g}"}
    if rays_per_second is not None:
      postfix['rays/s'] = f'{rays_per_second:,.0f}'
    if seconds_left is not None:
      postfix['left'] = time.strftime('%H:%M:%S', time.gmtime(max(seconds_left, 0.0)))
    self._bar.set_postfix(postfix, refresh=False)
    self._bar.update(step - self._bar.n)
    self._bar.refresh()
    return rays_per_second

  def start(self, step: int, train_seconds: float):
    """Starts measuring rates from `step` (after compilation)."""
    self._last = (step, train_seconds)

  def write(self, text: str):
    message(text)

  def close(self):
    self._bar.close()
