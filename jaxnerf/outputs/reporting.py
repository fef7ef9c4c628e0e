"""Reporting a run: metrics as JSON lines and TensorBoard events in the workdir (and to Weights & Biases when
asked). (Progress bars and messages on the terminal are in console.py.)

Only process 0 writes anything; the others get writers that do nothing.
"""

import json
import logging
import pathlib
import time
from typing import Dict

import jax
import numpy as np

from jaxnerf.errors import ConfigError
from jaxnerf.workdirs import write_text_atomically

METRICS_FILE = 'metrics.jsonl'
WANDB_ID_FILE = 'wandb_run_id'


def _parse_records(text: str):
  """The complete JSON records of metrics.jsonl text; a line cut short by a crash is skipped."""
  records = []
  for line in text.splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return records


def read_metrics(workdir):
  """All records of workdir/metrics.jsonl, oldest first."""
  path = pathlib.Path(workdir) / METRICS_FILE
  return _parse_records(path.read_text()) if path.exists() else []


class MetricsWriter:
  """Appends {'step', 'split', 'wall_time', metrics...} records to workdir/metrics.jsonl and mirrors
  scalars and images to TensorBoard event files in workdir/tensorboard, and to Weights & Biases when
  `wandb_project` is set.

  A run that starts at `start_step` (0, or the step of the checkpoint it resumes from) first drops the
  records of later steps, which came from training that no checkpoint kept, so that every step is recorded
  once however often the run was interrupted.
  """

  def __init__(self, workdir, start_step: int = 0, enable_tensorboard: bool = True, wandb_project: str = '',
               config=None):
    self._active = jax.process_index() == 0
    self._path = pathlib.Path(workdir) / METRICS_FILE
    self._tensorboard = None
    self._wandb = None
    if not self._active:
      return
    self._path.parent.mkdir(parents=True, exist_ok=True)
    if self._path.exists():  # Drop what a run that resumed from an older checkpoint would write again.
      text = self._path.read_text()
      kept = [r for r in _parse_records(text) if r.get('step', 0) <= start_step]
      kept_text = ''.join(json.dumps(r) + '\n' for r in kept)
      if kept_text != text:
        write_text_atomically(self._path, kept_text)
    if enable_tensorboard:
      from tensorboardX import SummaryWriter  # Imported here: it is slow to import.
      # A NaN scalar is a record (the loss of steps that loss scaling skipped), not a warning per value.
      logging.getLogger('tensorboardX.x2num').setLevel(logging.ERROR)
      self._tensorboard = SummaryWriter(str(self._path.parent / 'tensorboard'), purge_step=start_step + 1)
    if wandb_project:
      self._wandb = _start_wandb(wandb_project, self._path.parent, config)

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
    if self._wandb is not None:
      self._wandb.log({f'{split}/{name}': value for name, value in scalars.items()}, step=int(step))

  def write_images(self, step: int, split: str, images: Dict[str, np.ndarray]):
    """Images [H, W, 3] in [0, 1], to TensorBoard and W&B only."""
    images = {name: np.clip(image, 0, 1) for name, image in images.items()}
    if self._tensorboard is not None:
      for name, image in images.items():
        self._tensorboard.add_image(f'{split}/{name}', image, step, dataformats='HWC')
    if self._wandb is not None:
      import wandb
      self._wandb.log({f'{split}/{name}': wandb.Image(image) for name, image in images.items()}, step=int(step))

  def write_video(self, step: int, split: str, name: str, gif_path: pathlib.Path, fps: int):
    """An animated GIF already on disk, to TensorBoard (its image tab plays GIFs) and W&B."""
    if self._tensorboard is not None:
      from tensorboardX.proto.summary_pb2 import Summary  # pylint: disable=import-outside-toplevel
      data = pathlib.Path(gif_path).read_bytes()
      width, height = int.from_bytes(data[6:8], 'little'), int.from_bytes(data[8:10], 'little')  # GIF header.
      image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
      # tensorboardX's add_video needs moviepy to encode the same GIF; the encoded summary is written as is.
      self._tensorboard._get_file_writer().add_summary(  # pylint: disable=protected-access
          Summary(value=[Summary.Value(tag=f'{split}/{name}', image=image)]), step)
    if self._wandb is not None:
      import wandb
      self._wandb.log({f'{split}/{name}': wandb.Video(str(gif_path), fps=fps, format='gif')}, step=int(step))

  def close(self):
    if self._tensorboard is not None:
      self._tensorboard.close()
    if self._wandb is not None:
      self._wandb.finish()


def check_wandb_available(project: str):
  """Raises ConfigError if W&B logging is asked for but the wandb package is missing."""
  if not project:
    return
  try:
    import wandb  # pylint: disable=unused-import
  except ImportError:
    raise ConfigError(f'config.train.wandb_project={project!r} needs the wandb package: pip install wandb '
                      '(set WANDB_MODE=offline to log without a network; `wandb sync` uploads later).') from None


def _start_wandb(project: str, workdir: pathlib.Path, config):
  """A W&B run for the workdir; a resumed workdir continues the same run (its id is kept in the workdir)."""
  import wandb
  id_file = workdir / WANDB_ID_FILE
  run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
  id_file.write_text(run_id)
  return wandb.init(project=project, id=run_id, resume='allow', dir=str(workdir), name=workdir.name,
                    config=config.to_dict() if config is not None else None)
