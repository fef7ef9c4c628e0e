"""Photos to scene: structure from motion with pycolmap (COLMAP), from a folder of photos or a video, into the
standard COLMAP layout that the capture readers load (and nerfstudio and multinerf read too):

  <out>/images/<photo names>       the registered photos: undistorted where the camera model has distortion,
                                   else copies (video frames are frame_00001.png, frame_00002.png, ...)
  <out>/sparse/0/*.bin             cameras.bin (PINHOLE or SIMPLE_PINHOLE, matching <out>/images),
                                   images.bin, points3D.bin (and COLMAP 4's rigs.bin and frames.bin)
  <out>/summary.json               what `photos_to_scene` returns

The stages are COLMAP's: SIFT features, matching (exhaustive, or sequential for video frames and large sets),
incremental mapping (the largest model is kept) and undistortion. The scene is built in a hidden directory
beside <out> and renamed into place only once complete, so a failed or interrupted run leaves no half-written
scene. Photos that cannot work (unreadable, of mixed sizes or orientations, too few registered) are refused
with a DatasetError that names them (photos.py checks the photos and takes video frames).
"""

import contextlib
import dataclasses
import json
import math
import pathlib
import shutil
import sys
import tempfile
import time
from typing import Dict, Sequence


from jaxnerf.datasets import colmap
from jaxnerf.datasets import photos as photos_lib
from jaxnerf.datasets.photos import MIN_PHOTOS
from jaxnerf.errors import ConfigError
from jaxnerf.errors import DatasetError

CAMERA_MODELS = ('SIMPLE_RADIAL', 'SIMPLE_PINHOLE', 'PINHOLE', 'RADIAL', 'OPENCV', 'FULL_OPENCV',
                 'SIMPLE_RADIAL_FISHEYE', 'RADIAL_FISHEYE', 'OPENCV_FISHEYE')
DISTORTION_FREE_MODELS = ('SIMPLE_PINHOLE', 'PINHOLE')
MATCHERS = ('auto', 'exhaustive', 'sequential')
# 'auto' matches every pair up to this many photos: the pairs grow quadratically (4950 for 100 photos, about
# two minutes on 2 CPU cores at 800x600); beyond it, each photo with its neighbours in name order.
MAX_EXHAUSTIVE_PHOTOS = 100
SUMMARY_FILE = 'summary.json'
UNDISTORTED_JPEG_QUALITY = 95


class ReconstructionError(DatasetError):
  """Structure from motion registered too few of the photos."""


@dataclasses.dataclass(frozen=True)
class SfmOptions:
  """How to run structure from motion.

  Attributes:
    camera_model: COLMAP camera model fitted to the photos (one of CAMERA_MODELS); models with distortion
      are undistorted to PINHOLE afterwards.
    single_camera: one camera (intrinsics) shared by all photos; else one per photo (e.g. zoom changed),
      whose undistorted images then differ in size by a few pixels unless the model has no distortion.
    matcher: 'exhaustive' (every pair), 'sequential' (each photo with its neighbours in name order, for video
      frames) or 'auto' (sequential for video frames and sets of more than MAX_EXHAUSTIVE_PHOTOS photos).
    max_image_size: photos are scaled down to at most this many pixels on their longer side for feature
      extraction (the cameras stay at full resolution); -1 for none.
    min_registered_fraction: fail unless at least this fraction of the photos (and MIN_PHOTOS) registers.
    overwrite: replace a non-empty output directory.
    num_threads: CPU threads of COLMAP's stages.
    seed: random seed of COLMAP's RANSAC and mapper, for repeatable runs.
    ordered: the photos are consecutive video frames (for 'auto' matching).
  """

  camera_model: str = 'SIMPLE_RADIAL'
  single_camera: bool = True
  matcher: str = 'auto'
  max_image_size: int = 1600
  min_registered_fraction: float = 0.5
  overwrite: bool = False
  num_threads: int = 2
  seed: int = 0
  ordered: bool = False

  def check(self):
    if self.camera_model not in CAMERA_MODELS:
      raise ConfigError(f'--camera_model must be one of {", ".join(CAMERA_MODELS)}, got {self.camera_model!r}.')
    if self.matcher not in MATCHERS:
      raise ConfigError(f'--matcher must be one of {", ".join(MATCHERS)}, got {self.matcher!r}.')
    if not 0.0 <= self.min_registered_fraction <= 1.0:
      raise ConfigError(f'--min_registered_fraction must lie in [0, 1], got {self.min_registered_fraction}.')
    if self.max_image_size != -1 and self.max_image_size < 64:
      raise ConfigError(f'--max_image_size must be at least 64 pixels, or -1 for none; got {self.max_image_size}.')
    if self.num_threads < 1:
      raise ConfigError(f'--num_threads must be at least 1, got {self.num_threads}.')


