"""view.py: the live viewer of a trained workdir (outputs/viewer.py)."""

import pathlib
import time
from typing import Optional

import jax

from jaxnerf import console
from jaxnerf.errors import ConfigError
from jaxnerf import models
from jaxnerf.outputs import viewer as viewer_lib
from jaxnerf.training import camera_alignment
from jaxnerf.training import experiment as experiment_lib
from jaxnerf import workdirs


def open_viewer(workdir, host: str = '127.0.0.1', port: int = 8080, chunk_size: Optional[int] = None,
                data_dir: Optional[str] = None) -> viewer_lib.Viewer:
  """A Viewer of the newest checkpoint of `workdir`, serving until closed; camera-path renders started from
  the page go to <workdir>/render/viewer/."""
  if jax.process_count() > 1:
    raise ConfigError('view.py renders in one process; run it on one machine.')
  config, experiment, state = experiment_lib.restore_model(workdir)
  # The training cameras as the run refined them (where it did): the viewer's views and paths start from them.
  split = camera_alignment.training_split(config, state.group_params, data_dir)
  out_dir = pathlib.Path(workdir) / 'render' / 'viewer'
  workdirs.check_writable(out_dir, 'the folder of the viewer\'s renders')
  viewer = viewer_lib.Viewer(experiment.steps, split, experiment.background, chunk_size or config.eval.chunk_size,
                             host=host, port=port, out_dir=out_dir,
                             appearances=bool(models.conditioning.enabled(config.model)),
                             video_pictures=config.eval.video_pictures)
  viewer.publish(state.variables, int(jax.device_get(state.step)))
  return viewer


def serve(workdir, host: str, port: int, seconds: float = 0.0, chunk_size: Optional[int] = None,
          data_dir: Optional[str] = None):
  """Runs the viewer of `workdir` until interrupted (or for `seconds`, if positive)."""
  viewer = open_viewer(workdir, host, port, chunk_size, data_dir)
  console.message(f'Viewer of {workdir} at {viewer.url} (Ctrl-C stops it).')
  try:
    start = time.monotonic()
    while not seconds or time.monotonic() - start < seconds:
      time.sleep(0.2)
  finally:
    viewer.close()
