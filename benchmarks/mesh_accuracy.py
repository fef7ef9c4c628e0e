"""How close an exported mesh (or point cloud) lies to a scene's true surfaces, as one JSON line.

  python train.py --config=configs/demo_glossy.py --workdir=runs/glossy
  python export.py --workdir=runs/glossy --format=mesh
  python benchmarks/mesh_accuracy.py --workdir=runs/glossy --mesh=runs/glossy/export/mesh.ply

The truth is the surface points that the scene's ground-truth depth maps see (procedural scenes write them;
Blender scenes may): every finite depth of the train and val views, back-projected along its pixel's ray.
Points are drawn uniformly over the mesh's area (--mesh_points); a point cloud's points are taken as
they are. Reports the Chamfer distance both ways in
world units: `mesh_to_truth` (accuracy; it also counts surfaces no camera sees, such as the underside of a
pedestal) and `truth_to_mesh` (completeness), their mean, and the share of truth points within --within of
the mesh.
"""

import json
import pathlib
import sys

import numpy as np
from absl import flags

sys.path.insert(0, '.')

from jaxnerf import cli  # pylint: disable=g-import-not-at-top
from jaxnerf import datasets
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import geometry
from jaxnerf.training import checkpoints

def truth_points(config) -> np.ndarray:
  """World points [N, 3] of every finite ground-truth depth of the scene's train and val views."""
  points = []
  for split in ('train', 'val'):
    if not datasets.has_split(config, split):
      continue
    scene = datasets.load_split(config, split)
    if scene.depths is None:
      continue
    for index in range(len(scene.depths)):
      rays, depth = scene.rays_of_image(index), scene.depths[index]
      hit = np.isfinite(depth)
      points.append(np.asarray(rays.origins)[hit] + np.asarray(rays.directions)[hit] * depth[hit][:, None])
  if not points:
    raise ConfigError(f'{config.data_dir or config.dataset}: the scene has no ground-truth depth maps to '
                      'measure a mesh against.')
  return np.concatenate(points).astype(np.float32)


def load_mesh(path: str):
  """(vertices [V, 3] float32, faces [F, 3] int32; none for a point cloud) of the PLY or OBJ file `path`."""
  import trimesh  # pylint: disable=import-outside-toplevel
  if not pathlib.Path(path).is_file():
    raise ConfigError(f'--mesh={path} does not exist or is not a file: export one first (python export.py '
                      '--workdir=DIR --format=mesh).')
  try:
    loaded = trimesh.load(path, process=False)
    vertices = np.asarray(loaded.vertices, np.float32).reshape(-1, 3)
    faces = np.asarray(getattr(loaded, 'faces', np.zeros((0, 3))), np.int32).reshape(-1, 3)
  except Exception as e:  # pylint: disable=broad-except  # Whatever trimesh raises for a file it cannot read.
    raise ConfigError(f'--mesh={path} is not a mesh or point cloud that trimesh reads ({type(e).__name__}: '
                      f'{str(e)[:120]}); expected a PLY or OBJ file, as export.py writes.') from None
  if not len(vertices):
    raise ConfigError(f'--mesh={path} holds no vertices: nothing to measure.')
  if not np.all(np.isfinite(vertices)):
    raise ConfigError(f'--mesh={path}: {int(np.sum(~np.isfinite(vertices).all(-1)))} of its vertices are '
                      'not finite.')
  return vertices, faces


def check_flags(mesh_points: int, within: float):
  """Refuses values that would measure nothing (NaN, Infinity) before anything is loaded."""
  if mesh_points <= 0:
    raise ConfigError(f'--mesh_points={mesh_points}: expected a positive number of points to draw.')
  if not within > 0 or not np.isfinite(within):
    raise ConfigError(f'--within={within}: expected a positive, finite distance (world units).')


def main(argv):
  del argv
  with cli.friendly_errors():
    check_flags(_MESH_POINTS.value, _WITHIN.value)
    cli.initialize()
    config = checkpoints.load_config(_WORKDIR.value)
    vertices, faces = load_mesh(_MESH.value)
    truth = truth_points(config)
    surface = (geometry.sample_surface(geometry.Mesh(vertices, faces, np.zeros_like(vertices)),
                                       _MESH_POINTS.value) if len(faces) else vertices)
    mesh_to_truth, truth_to_mesh = geometry.chamfer_distance(surface, truth)
    from scipy import spatial  # pylint: disable=import-outside-toplevel
    near = spatial.cKDTree(surface).query(truth)[0] < _WITHIN.value
    print(json.dumps({'mesh': _MESH.value, 'vertices': len(vertices), 'faces': len(faces),
                      'truth_points': len(truth), 'mesh_to_truth': mesh_to_truth, 'truth_to_mesh': truth_to_mesh,
                      'chamfer': (mesh_to_truth + truth_to_mesh) / 2,
                      f'truth_within_{_WITHIN.value:g}': float(np.mean(near))}))


if __name__ == '__main__':  # (Flags defined here: the tests import this file.)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Trained workdir (for its scene).', required=True)
  _MESH = flags.DEFINE_string('mesh', None, 'Mesh or point cloud written by export.py --format=mesh|pointcloud.',
                              required=True)
  _MESH_POINTS = flags.DEFINE_integer('mesh_points', 200_000, 'Points drawn over the mesh.')
  _WITHIN = flags.DEFINE_float('within', 0.02, 'Distance (world units) for the share of truth points near it.')
  cli.run(main)
