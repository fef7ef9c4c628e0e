"""What paces the training loop (training/trainer.py) beside the compiled step: the time budget and the
schedule length it allows, batches prepared ahead on a background thread, and the warning when training
has stopped learning.
"""

import queue
import threading
import time
from typing import Optional

from jaxnerf import console
from jaxnerf.datasets import batching
from jaxnerf import parallel

# Below this global gradient norm a step has learnt nothing.
VANISHED_GRADIENT_NORM = 1e-10


class TimeBudget:
  """Training time of a workdir against config.train.max_seconds, and the schedule length it allows.

  The clock runs between `start` and `pause`. With a budget, `schedule_steps` estimates the step at which
  the budget runs out from this run's mean step time (steps have static shapes, so their time is steady),
  and the trainer re-lays the learning-rate schedule over it at every log interval; without one, or when
  num_steps comes first, the schedule ends at num_steps.
  """

  def __init__(self, max_seconds: float, num_steps: int, seconds_before: float, start_step: int,
               clock=time.perf_counter):
    self.max_seconds, self.num_steps = max_seconds, num_steps
    self._seconds_before, self._start_step = seconds_before, start_step
    self._clock = clock
    self._run_seconds = 0.0
    self._running_since: Optional[float] = None

  def start(self):
    self._running_since = self._clock()

  def pause(self):
    if self._running_since is not None:
      self._run_seconds += self._clock() - self._running_since
      self._running_since = None

  @property
  def seconds(self) -> float:
    """Training seconds of the workdir so far (all runs)."""
    running = 0.0 if self._running_since is None else self._clock() - self._running_since
    return self._seconds_before + self._run_seconds + running

  def out_of_time(self) -> bool:
    return self.max_seconds > 0 and self.seconds >= self.max_seconds

  def seconds_per_step(self, step: int) -> Optional[float]:
    steps = step - self._start_step
    return self._run_seconds / steps if steps > 0 and self._run_seconds > 0 else None

  def schedule_steps(self, step: int, current: int) -> int:
    """The step at which training is expected to end: num_steps, or sooner where the budget runs out
    (`current` until this run has timed a step)."""
    if self.max_seconds <= 0:
      return self.num_steps
    per_step = self.seconds_per_step(step)
    if per_step is None:
      return min(current, self.num_steps)
    remaining = max(self.max_seconds - self.seconds, 0.0)
    return int(min(self.num_steps, step + remaining / per_step))

  def seconds_left(self, step: int, schedule_steps: int) -> Optional[float]:
    per_step = self.seconds_per_step(step)
    if per_step is None:
      return None
    left = (schedule_steps - step) * per_step
    return min(left, self.max_seconds - self.seconds) if self.max_seconds > 0 else left


class BatchPrefetcher:
  """Prepares the batches of the coming steps on a background thread, placed on the devices."""

  def __init__(self, batcher: batching.RayBatcher, first_step: int, last_step: int, sharding, depth: int = 2):
    self._queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()

    def put(item) -> bool:  # False once the consumer has stopped: never block on a full queue then.
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          return True
        except queue.Full:
          pass
      return False

    def produce():
      try:
        for step in range(first_step, last_step):
          if not put(parallel.shard_local_batch(batcher.batch(step), sharding)):
            return
      except Exception as e:  # Re-raised in the training thread.
        put(e)

    self._thread = threading.Thread(target=produce, daemon=True)
    self._thread.start()

  def next(self):
    item = self._queue.get()
    if isinstance(item, Exception):
      raise item
    return item

  def close(self):
    self._stop.set()
    self._thread.join()


class StallWatch:
  """Warns once when the gradient has vanished for `patience` consecutive steps: the run has stopped
  learning, and says why that usually happens."""

  def __init__(self, patience: int, learning_rate: float, progress: console.ProgressBar):
    self._patience, self._learning_rate, self._progress = patience, learning_rate, progress
    self._since: Optional[int] = None
    self.warning: Optional[str] = None  # The warning, once given.

  def observe(self, first_step: int, grad_norms) -> Optional[str]:
    """Takes the gradient norms of steps first_step + 1, ...; returns the warning when it is given."""
    for step, norm in enumerate(grad_norms, first_step + 1):
      if not norm < VANISHED_GRADIENT_NORM:  # (A skipped float16 step's non-finite norm is no stall.)
        self._since = None
      elif self._since is None:
        self._since = step
    if self.warning or self._patience <= 0 or self._since is None:
      return None
    if first_step + len(grad_norms) - self._since + 1 < self._patience:
      return None
    self.warning = (f'warning: the gradient has been zero since step {self._since}: the model stopped learning. '
            'Its density most likely collapsed to zero everywhere (or every ReLU died), which a learning '
            f'rate too high for the model causes (config.optim.lr_init={self._learning_rate:g}); restart in a '
            'new --workdir with a lower one.')
    self._progress.write(self.warning)
    return self.warning
