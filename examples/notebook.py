"""The Python API end to end, as a notebook would use it: train the embedded demo scene briefly, load the
trained workdir, read its metrics, score its val views again in memory and render a camera of our own.

  pip install .                                  # or pip install -e . (from the repository root)
  python examples/notebook.py --workdir=runs/notebook --steps=300

It runs from any directory once jaxnerf is installed (the demo's config file is found beside this script;
--config=FILE[:PRESET] trains another config instead). The last line printed is one JSON object with the
figures. docs/api.md explains each call.
"""

import argparse
import json
import pathlib

import numpy as np

from jaxnerf import api
from jaxnerf import cli
from jaxnerf import errors
from jaxnerf import metrics

DEMO_CONFIG = pathlib.Path(__file__).resolve().parents[1] / 'configs' / 'demo.py'


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default=str(DEMO_CONFIG),
                      help='A config file, a preset after a colon (default: configs/demo.py, the embedded demo scene).')
  parser.add_argument('--workdir', default='runs/notebook', help='Where the run trains (resumes if it exists).')
  parser.add_argument('--steps', type=int, default=300, help='Training steps (no time budget).')
  parser.add_argument('--resolution', type=int, default=80,
                      help="Width and height of the images of a procedural scene (the demo's).")
  args = parser.parse_args()
  # Other bad input (a workdir in use or not writable, unreadable data): one line and exit status 1.
  with cli.friendly_errors():
    _train_and_inspect(parser, args)


def _train_and_inspect(parser, args):
  # 1. A config file with overrides (the keys of --config.<key>=<value>); the final evaluation scores every val
  #    view (-1), as the demo's does, so that step 3 scores the same views.
  # 2. Train; the summary is what final/summary.json holds. A bad value is refused before anything is written.
  try:
    config = api.load_config(args.config, {
        'train.num_steps': args.steps, 'train.max_seconds': 0.0, 'procedural.resolution': args.resolution,
        'eval.final_num_images': -1, 'eval.video_frames': 0})
    summary = api.train(config, args.workdir)
  except errors.ConfigError as e:
    parser.error(str(e))
  print(f"trained {summary['step']} steps: val PSNR {summary['val_psnr']:.2f} dB")

  # 3. Load the trained workdir (only read) and score its val views again, in memory.
  model = api.load(args.workdir)
  scores = model.score('val')
  print(f"re-scored {scores['num_images']} val views: PSNR {scores['mean']['psnr']:.2f} dB")

  # 4. Render a camera of our own: the first val camera, twice the size; and that camera at its own size,
  #    scored against its image by hand.
  pose = model.cameras('val')[0]
  large = model.render(pose, width=2 * args.resolution, height=2 * args.resolution)
  val = model.split('val')
  same = model.render(pose, width=val.width, height=val.height, focal=float(val.intrinsics.focal_x[0]))
  by_hand = float(metrics.psnr(same['rgb'], val.images[0]))
  print(f"rendered {large['rgb'].shape[1]}x{large['rgb'].shape[0]} pixels; the first val view scores "
        f'{by_hand:.2f} dB')

  history = model.history()
  print(json.dumps({
      'step': model.step, 'val_psnr': summary['val_psnr'], 'rescored_val_psnr': scores['mean']['psnr'],
      'first_view_psnr': scores['per_image'][0]['psnr'], 'first_view_psnr_by_hand': by_hand,
      'rendered_shape': list(large['rgb'].shape), 'rendered_finite': bool(np.all(np.isfinite(large['rgb']))),
      'training_records': sum(r.get('split') == 'train' for r in history)}))


if __name__ == '__main__':
  main()
