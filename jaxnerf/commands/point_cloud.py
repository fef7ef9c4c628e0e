"""A trained workdir's surface as points: `export.py --workdir=DIR --format=pointcloud`.

Every --views_stride-th training view is rendered; each pixel whose ray is more opaque than
`min_opacity` gives the point at its rendered depth along the ray, with the rendered colour and, where the
model renders normals (config.model.normals='density'), its normal. Written as binary PLY through plyfile,
under a temporary name renamed when complete.
"""

import pathlib
import time
from typing import Dict

import numpy as np

from jaxnerf import console
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.outputs import chunked
from jaxnerf.training import camera_alignment
from jaxnerf.training import experiment as experiment_lib
from jaxnerf import workdirs


def export_point_cloud(workdir, path=None, views_stride: int = 1, min_opacity: float = 0.5) -> Dict:
  """Writes the point cloud of `workdir`'s newest intact checkpoint to `path` (default
  workdir/export/pointcloud.ply); returns a report (file, points, views, seconds)."""
  path = pathlib.Path(path) if path else workdirs.first_free_name(pathlib.Path(workdir) / 'export' / 'pointcloud.ply')
  if path.suffix.lower() != '.ply':
    raise WorkdirError(f'--out={path}: a point cloud is written as .ply; name the file so.')
  if views_stride < 1:
    raise ConfigError(f'--views_stride={views_stride}: expected a positive integer.')
  if not 0.0 < min_opacity < 1.0:
    raise ConfigError(f'--min_opacity={min_opacity}: expected an opacity strictly between 0 and 1.')
  workdirs.check_writable(path.parent, 'the folder of the export')
  workdirs.refuse_existing(path, '--out')
  started = time.perf_counter()
  config, experiment, state = experiment_lib.restore_model(workdir)
  train_split = camera_alignment.training_split(config, state.group_params)
  if train_split.ndc is not None:
    raise ConfigError('The model was trained in NDC space (config.capture.forward_facing): its depths are not '
                      'world distances, so it has no point cloud to take out; train with forward_facing=False.')
  views = range(0, len(train_split.camtoworlds), views_stride)
  points, colours, normals = [], [], []
  for index in console.progress(views, 'training views', unit='view'):
    # Seen as any camera (camera.ANY_CAMERA): one appearance for every view, as the mesh's colours.
    rays = train_split.rays_of_view(train_split.camtoworlds[index], train_split.intrinsics.take(index),
                                    train_split.width, train_split.height)
    rendering = chunked.render_image(experiment.steps, state.variables, rays, config.eval.chunk_size)
    keep = (rendering['acc'] > min_opacity) & np.isfinite(rendering['depth'])
    depth = rendering['depth'][keep][:, None]
    points.append(np.asarray(rays.origins)[keep] + np.asarray(rays.directions)[keep] * depth)
    colours.append(rendering['rgb'][keep])
    if 'normals' in rendering:
      n = rendering['normals'][keep]
      normals.append(n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12))
  points = np.concatenate(points).astype(np.float32)
  _write_ply(path, points, np.concatenate(colours), np.concatenate(normals) if normals else None)
  return {'format': 'pointcloud', 'step': int(state.step), 'file': str(path), 'file_bytes': path.stat().st_size,
          'points': len(points), 'views': len(views), 'normals': bool(normals), 'min_opacity': min_opacity,
          'seconds': round(time.perf_counter() - started, 1)}


def _write_ply(path: pathlib.Path, points, colours, normals):
  import plyfile  # pylint: disable=import-outside-toplevel  # Only export needs it.
  fields = [('x', 'f4'), ('y', 'f4'), ('z', 'f4')]
  if normals is not None:
    fields += [('nx', 'f4'), ('ny', 'f4'), ('nz', 'f4')]
  fields += [('red', 'u1'), ('green', 'u1'), ('blue', 'u1')]
  vertices = np.empty(len(points), dtype=fields)
  for axis, name in enumerate('xyz'):
    vertices[name] = points[:, axis]
    if normals is not None:
      vertices['n' + name] = normals[:, axis]
  for channel, name in enumerate(('red', 'green', 'blue')):
    vertices[name] = np.clip(np.round(colours[:, channel] * 255), 0, 255).astype(np.uint8)
  workdirs.write_atomically(
      path, lambda temporary: plyfile.PlyData([plyfile.PlyElement.describe(vertices, 'vertex')]).write(
          str(temporary)), replace=False, what='--out')
