"""Turning renderings into pictures and files: depth colour maps, PNGs, GIFs and MP4s.

Images are [H, W, 3] float arrays in [0, 1] unless named `*_uint8`.
"""

import pathlib
import warnings
from typing import Sequence

import numpy as np
from PIL import Image

# Polynomial fit of the Turbo colour map (Mikhailov 2019): channel = sum_k coeff_k x^k, k = 0..5.
_TURBO_COEFFS = np.array([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
])


def turbo(x: np.ndarray) -> np.ndarray:
  """Turbo colours [..., 3] of values [...] in [0, 1] (clipped)."""
  x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
  powers = x[..., None] ** np.arange(6)
  return np.clip(powers @ _TURBO_COEFFS.T, 0.0, 1.0).astype(np.float32)


# Scenes whose far bound is this many times their near bound are coloured by disparity (1 / depth), as
# unbounded scenes are sampled: linearly, everything beyond the foreground would be one colour.
DISPARITY_RATIO = 10.0


def colorize_depth(depth: np.ndarray, acc: np.ndarray, near: float, far: float,
                   background: float = 1.0) -> np.ndarray:
  """[H, W, 3] picture of a depth map [H, W]: near is red, far is blue, empty space is `background`.

  The range is the 1st to 99th percentile of the depths of opaque pixels, within [near, far]; depths are
  spaced linearly, or by disparity when far / near >= DISPARITY_RATIO.
  """
  depth, acc = np.asarray(depth, np.float64), np.asarray(acc)
  warp = (lambda x: -1.0 / np.maximum(x, 1e-6)) if far >= DISPARITY_RATIO * near else (lambda x: x)
  opaque = acc > 0.5
  values = depth[opaque] if opaque.any() else depth.ravel()
  lo, hi = np.percentile(values, [1, 99]) if values.size else (near, far)
  lo, hi = warp(max(lo, near)), warp(min(max(hi, lo + 1e-6), far))
  colors = turbo(1.0 - (warp(np.clip(depth, near, far)) - lo) / max(hi - lo, 1e-12))
  return colors * acc[..., None] + background * (1.0 - acc[..., None])


def colorize_normals(normals: np.ndarray, acc: np.ndarray, background: float) -> np.ndarray:
  """[H, W, 3] colours of composited normals [H, W, 3] (normalised, each axis from -1..1 to 0..1, the usual
  normal-map colours), blended by opacity acc [H, W] onto the background grey."""
  unit = normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-10)
  return (0.5 * (unit + 1.0)) * acc[..., None] + background * (1.0 - acc[..., None])


def colorize_opacity(acc: np.ndarray) -> np.ndarray:
  """[H, W, 3] grey picture of accumulated opacity [H, W]: white where opaque, black where empty."""
  return np.repeat(np.clip(np.asarray(acc, np.float32), 0.0, 1.0)[..., None], 3, axis=-1)


def to_uint8(image: np.ndarray) -> np.ndarray:
  return (np.clip(np.nan_to_num(np.asarray(image)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path, image: np.ndarray):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(to_uint8(image)).save(path)


def write_gif(path, frames: Sequence[np.ndarray], fps: int = 20):
  """An endlessly looping GIF of [H, W, 3] frames."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  images = [Image.fromarray(to_uint8(f)) for f in frames]
  images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
                 optimize=False)


def write_mp4(path, frames: Sequence[np.ndarray], fps: int = 20):
  """An H.264 MP4 of [H, W, 3] frames, through the ffmpeg binary that imageio-ffmpeg ships."""
  import imageio_ffmpeg  # Imported here: only videos need it.

  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  frames = [to_uint8(f) for f in frames]
  height, width = frames[0].shape[:2]
  # yuv420p (what players expect) needs even sizes: pad by repeating the last row/column.
  pad = ((0, height % 2), (0, width % 2), (0, 0))
  writer = imageio_ffmpeg.write_frames(str(path), (width + width % 2, height + height % 2), fps=fps,
                                       codec='libx264', pix_fmt_out='yuv420p', macro_block_size=1,
                                       output_params=['-crf', '18'])
  with warnings.catch_warnings():  # Python warns of fork() in a threaded process; ffmpeg exec()s at once.
    warnings.simplefilter('ignore', RuntimeWarning)
    writer.send(None)
  for frame in frames:
    writer.send(np.ascontiguousarray(np.pad(frame, pad, mode='edge')))
  writer.close()
