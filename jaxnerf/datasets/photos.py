"""The photos a capture starts from: finding them in a folder, checking that they can be reconstructed together
(every file decodes; one size and one EXIF orientation), and taking evenly spaced frames from a video.
Each refusal is a DatasetError naming the files at fault."""

import concurrent.futures
import pathlib
import sys
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

from jaxnerf.datasets.capture import IMAGE_SUFFIXES
from jaxnerf.errors import ConfigError
from jaxnerf.errors import DatasetError

MIN_PHOTOS = 3
FRAME_NAME = 'frame_{:05d}.png'
EXIF_ORIENTATION = 0x0112  # 1 is upright; 5-8 turn the stored pixels by 90 degrees when shown.


def warn(text: str):
  print(f'warning: {text}', file=sys.stderr, flush=True)


def name_list(names: Sequence[str], limit: int = 10) -> str:
  """'a.jpg, b.jpg' (the first `limit` names, then how many more)."""
  names = list(names)
  shown = ', '.join(names[:limit])
  return shown + (f' and {len(names) - limit} more' if len(names) > limit else '')


def _photo_layout(path: pathlib.Path) -> tuple:
  """(width, height, EXIF orientation) of a photo, decoding it (at reduced scale where the format allows) so
  that truncated or corrupt files are found here rather than by COLMAP. Raises OSError and the like."""
  with Image.open(path) as image:
    size = image.size
    orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
    image.draft('RGB', (max(1, size[0] // 8), max(1, size[1] // 8)))  # JPEG only: decodes at 1/8 scale.
    image.load()
  return size[0], size[1], orientation


def _describe_layout(layout: tuple) -> str:
  width, height, orientation = layout
  shown = ' shown turned by 90 degrees' if orientation >= 5 else ''
  return f'{width}x{height}' + (f' with EXIF orientation {orientation}{shown}' if orientation != 1 else '')


def check_photos(paths: Sequence[pathlib.Path], num_threads: int = 2) -> tuple:
  """Checks that photos can be reconstructed together: every file decodes, there are at least MIN_PHOTOS, and
  all have one size and EXIF orientation (COLMAP and the readers use the stored pixels, so a portrait photo
  among landscape ones would be a camera of another shape).

  Args:
    paths: the photo files.
    num_threads: threads decoding them.

  Returns:
    (width, height) of the photos as stored.
  """
  paths = [pathlib.Path(p) for p in paths]

  def layout_or_error(path):
    try:
      return _photo_layout(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
      return f'{path.name} ({e})'

  with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as pool:
    layouts = list(pool.map(layout_or_error, paths))
  unreadable = [layout for layout in layouts if isinstance(layout, str)]
  if unreadable:
    folder = paths[0].parent
    raise DatasetError(f'{len(unreadable)} of the {len(paths)} photos in {folder} could not be read as images: '
                       f'{name_list(unreadable, 5)}. Remove or replace them.')
  if len(paths) < MIN_PHOTOS:
    raise DatasetError(f'found {len(paths)} photo(s) ({name_list([p.name for p in paths])}); structure from '
                       f'motion needs at least {MIN_PHOTOS}, and a good scene 30 or more.')
  groups: Dict[tuple, List[str]] = {}
  for path, layout in zip(paths, layouts):
    groups.setdefault(layout, []).append(path.name)
  if len(groups) > 1:
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    majority = f'{len(ranked[0][1])} are {_describe_layout(ranked[0][0])}'
    others = '; '.join(f'{len(names)} are {_describe_layout(layout)}: {name_list(names)}'
                       for layout, names in ranked[1:])
    raise DatasetError(f'the photos in {paths[0].parent} differ in size or orientation ({majority}; {others}). '
                       'All photos must share one size and orientation (e.g. all landscape): rotate or resize '
                       'the others to match, or leave them out.')
  width, height, _ = layouts[0]
  return width, height


def find_photos(photos_dir) -> List[pathlib.Path]:
  """The photos (IMAGE_SUFFIXES) in `photos_dir`, sorted by name; other files are named in a warning."""
  directory = pathlib.Path(photos_dir)
  if not directory.is_dir():
    raise DatasetError(f'{directory} is not a directory: expected a folder of photos '
                       f'({", ".join(IMAGE_SUFFIXES)}).')
  files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith('.'))
  photos = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
  ignored = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
  if not photos:
    raise DatasetError(f'{directory} holds no photos: expected files ending in {", ".join(IMAGE_SUFFIXES)}.')
  if ignored:
    warn(f'ignoring {len(ignored)} file(s) in {directory} that are not {"/".join(IMAGE_SUFFIXES)}: '
          f'{name_list(ignored)}.')
  return photos


def video_to_photos(video, out_dir, num_frames: int = 100) -> List[pathlib.Path]:
  """Writes `num_frames` frames evenly spaced over a video (all of them, if it has fewer) as
  out_dir/frame_00001.png, frame_00002.png, ...

  Args:
    video: a video file ffmpeg reads (.mp4, .mov, ...); its rotation metadata is applied.
    out_dir: directory for the frames (created).
    num_frames: how many frames to take, at least MIN_PHOTOS.

  Returns:
    The frame files, in the order of the video.
  """
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top  # Only videos need it.
  video, out_dir = pathlib.Path(video), pathlib.Path(out_dir)
  if num_frames < MIN_PHOTOS:
    raise ConfigError(f'--frames must be at least {MIN_PHOTOS}, got {num_frames}.')
  if not video.is_file():
    raise DatasetError(f'{video} does not exist: expected a video file.')
  try:
    total, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
  except (RuntimeError, OSError) as e:
    raise DatasetError(f'{video} could not be read as a video: {_last_line(e)}') from None
  if not total:
    raise DatasetError(f'{video} holds no video frames.')
  wanted = np.unique(np.round(np.linspace(0, total - 1, min(num_frames, total))).astype(int))
  # ffmpeg decodes every frame but passes on only the wanted ones; setpts renumbers them so that the output,
  # at the video's frame rate, has no gaps for ffmpeg to fill with repeated frames.
  selection = '+'.join(f'eq(n,{i})' for i in wanted)
  reader = imageio_ffmpeg.read_frames(str(video),
                                      output_params=['-vf', f"select='{selection}',setpts=N/FRAME_RATE/TB"])
  out_dir.mkdir(parents=True, exist_ok=True)
  paths = []
  try:
    width, height = next(reader)['size']
    for index, frame in enumerate(reader):
      pixels = np.frombuffer(frame, np.uint8).reshape(height, width, 3)
      path = out_dir / FRAME_NAME.format(index + 1)
      Image.fromarray(pixels).save(path)
      paths.append(path)
  except (RuntimeError, OSError, StopIteration) as e:
    raise DatasetError(f'{video} could not be read as a video: {_last_line(e)}') from None
  finally:
    reader.close()
  if len(paths) < MIN_PHOTOS:
    raise DatasetError(f'{video}: read {len(paths)} frame(s); structure from motion needs at least {MIN_PHOTOS}.')
  return paths


def _last_line(error: Exception) -> str:
  """The last line of an error's message (ffmpeg's says what went wrong last, after its whole log)."""
  lines = str(error).strip().splitlines()
  return lines[-1].strip() if lines else type(error).__name__
