"""Renders a trained model from its workdir: a split with metrics, or a camera-path video.

  python render.py                                           # The newest workdir under runs/, test split.
  python render.py --workdir=runs/lego --split=val --data_dir=/path/to/nerf_synthetic/lego
  python render.py --workdir=runs/demo --path=orbit --frames=120
  python render.py --workdir=runs/fern --path=spiral         # LLFF's spiral; ellipse, interpolate, auto.
  python render.py --packed=runs/bitnerf/export/packed.npz   # A model that export.py wrote.
  python render.py --workdir=runs/demo --step=best           # The best checkpoint (config.train.keep_best).
  python render.py --workdir=runs/cup --appearance=IMG_0042    # Every view in one training photo's appearance.

The split defaults to test, or val where the scene has no test split (it says so). Outputs go to
<workdir>/render/<scene>/<split or path>_<step>/: <name>.png, <name>_depth.png and metrics.json (per-image
and mean PSNR/SSIM/LPIPS), or <path>.gif, <path>.mp4 and those of depth, normals, ... (--pictures).
"""

from absl import flags

from jaxnerf import cli
from jaxnerf.commands import render
from jaxnerf import console
from jaxnerf.ops import camera_paths
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to render from (default: the one under '
                               'runs/ with the newest checkpoint).')
_SPLIT = flags.DEFINE_enum('split', None, ['test', 'val', 'train'],
                           'Split to render and score (default: test, or val where there is no test split).')
_PATH = flags.DEFINE_enum('path', None, list(camera_paths.PATHS),
                          'Render a camera path instead of a split: orbit (synthetic scenes), spiral '
                          '(forward-facing captures), ellipse (inward-facing captures), interpolate (through '
                          'the training cameras), auto (the one that fits the scene).')
_FRAMES = flags.DEFINE_integer('frames', 120, 'Frames of the camera path.')
_FPS = flags.DEFINE_integer('fps', 30, 'Frames per second of the videos.')
_MIN_SIZE = flags.DEFINE_integer('min_size', None, 'Pixels on the video frames\' shorter side, at least '
                                 '(default: the config\'s eval.video_min_size).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Read the scene from here instead of the saved config.')
_LIMIT = flags.DEFINE_integer('limit', -1, 'Render only the first N images of the split (-1: all).')
_CHUNK = flags.DEFINE_integer('chunk_size', None, 'Rays per device call (default: the saved config).')
_LPIPS = flags.DEFINE_list('lpips', None, 'LPIPS networks to score the split with, comma-separated: alex, vgg, '
                           'or none (default: the run\'s config.eval.lpips).')
_PACKED = flags.DEFINE_string('packed', None, 'Render the model that export.py wrote to this file instead of '
                              'a workdir\'s checkpoint; outputs go to render/ beside the file.')
_STEP = flags.DEFINE_string('step', None, 'Render the checkpoint of this step (a number), or \'best\' '
                            '(config.train.keep_best\'s), instead of the newest intact one.')
_APPEARANCE = flags.DEFINE_string(
    'appearance', render.MEAN_APPEARANCE, 'What per-image components (models/conditioning.py: a code per '
    'training image, ...) take for every view: mean (over the training images), zero, or the name of a '
    'training image, whose appearance every view then takes.')
_PICTURES = flags.DEFINE_list('pictures', None, 'With --path: the pictures written as videos beside the colour, '
                              'comma-separated: depth, normals, diffuse, acc, ... (default: the run\'s '
                              'config.eval.video_pictures; each where the model renders it).')
_DISTRIBUTED = cli.define_distributed_flags()


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.friendly_errors():
    cli.initialize(_DISTRIBUTED)
    workdir, packed = _WORKDIR.value, _PACKED.value
    if workdir and packed:
      cli.exit_with_usage_error('give --workdir (a checkpoint) or --packed (an exported model), not both')
    step = cli.checkpoint_step('--step', _STEP.value)
    if step is not None and packed:
      cli.exit_with_usage_error('--step chooses a checkpoint of a workdir; --packed is one exported model')
    if _MIN_SIZE.value is not None and _MIN_SIZE.value < 0:
      cli.exit_with_usage_error(f'--min_size={_MIN_SIZE.value}: expected a number of pixels >= 0 (0: the '
                                'training images\' size)')
    if workdir is None and packed is None:
      workdir = render.newest_workdir()
      console.message(f'Rendering {workdir}, the workdir under runs/ with the newest checkpoint.')
    if _PATH.value:
      summary = render.render_path_video(workdir, _PATH.value, _FRAMES.value, _FPS.value,
                                                 _DATA_DIR.value, _CHUNK.value, _MIN_SIZE.value, packed, step,
                                                 _APPEARANCE.value, _PICTURES.value)
    else:
      lpips_nets = None if _LPIPS.value is None else [net for net in _LPIPS.value if net != 'none']
      summary = render.render_split(workdir, _SPLIT.value, _DATA_DIR.value, _LIMIT.value,
                                            _CHUNK.value, packed, lpips_nets, step, _APPEARANCE.value)
    cli.print_summary(summary, workdir)


if __name__ == '__main__':
  cli.run(main)
