"""A trained workdir's surface as a mesh: `export.py --workdir=DIR --format=mesh`.

The final field's density is sampled on a grid over the scene box (or, for fields that contract space,
over the contracted ball's cube, whose vertices are mapped back to the world), the surface where it
crosses a threshold is found by marching cubes (outputs/geometry.py), and each vertex is coloured by the
field as seen from the nearest training camera. Written as PLY, or OBJ when the file name ends in .obj,
through trimesh, under a temporary name renamed when complete.
"""

import pathlib
import time
from typing import Callable, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxnerf import console
from jaxnerf import datasets
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.ops import coord
from jaxnerf.outputs import geometry
from jaxnerf.training import experiment as experiment_lib
from jaxnerf import workdirs

MESH_SUFFIXES = ('.ply', '.obj')


def final_field_name(model) -> str:
  """The attribute of `model` (a renderer) holding the field of its final level (the coarse one of a NeRF
  trained without a fine level)."""
  for level in ('fine', 'coarse'):
    for name in type(model).LEVEL_FIELDS.get(level, ()):
      field = getattr(model, name, None)
      if field is not None and not isinstance(field, (list, tuple)):
        return name
  raise ConfigError(f'{type(model).__name__} has no field to mesh.')


def field_functions(model, variables, to_world: Callable = lambda points: points):
  """Compiled (density at points [N, 3] -> [N], colour at points and unit view directions [N, 3] -> [N, 3]) of
  `model`'s final field (`final_field_name`) with `variables`; the density's points go through `to_world`
  first."""
  name = final_field_name(model)

  @jax.jit
  def density_at(points):
    return model.apply(variables, to_world(points), method=lambda m, x: getattr(m, name).density(x)[0])

  @jax.jit
  def color_at(points, viewdirs):
    return model.apply(variables, points, viewdirs, method=lambda m, x, d: getattr(m, name)(x, d).rgb)

  return density_at, color_at


def parse_box(values: Optional[Sequence[str]]) -> Optional[Sequence[float]]:
  """--box's strings as 6 floats with each min below its max; None when not given."""
  if values is None:
    return None
  try:
    box = [float(v) for v in values]
  except ValueError:
    box = None
  if box is None or len(box) != 6 or not all(np.isfinite(box)) or not all(
      lo < hi for lo, hi in zip(box[:3], box[3:])):
    raise ConfigError(f'--box={",".join(values)}: expected 6 finite numbers x_min,y_min,z_min,x_max,y_max,'
                      'z_max with each min below its max.')
  return box


def _box_and_mapping(config, box: Optional[Sequence[float]]):
  """(box sampled, map from its points to world points, whether it is contracted space)."""
  if box:
    return tuple(float(v) for v in box), None
  if config.model.warp == 'contract':
    radius = 2.0 * config.model.contract_radius
    return (-radius,) * 3 + (radius,) * 3, lambda y: config.model.contract_radius * coord.uncontract(
        y / config.model.contract_radius)
  if config.scene_box:
    return tuple(float(v) for v in config.scene_box), None
  raise ConfigError('The model has no scene box (config.scene_box) and does not contract space: give the '
                    'region to mesh with --box=x_min,y_min,z_min,x_max,y_max,z_max (world units).')


