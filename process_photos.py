"""Turns a folder of photos, or a video, into a scene for training: structure from motion with COLMAP (pycolmap).

  python process_photos.py --photos=path/to/photos --out=data/mug
  python process_photos.py --video=mug.mp4 --frames=150 --out=data/mug
  python train.py --config=configs/capture.py --config.data_dir=data/mug

Writes the standard COLMAP layout (images/, sparse/0/, and summary.json), printing one line per stage and at
the end the summary as a JSON line: photos found and registered, mean reprojection error, 3D points, seconds.
Photos must share one size and orientation. The scene appears at --out only once complete; an --out that is
not empty is replaced only with --overwrite.
"""

import json

from absl import flags

from jaxnerf import cli
from jaxnerf.datasets import structure_from_motion as sfm

_PHOTOS = flags.DEFINE_string('photos', None, 'Folder of photos (.jpg, .jpeg, .png), all of one size and '
                              'orientation.')
_VIDEO = flags.DEFINE_string('video', None, 'A video to take frames from instead of --photos.')
_FRAMES = flags.DEFINE_integer('frames', 100, 'With --video: frames to take, evenly spaced over the video.')
_OUT = flags.DEFINE_string('out', None, 'Directory of the scene to write.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace --out if it exists and is not empty.')
_CAMERA_MODEL = flags.DEFINE_enum('camera_model', 'SIMPLE_RADIAL', list(sfm.CAMERA_MODELS),
                                  'COLMAP camera model; models with distortion are undistorted to PINHOLE.')
_SINGLE_CAMERA = flags.DEFINE_bool('single_camera', True, 'One camera shared by all photos (one lens, fixed '
                                   'zoom); --nosingle_camera fits one per photo (best with --camera_model=PINHOLE: '
                                   'undistortion gives each photo its own size).')
_MATCHER = flags.DEFINE_enum('matcher', 'auto', list(sfm.MATCHERS),
                             'Which photo pairs to match: every pair (exhaustive), neighbours in name order '
                             '(sequential), or auto: sequential for --video and more than '
                             f'{sfm.MAX_EXHAUSTIVE_PHOTOS} photos, else exhaustive.')
_MAX_IMAGE_SIZE = flags.DEFINE_integer('max_image_size', sfm.SfmOptions.max_image_size,
                                       'Longer side, in pixels, to which photos are scaled down for feature '
                                       'extraction (faster; the scene keeps full resolution); -1 for none.')
_MIN_REGISTERED_FRACTION = flags.DEFINE_float('min_registered_fraction', sfm.SfmOptions.min_registered_fraction,
                                              'Fail unless at least this fraction of the photos registers (and '
                                              f'at least {sfm.MIN_PHOTOS}).')
_NUM_THREADS = flags.DEFINE_integer('num_threads', sfm.SfmOptions.num_threads, 'CPU threads of COLMAP.')


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  if (_PHOTOS.value is None) == (_VIDEO.value is None):
    cli.exit_with_usage_error('give either --photos=DIR or --video=FILE.')
  if _OUT.value is None:
    cli.exit_with_usage_error('give --out=DIR, the directory of the scene to write.')
  with cli.friendly_errors():
    cli.initialize()  # SIGTERM stops like Ctrl-C, so that the unfinished scene is removed.
    options = sfm.SfmOptions(camera_model=_CAMERA_MODEL.value, single_camera=_SINGLE_CAMERA.value,
                             matcher=_MATCHER.value, max_image_size=_MAX_IMAGE_SIZE.value,
                             min_registered_fraction=_MIN_REGISTERED_FRACTION.value, overwrite=_OVERWRITE.value,
                             num_threads=_NUM_THREADS.value)
    if _VIDEO.value is not None:
      summary = sfm.video_to_scene(_VIDEO.value, _OUT.value, _FRAMES.value, options)
    else:
      summary = sfm.photos_to_scene(_PHOTOS.value, _OUT.value, options)
    print(json.dumps(summary))


if __name__ == '__main__':
  cli.run(main)
