"""export.py --format=cameras: a run's training cameras, as it ended with them, in a transforms.json.

Each frame holds the camera the model was trained with: refined, where the run's parameter groups corrected
the poses (training/parameter_groups.py), else as given. Poses are in the scene's frame as the reader gave
it (captures: recentred and rescaled by capture.py), 4x4 camera-to-world in the OpenGL convention, with the
given pose beside it ("given_transform_matrix") and the intrinsics at the training resolution. "file_path"
is the image's name in the split (no folder, no extension). Where the true poses are known
(config.pose_noise), the refined cameras' errors against them are written too.
"""

import json
import pathlib
from typing import Dict

import jax
import numpy as np

from jaxnerf import datasets
from jaxnerf.datasets import transforms_json
from jaxnerf.errors import WorkdirError
from jaxnerf.training import camera_alignment
from jaxnerf.training import experiment as experiment_lib
from jaxnerf import workdirs

FILE_NAME = 'transforms.json'


def _matrix(camtoworld) -> list:
  return np.concatenate([np.asarray(camtoworld, np.float64)[:3], [[0.0, 0.0, 0.0, 1.0]]]).tolist()


def export_cameras(workdir, path=None) -> Dict:
  """Writes the training cameras of `workdir`'s newest intact checkpoint to `path` (default
  workdir/export/transforms.json, or the first free name beside it); returns a report (file, step, cameras,
  refined, and the pose errors where the true poses are known)."""
  path = pathlib.Path(path) if path else workdirs.first_free_name(pathlib.Path(workdir) / 'export' / FILE_NAME)
  if path.suffix.lower() != '.json':
    raise WorkdirError(f'--out={path}: cameras are written as a transforms.json; name the file with .json.')
  workdirs.check_writable(path.parent, 'the folder of the export')
  workdirs.refuse_existing(path, '--out')
  config, _, state = experiment_lib.restore_model(workdir)
  given = datasets.load_split(config, 'train')
  frame = camera_alignment.RefinedFrame(config, state.group_params, given)
  ended = frame.training()
  frames = []
  for i, name in enumerate(ended.names or [f'{i:04d}' for i in range(ended.num_images)]):
    k = ended.intrinsics.take(i)
    entry = {'file_path': name, 'transform_matrix': _matrix(ended.camtoworlds[i]),
             'given_transform_matrix': _matrix(given.camtoworlds[i]),
             'fl_x': float(k.focal_x), 'fl_y': float(k.focal_y), 'cx': float(k.center_x), 'cy': float(k.center_y),
             'w': int(ended.width), 'h': int(ended.height)}
    if k.distortion is not None:
      entry.update(zip(transforms_json.DISTORTION_KEYS, map(float, k.distortion)))
    frames.append(entry)
  step = int(jax.device_get(state.step))
  errors = frame.pose_errors(config.scene_box)
  meta = {'camera_model': 'OPENCV', 'step': step, 'refined': frame.refined is not None, **errors, 'frames': frames}
  text = json.dumps(meta, indent=2)
  workdirs.write_atomically(path, lambda temporary: temporary.write_text(text), replace=False, what='--out')
  return {'format': 'cameras', 'step': step, 'file': str(path), 'cameras': len(frames),
          'refined': frame.refined is not None, **errors}