def export_mesh(workdir, path=None, resolution: int = 256, density_threshold: Optional[float] = None,
                box: Optional[Sequence[float]] = None, chunk_size: int = 65536) -> Dict:
  """Writes the mesh of `workdir`'s newest intact checkpoint to `path` (default workdir/export/mesh.ply);
  returns a report (file, sizes, box, grid, threshold, seconds)."""
  path = pathlib.Path(path or pathlib.Path(workdir) / 'export' / 'mesh.ply')
  if resolution < 2:
    raise ConfigError(f'--resolution={resolution}: expected at least 2 grid vertices per side.')
  if density_threshold is not None and not (np.isfinite(density_threshold) and density_threshold > 0):
    raise ConfigError(f'--density_threshold={density_threshold}: expected a finite density above 0.')
  if path.suffix.lower() not in MESH_SUFFIXES:
    raise WorkdirError(f'--out={path}: a mesh is written as {" or ".join(MESH_SUFFIXES)}; name the file so.')
  if path.is_dir():
    raise WorkdirError(f'--out={path} is a directory; expected the path of the file to write.')
  workdirs.check_writable(path.parent, 'the folder of the export')
  workdirs.refuse_existing(path, '--out')
  started = time.perf_counter()
  config, experiment, state = experiment_lib.restore_model(workdir)
  train_split = datasets.load_split(config, 'train')  # Its cameras colour the vertices.
  if train_split.ndc is not None:
    raise ConfigError('The model was trained in NDC space (config.capture.forward_facing): its density is not '
                      'in world space, so it has no mesh to take out; train with forward_facing=False.')
  model, name = experiment.model, final_field_name(experiment.model)
  variables = jax.tree.map(jnp.asarray, jax.device_get(state.variables))  # On the default device, once.
  sampled_box, to_world = _box_and_mapping(config, box)
  if density_threshold is None:  # Sized by the world region in the box (in contracted space: the inner ball's).
    radius = config.model.contract_radius
    threshold = geometry.default_density_threshold(sampled_box if to_world is None else
                                                   (-radius,) * 3 + (radius,) * 3)
  else:
    threshold = float(density_threshold)
  shape = geometry.grid_shape(sampled_box, resolution)
  console.message(f'Meshing {name} of step {int(state.step)}: box {sampled_box}'
                  f'{" (contracted space)" if to_world else ""}, grid {shape[0]}x{shape[1]}x{shape[2]}, '
                  f'density threshold {threshold:.4g}.')
  world = (lambda y: y) if to_world is None else to_world
  density_at, color_at = field_functions(model, variables, world)
  bar = console.progress(None, 'density grid', total=int(np.prod(shape)), unit='pt')
  density, spacing = geometry.sample_density_grid(lambda p: density_at(jnp.asarray(p)), sampled_box,
                                                  resolution, chunk_size,
                                                  lambda done, total: bar.update(done - bar.n))
  bar.close()
  mesh = geometry.marching_cubes(density, sampled_box, spacing, threshold)
  mesh = mesh._replace(vertices=np.asarray(world(jnp.asarray(mesh.vertices)), np.float32))
  if to_world is not None:  # Beyond the far bound no ray ever looked (and the ball's rim is infinity).
    mesh = geometry.keep_faces(mesh, np.linalg.norm(mesh.vertices, axis=-1) <= config.far)
  vertices = mesh.vertices
  viewdirs = geometry.nearest_camera_viewdirs(vertices, train_split.camtoworlds[:, :3, 3]).astype(np.float32)
  colours = geometry.map_in_chunks(color_at, (vertices, viewdirs), chunk_size)
  _write_mesh(path, vertices, mesh.faces, mesh.normals, colours)
  return {'format': 'mesh', 'step': int(state.step), 'file': str(path), 'file_bytes': path.stat().st_size,
          'vertices': len(vertices), 'faces': len(mesh.faces), 'box': list(sampled_box),
          'contracted': to_world is not None, 'grid': list(shape), 'density_threshold': threshold,
          'seconds': round(time.perf_counter() - started, 1)}


def _write_mesh(path: pathlib.Path, vertices, faces, normals, colours):
  import trimesh  # pylint: disable=import-outside-toplevel  # Only export needs it.
  rgba = np.concatenate([np.clip(np.round(colours * 255), 0, 255), np.full((len(colours), 1), 255)], axis=-1)
  mesh = trimesh.Trimesh(vertices, faces, vertex_normals=normals, vertex_colors=rgba.astype(np.uint8),
                         process=False)
  workdirs.write_new_atomically(path, lambda temporary: mesh.export(temporary, file_type=path.suffix.lower()[1:]),
                               '--out')