# ---------------------------------------------------------------------------------------------------------
# Progress.


class _Stages:
  """Prints one line per stage, '<what> ... [<result>,] <seconds> s', and keeps the seconds for the summary;
  a stage sets `result` to report what it found."""

  def __init__(self):
    self.seconds: Dict[str, float] = {}
    self.result = ''

  @contextlib.contextmanager
  def __call__(self, name: str, description: str):
    print(f'{description} ...', end='', file=sys.stderr, flush=True)
    self.result = ''
    start = time.perf_counter()
    try:
      yield
    except BaseException:
      print(' failed', file=sys.stderr, flush=True)
      raise
    self.seconds[name] = round(time.perf_counter() - start, 2)
    result = f' {self.result},' if self.result else ''
    print(f'{result} {self.seconds[name]:.1f} s', file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_colmap():
  """Silences COLMAP while it runs: it logs every step to stderr, and what goes wrong is reported here as a
  DatasetError in plain words."""
  pycolmap = colmap.import_pycolmap()
  level = pycolmap.logging.minloglevel
  pycolmap.logging.minloglevel = 3  # FATAL only.
  try:
    yield
  finally:
    pycolmap.logging.minloglevel = level


# ---------------------------------------------------------------------------------------------------------
# Output directory.


def _check_out_dir(out: pathlib.Path, overwrite: bool, source: pathlib.Path):
  """Refuses an --out that is a file, or not empty (unless `overwrite`), or that holds `source` (the photos or
  video, which replacing it would delete)."""
  if out.exists() and not out.is_dir():
    raise ConfigError(f'--out={out} is a file; expected a directory for the scene.')
  if out.is_dir() and any(out.iterdir()):
    if not overwrite:
      raise ConfigError(f'--out={out} exists and is not empty; choose another directory, or pass --overwrite '
                        'to replace it.')
    if source.resolve().is_relative_to(out.resolve()):
      raise ConfigError(f'--out={out} holds the input {source}, which replacing it would delete; choose '
                        'another --out.')


@contextlib.contextmanager
def _staging_dir(out: pathlib.Path):
  """A new hidden directory beside `out` (same file system, so that it can be renamed into place); removed
  unless it was renamed."""
  out.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
  try:
    yield staging
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: pathlib.Path, out: pathlib.Path):
  """Renames the finished scene to `out`, replacing what is there (only after the new scene is complete)."""
  if out.exists():
    old = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.old-', dir=out.parent))
    out.replace(old / 'scene')
    staging.replace(out)
    shutil.rmtree(old, ignore_errors=True)
  else:
    staging.replace(out)


# ---------------------------------------------------------------------------------------------------------
# Structure from motion.


def _choose_matcher(options: SfmOptions, num_photos: int) -> str:
  if options.matcher != 'auto':
    return options.matcher
  return 'sequential' if options.ordered or num_photos > MAX_EXHAUSTIVE_PHOTOS else 'exhaustive'


def _extract_features(database: pathlib.Path, image_dir: pathlib.Path, names: Sequence[str], options: SfmOptions):
  pycolmap = colmap.import_pycolmap()
  reader = pycolmap.ImageReaderOptions()
  reader.camera_model = options.camera_model
  extraction = pycolmap.FeatureExtractionOptions()
  extraction.num_threads = options.num_threads
  extraction.max_image_size = options.max_image_size
  mode = pycolmap.CameraMode.SINGLE if options.single_camera else pycolmap.CameraMode.PER_IMAGE
  pycolmap.extract_features(database, image_dir, image_names=list(names), camera_mode=mode, reader_options=reader,
                            extraction_options=extraction)
  read = pycolmap.Database.open(database)
  try:
    in_database = {image.name for image in read.read_all_images()}
  finally:
    read.close()
  unread = [name for name in names if name not in in_database]
  if unread:
    raise DatasetError(f'COLMAP could not read {len(unread)} of the photos in {image_dir}: '
                       f'{photos_lib.name_list(unread)}. Save them again as plain 8-bit JPEG or PNG, or leave them '
                       'out.')


