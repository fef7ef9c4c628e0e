"""Training batches of rays drawn from the pixels of a split.

Batches are a pure function of (seed, step), so a resumed run draws exactly the batches an uninterrupted one
would have drawn. Every process derives the same global batch and keeps its own contiguous share of the
rows, so a run gives the same batches on one process or on several.
"""

from typing import Dict

import numpy as np

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import ConfigError
from jaxnerf import values

BATCHING_MODES = ('all_images', 'single_image')

# config.batching: how the trainer's RayBatcher draws training rays.
config_groups.register('batching', owner=__name__, settings=dict(
    mode=Setting('all_images', "'all_images': shuffle the rays of all training images together, each visited once "
                 "an epoch; 'single_image': all rays of a step from one random image.",
                 values.one_of(BATCHING_MODES, ordered=True)),
    precrop_steps=Setting(0, "Draw pixels from the images' central crop for this many first steps (0: never).",
                          values.NON_NEGATIVE_INT),
    precrop_fraction=Setting(0.5, "Side of that central crop, as a fraction of the image's.", values.FRACTION),
))


class RayBatcher:
  """Draws this process's share of global batches of `batch_size` rays with their target colours.

  Modes:
    'all_images': the rays of every training image, shuffled together and visited once per epoch.
    'single_image': all rays of a step come from one random image (as JaxNeRF's option).
  For the first `precrop_steps` steps, pixels are drawn (uniformly, with replacement) from the central
  `precrop_fraction` of each image instead, which keeps the model from collapsing to the white background
  on scenes with a small foreground.
  """

  def __init__(self, split: SceneSplit, batch_size: int, mode: str = 'all_images', precrop_steps: int = 0,
               precrop_fraction: float = 0.5, seed: int = 0, process_index: int = 0, process_count: int = 1):
    if mode not in BATCHING_MODES:
      raise ConfigError(f'config.batching.mode must be one of {BATCHING_MODES}, got {mode!r}.')
    if not 0 < precrop_fraction <= 1:
      raise ConfigError(f'config.batching.precrop_fraction must be in (0, 1], got {precrop_fraction}.')
    self.split = split
    self.batch_size = batch_size
    self.mode = mode
    self.precrop_steps = precrop_steps
    self.precrop_fraction = precrop_fraction
    self._seed = (seed,)
    rows = batch_size // process_count
    self._rows = slice(process_index * rows, (process_index + 1) * rows)
    self._num_pixels = split.num_images * split.height * split.width
    self._epoch, self._permutation = None, None

  def _rng(self, *keys):
    return np.random.default_rng(self._seed + keys)

  def _epoch_permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:
      dtype = np.int32 if self._num_pixels < 2**31 else np.int64
      self._permutation = np.arange(self._num_pixels, dtype=dtype)
      self._rng(0, epoch).shuffle(self._permutation)
      self._epoch = epoch
    return self._permutation

  def pixel_indices(self, step: int):
    """(image, row, column) indices, each [batch_size], of the pixels of `step`'s global batch."""
    n, h, w = self.split.num_images, self.split.height, self.split.width
    if step < self.precrop_steps:
      rng = self._rng(1, step)
      dh, dw = int(h * self.precrop_fraction / 2), int(w * self.precrop_fraction / 2)
      image = rng.integers(0, n, self.batch_size)
      row = rng.integers(h // 2 - dh, h // 2 + max(dh, 1), self.batch_size)
      col = rng.integers(w // 2 - dw, w // 2 + max(dw, 1), self.batch_size)
      return image, row, col
    if self.mode == 'single_image':
      rng = self._rng(2, step)
      image = np.full(self.batch_size, rng.integers(0, n))
      pixel = rng.choice(h * w, self.batch_size, replace=self.batch_size > h * w)
      return image, pixel // w, pixel % w
    batches_per_epoch = max(self._num_pixels // self.batch_size, 1)
    epoch, position = divmod(step, batches_per_epoch)
    flat = self._epoch_permutation(epoch)[position * self.batch_size:(position + 1) * self.batch_size]
    if flat.size < self.batch_size:  # Fewer pixels than one batch: repeat them.
      flat = np.resize(flat, self.batch_size)
    image, pixel = np.divmod(flat, h * w)
    return image, pixel // w, pixel % w

  def batch(self, step: int) -> Dict[str, np.ndarray]:
    """This process's rows of `step`'s batch: {'pixels': [rows, 3] int32 (image, row, column; the train step
    makes their rays from the split's camera table), 'rgb': [rows, 3] (on the split's background), 'alpha':
    [rows, 1] (ones for images without alpha)}."""
    image, row, col = (indices[self._rows] for indices in self.pixel_indices(step))
    split = self.split
    alpha = np.ones(image.shape, np.float32) if split.alphas is None else split.alphas[image, row, col]
    return {'pixels': np.stack([image, row, col], axis=-1).astype(np.int32), 'rgb': split.images[image, row, col],
            'alpha': alpha[:, None]}

