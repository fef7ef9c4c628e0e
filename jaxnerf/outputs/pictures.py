"""Pictures of a rendering, registered like metrics: what render.py writes, TensorBoard shows and the viewer
offers, for whatever a model renders.

A rendering is a dict of [H, W, ...] host arrays (outputs/chunked.py: 'rgb', 'depth', 'median_depth', 'acc',
and the per-ray composites of a field's extras: 'normals', Ref-NeRF's 'diffuse', 'tint', 'specular', 'roughness',
'normals_pred', ...). A picture is drawn from the rendering key it `renders`, where the rendering holds it:
`register_picture` adds one, and `draw` draws every one a rendering allows. Pictures are [H, W, 3] in [0, 1].
"""

from typing import Callable, Dict, NamedTuple

import numpy as np

from jaxnerf.outputs import visualization


class Frame(NamedTuple):
  """What a picture is drawn against: the scene's depth bounds and the background grey."""

  near: float
  far: float
  background: float


class Picture(NamedTuple):
  draw: Callable  # (rendering, Frame) -> [H, W, 3].
  renders: str  # The rendering's key it draws; the picture exists where the rendering has it.


PICTURES: Dict[str, Picture] = {}


def register_picture(name: str, renders: str = ''):
  """Registers the decorated function (rendering, Frame) -> [H, W, 3] as picture `name` of renderings that
  hold `renders` (default: `name`)."""

  def register(draw):
    PICTURES[name] = Picture(draw, renders or name)
    return draw

  return register


def draw(rendering: Dict[str, np.ndarray], frame: Frame) -> Dict[str, np.ndarray]:
  """{name: [H, W, 3]} of every registered picture whose key `rendering` holds, 'rgb' first."""
  return {name: picture.draw(rendering, frame) for name, picture in PICTURES.items() if picture.renders in rendering}


def _depth(key):
  return lambda r, f: visualization.colorize_depth(r[key], r['acc'], f.near, f.far, f.background)


def _on_background(image, rendering, frame):
  """A per-ray composite [H, W, 3] (weighted by opacity already) shown over the background grey."""
  return np.clip(image + frame.background * (1.0 - rendering['acc'][..., None]), 0.0, 1.0)


register_picture('rgb')(lambda r, f: r['rgb'])
# The expected depth, and the depth in front of which half of a ray's weight lies (sharper at silhouettes).
register_picture('depth')(_depth('depth'))
register_picture('median_depth')(_depth('median_depth'))
register_picture('acc')(lambda r, f: visualization.colorize_opacity(r['acc']))
# World-space normal maps: the density's, and predicted ones (Ref-NeRF's n').
register_picture('normals')(lambda r, f: visualization.colorize_normals(r['normals'], r['acc'], f.background))
register_picture('normals_pred')(
    lambda r, f: visualization.colorize_normals(r['normals_pred'], r['acc'], f.background))
# Ref-NeRF's parts (models/appearance.py): the diffuse colour, the specular tint, what the reflection adds
# (tint x specular colour), and the roughness (turbo, 0 blue to 1 and beyond red). Linear colours, before
# the tone mapping.
register_picture('diffuse')(lambda r, f: _on_background(r['diffuse'], r, f))
register_picture('tint')(lambda r, f: _on_background(r['tint'], r, f))
register_picture('specular')(lambda r, f: _on_background(r['specular'], r, f))
register_picture('roughness')(
    lambda r, f: _on_background(visualization.turbo(r['roughness'][..., 0] / np.maximum(r['acc'], 1e-6))
                                * r['acc'][..., None], r, f))
