"""Appearance codes (config.model.appearance_embedding) at equal steps, as JSON lines: val PSNR with the mean
code, NeRF-W's half-image score (a code fitted on the left half of each view, the right half scored), and the
right half's PSNR of every run alike (read from the final renders, so runs without codes compare too).

  python benchmarks/appearance_codes.py --scene=demo --steps=600 --out=/tmp/codes
  python benchmarks/appearance_codes.py --scene=cup --steps=1500 --out=/tmp/codes_cup \
      --data_dir=../shared/data/captures/cup

Runs, each in <out>/<run>: for the demo, 'clean' (configs/demo.py), 'drift' (configs/demo.py:exposure:
training photos at gains 0.5x-2x and white balance +-20%, val views clean) and 'drift_codes' (the same with
codes of --dim); for the cup, 'plain' and 'codes' (configs/capture.py:cpu). Training runs for --steps steps
(no time budget, so that runs compare at equal steps; each line gives its training seconds beside). --out
must not exist.
"""

import json
import pathlib
import sys

import numpy as np
from absl import app
from absl import flags
from PIL import Image

sys.path.insert(0, '.')  # So that config files import configs.default when run from the repo root.

from configs import capture  # pylint: disable=g-import-not-at-top
from configs import demo
from jaxnerf import cli
from jaxnerf import datasets
from jaxnerf import metrics
from jaxnerf.training import trainer
from jaxnerf import workdirs

_SCENE = flags.DEFINE_enum('scene', 'demo', ['demo', 'cup'], 'The procedural demo, or a real capture.')
_STEPS = flags.DEFINE_integer('steps', 600, 'Training steps of every run.')
_DIM = flags.DEFINE_integer('dim', 32, 'Length of the appearance codes of the runs with codes.')
_OUT = flags.DEFINE_string('out', None, 'A new folder for the runs.', required=True)
_DATA_DIR = flags.DEFINE_string('data_dir', '../shared/data/captures/cup', 'The capture (--scene=cup).')
_RUNS = flags.DEFINE_list('runs', None, 'Only these runs (default: all of the scene).')


def _configs():
  """{run name: config} of the scene."""
  if _SCENE.value == 'demo':
    runs = {'clean': (demo.get_config(), 0), 'drift': (demo.get_config('exposure'), 0),
            'drift_codes': (demo.get_config('exposure'), _DIM.value)}
  else:
    runs = {name: (capture.get_config('cpu'), dim) for name, dim in (('plain', 0), ('codes', _DIM.value))}
  for config, dim in runs.values():
    if _SCENE.value == 'cup':
      config.data_dir = _DATA_DIR.value
    config.model.appearance_embedding.dim = dim
    config.train.update(num_steps=_STEPS.value, max_seconds=0.0)
    config.eval.update(video_frames=0, lpips=())
  unknown = sorted(set(_RUNS.value or ()) - set(runs))
  if unknown:
    cli.exit_with_usage_error(f'--runs={",".join(_RUNS.value)}: unknown run {unknown[0]!r}; the {_SCENE.value} '
                              f'scene has {", ".join(runs)}.')
  return {name: config for name, (config, _) in runs.items() if not _RUNS.value or name in _RUNS.value}


def right_half_psnr(workdir: pathlib.Path, config) -> float:
  """Mean PSNR over the final val renders' right halves (8-bit PNGs) against the val images."""
  split = datasets.load_split(config, 'val')
  values = []
  for index, name in enumerate(split.names):
    path = workdir / 'final' / 'val' / f'{name}.png'
    if not path.is_file():
      continue
    rendered = np.asarray(Image.open(path).convert('RGB'), np.float32) / 255.0
    half = split.width // 2
    values.append(float(metrics.psnr(rendered[:, half:], split.images[index][:, half:])))
  return float(np.mean(values))


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.friendly_errors():
    out = pathlib.Path(_OUT.value)
    workdirs.refuse_existing(out, '--out')
    for name, config in _configs().items():
      summary = trainer.train_and_evaluate(config, out / name)
      record = {'scene': _SCENE.value, 'run': name, 'dim': config.model.appearance_embedding.dim,
                'step': summary['step'], 'train_seconds': round(summary['train_seconds'], 1),
                'val_psnr_mean_code': round(summary['val_psnr'], 3),
                'val_psnr_right_half': round(right_half_psnr(out / name, config), 3)}
      if 'val_psnr_fitted_code' in summary:
        record['val_psnr_fitted_code'] = round(summary['val_psnr_fitted_code'], 3)
      print(json.dumps(record), flush=True)


if __name__ == '__main__':
  app.run(main)