def _match_features(database: pathlib.Path, matcher: str, options: SfmOptions):
  pycolmap = colmap.import_pycolmap()
  matching = pycolmap.FeatureMatchingOptions()
  matching.num_threads = options.num_threads
  verification = pycolmap.TwoViewGeometryOptions()
  verification.ransac.random_seed = options.seed
  if matcher == 'exhaustive':
    pycolmap.match_exhaustive(database, matching_options=matching, verification_options=verification)
  else:
    pairing = pycolmap.SequentialPairingOptions()
    pairing.num_threads = options.num_threads
    pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing,
                              verification_options=verification)


def _map(database: pathlib.Path, image_dir: pathlib.Path, model_dir: pathlib.Path, options: SfmOptions):
  """The largest model of COLMAP's incremental mapper (most registered images), or None if it found none."""
  pycolmap = colmap.import_pycolmap()
  mapping = pycolmap.IncrementalPipelineOptions()
  mapping.num_threads = options.num_threads
  mapping.random_seed = options.seed
  mapping.mapper.num_threads = options.num_threads
  mapping.mapper.random_seed = options.seed
  mapping.triangulation.random_seed = options.seed
  mapping.min_model_size = MIN_PHOTOS  # Smaller models than the default 10 too, to say how many registered.
  model_dir.mkdir(parents=True, exist_ok=True)
  models = pycolmap.incremental_mapping(database, image_dir, model_dir, mapping)
  if not models:
    return None
  return max(models.values(), key=lambda model: model.num_reg_images())


def photos_to_scene(photos_dir, out_dir, options: SfmOptions = SfmOptions()) -> dict:
  """Runs structure from motion on a folder of photos and writes the scene to `out_dir` (module docstring).

  Args:
    photos_dir: folder of photos (capture.IMAGE_SUFFIXES), all of one size and orientation.
    out_dir: directory of the scene; must be absent or empty unless options.overwrite.
    options: SfmOptions.

  Returns:
    The summary, also written to out_dir/summary.json: out, images_found, images_registered, unregistered
    (names), mean_reprojection_error (pixels), num_points3d, matcher, camera_model (after undistortion),
    image_size ([width, height] of out_dir/images, None if they differ), stage_seconds and seconds.
  """
  start = time.perf_counter()
  options.check()
  out = pathlib.Path(out_dir)
  _check_out_dir(out, options.overwrite, pathlib.Path(photos_dir))
  stages = _Stages()
  photos = photos_lib.find_photos(photos_dir)
  with stages('check', f'Checking {len(photos)} photos in {photos_dir}'):
    photos_lib.check_photos(photos, options.num_threads)
  with _staging_dir(out) as staging:
    summary = _reconstruct(photos, staging, stages, options, photos_are_ours=False)
    summary = _finish(summary, staging, out, stages, start)
  return summary


def video_to_scene(video, out_dir, num_frames: int = 100, options: SfmOptions = SfmOptions()) -> dict:
  """`photos_to_scene` on `num_frames` frames evenly spaced over a video (named frame_00001.png, ...); 'auto'
  matching is sequential. Returns the summary, with 'video' added."""
  start = time.perf_counter()
  options.check()
  options = dataclasses.replace(options, ordered=True)
  out = pathlib.Path(out_dir)
  _check_out_dir(out, options.overwrite, pathlib.Path(video))
  stages = _Stages()
  with _staging_dir(out) as staging:
    with stages('frames', f'Reading {num_frames} frames of {video}'):
      frames = photos_lib.video_to_photos(video, staging / 'work' / 'frames', num_frames)
      photos_lib.check_photos(frames, options.num_threads)
    summary = _reconstruct(frames, staging, stages, options, photos_are_ours=True)
    summary = _finish({'video': str(video), **summary}, staging, out, stages, start)
  return summary


def _finish(summary: dict, staging: pathlib.Path, out: pathlib.Path, stages: _Stages, start: float) -> dict:
  shutil.rmtree(staging / 'work')
  summary = {'out': str(out), **summary, 'stage_seconds': stages.seconds,
             'seconds': round(time.perf_counter() - start, 1)}
  (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + '\n')
  _move_into_place(staging, out)
  return summary


