"""Renders a trained model from its workdir: a split with metrics, or a 360-degree orbit video.

  python render.py --workdir=runs/demo                       # Test split (val if there is no test split).
  python render.py --workdir=runs/lego --split=val --data_dir=/path/to/nerf_synthetic/lego
  python render.py --workdir=runs/demo --path=orbit --frames=120

Outputs go to <workdir>/render/<split or orbit>_<step>/: <name>.png, <name>_depth.png and metrics.json
(per-image and mean PSNR/SSIM), or orbit.gif, orbit.mp4 and their depth versions.
"""

from absl import app
from absl import flags

from jaxnerf import cli
from jaxnerf import render_outputs

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to render from.', required=True)
_SPLIT = flags.DEFINE_enum('split', 'test', ['test', 'val', 'train'], 'Split to render and score.')
_PATH = flags.DEFINE_enum('path', None, ['orbit'], 'Render a camera path instead of a split.')
_FRAMES = flags.DEFINE_integer('frames', 120, 'Frames of the orbit.')
_FPS = flags.DEFINE_integer('fps', 30, 'Frames per second of the orbit videos.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Read the scene from here instead of the saved config.')
_LIMIT = flags.DEFINE_integer('limit', -1, 'Render only the first N images of the split (-1: all).')
_CHUNK = flags.DEFINE_integer('chunk_size', None, 'Rays per device call (default: the saved config).')
_MULTIHOST = flags.DEFINE_bool('multihost', False, 'Call jax.distributed.initialize() first.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  with cli.friendly_errors():
    cli.initialize(_MULTIHOST.value)
    if _PATH.value == 'orbit':
      summary = render_outputs.render_orbit_video(_WORKDIR.value, _FRAMES.value, _FPS.value, _DATA_DIR.value,
                                                  _CHUNK.value)
    else:
      summary = render_outputs.render_split(_WORKDIR.value, _SPLIT.value, _DATA_DIR.value, _LIMIT.value,
                                            _CHUNK.value)
    cli.print_summary(summary, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