def _reconstruct(photos: Sequence[pathlib.Path], scene: pathlib.Path, stages: _Stages, options: SfmOptions,
                 photos_are_ours: bool) -> dict:
  """Runs COLMAP's stages on `photos` (all in one folder) and writes images/ and sparse/0/ under `scene`.

  Args:
    photos: the checked photo files.
    scene: the (staging) scene directory; COLMAP's working files go to scene/work.
    stages: prints and times the stages.
    options: SfmOptions.
    photos_are_ours: the photos are files of this run (video frames), to be moved rather than copied.

  Returns:
    The summary of the reconstruction (see photos_to_scene).
  """
  pycolmap = colmap.import_pycolmap()
  image_dir = photos[0].parent
  names = [p.name for p in photos]
  work = scene / 'work'
  work.mkdir(exist_ok=True)
  database = work / 'database.db'
  matcher = _choose_matcher(options, len(photos))
  with _quiet_colmap():
    pycolmap.set_random_seed(options.seed)
    size = '' if options.max_image_size == -1 else f', at most {options.max_image_size} px'
    with stages('features', f'Extracting features of {len(photos)} photos (SIFT{size})'):
      _extract_features(database, image_dir, names, options)
    num_pairs = len(photos) * (len(photos) - 1) // 2
    with stages('matching', f'Matching features ({matcher}' + (f', {num_pairs} pairs)' if matcher == 'exhaustive'
                                                               else ')')):
      _match_features(database, matcher, options)
    with stages('mapping', 'Mapping (incremental)'):
      model = _map(database, image_dir, work / 'models', options)
      stages.result = ('no model' if model is None else
                       f'{model.num_reg_images()} of {len(photos)} photos registered, {model.num_points3D()} points')
    registered = set() if model is None else {model.image(i).name for i in model.reg_image_ids()}
    _check_registered(names, registered, options, matcher, image_dir)
    if model.num_images() != len(registered):  # COLMAP 4 returns models torn down to their registered images.
      raise RuntimeError(f'pycolmap returned a model of {model.num_images()} images, of which only '
                         f'{len(registered)} are registered; images.bin would list photos without a pose.')
    summary = {'images_found': len(photos), 'images_registered': len(registered),
               'unregistered': [name for name in names if name not in registered],
               'mean_reprojection_error': round(float(model.compute_mean_reprojection_error()), 4),
               'num_points3d': model.num_points3D(), 'matcher': matcher}
    sparse = scene / 'sparse' / '0'
    if options.camera_model in DISTORTION_FREE_MODELS:
      with stages('writing', f'Writing the scene ({len(registered)} photos)'):
        (scene / 'images').mkdir()
        for name in sorted(registered):
          (shutil.move if photos_are_ours else shutil.copy2)(image_dir / name, scene / 'images' / name)
        sparse.mkdir(parents=True)
        model.write(sparse)
    else:
      with stages('undistortion', f'Undistorting {len(registered)} photos'):
        model_dir = work / 'registered'
        model_dir.mkdir()
        model.write(model_dir)
        undistorted = work / 'undistorted'
        pycolmap.undistort_images(undistorted, model_dir, image_dir, image_names=sorted(registered),
                                  jpeg_quality=UNDISTORTED_JPEG_QUALITY, num_threads=options.num_threads)
        (undistorted / 'images').replace(scene / 'images')
        sparse.parent.mkdir()
        (undistorted / 'sparse').replace(sparse)
  cameras = pycolmap.Reconstruction(sparse).cameras.values()
  sizes = sorted({(camera.width, camera.height) for camera in cameras})
  if len(sizes) > 1:
    photos_lib.warn(f'undistortion gave the cameras {len(sizes)} sizes ({sizes[0][0]}x{sizes[0][1]} to '
          f'{sizes[-1][0]}x{sizes[-1][1]}), which readers wanting one size refuse; with one camera shared by all '
          'photos (--single_camera) or a model without distortion (PINHOLE) the images keep one size.')
  summary.update(camera_model='/'.join(sorted({camera.model_name for camera in cameras})),
                 image_size=list(sizes[0]) if len(sizes) == 1 else None)
  return summary


def _check_registered(names: Sequence[str], registered: set, options: SfmOptions, matcher: str,
                      image_dir: pathlib.Path):
  """Fails unless enough photos registered; names the others in a warning otherwise."""
  missing = [name for name in names if name not in registered]
  needed = max(MIN_PHOTOS, math.ceil(options.min_registered_fraction * len(names)))
  if len(registered) < needed:
    found = ('no model: COLMAP found no pair of photos to start from' if not registered else
             f'only {len(registered)} of {len(names)} photos registered (at least {needed} needed, '
             f'--min_registered_fraction={options.min_registered_fraction}); not registered: '
             f'{photos_lib.name_list(missing)}')
    raise ReconstructionError(
        f'structure from motion on {image_dir} failed: {found}. The photos need texture and overlap: each '
        'scene point seen from several photos a small step apart, with the camera moving rather than only '
        'turning.' + (' Try --matcher=exhaustive.' if matcher != 'exhaustive' else ''))
  if missing:
    photos_lib.warn(f'{len(missing)} of {len(names)} photos were not registered and are left out of the scene: '
          f'{photos_lib.name_list(missing)}.')
