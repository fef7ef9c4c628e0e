"""A trained workdir's surface as a mesh: `export.py --workdir=DIR --format=mesh`.

The final field's density is sampled on a grid over the scene box (or, for fields that contract space,
over the contracted ball's cube, whose vertices are mapped back to the world), the surface where it
crosses a threshold is found by marching cubes (outputs/geometry.py), and each vertex is coloured by the
field as seen from the nearest training camera. Written as PLY, or OBJ when the file name ends in .obj,
through trimesh, under a temporary name renamed when complete.
"""

import pathlib
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnerf import console
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.ops import coord
from jaxnerf.outputs import geometry
from jaxnerf.outputs import memory
from jaxnerf.training import camera_alignment
from jaxnerf.training import checkpoints
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
    return model.apply(variables, points, viewdirs, method=lambda m, x, d: getattr(m, name).at_positions(x, d).rgb)

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


def _check_request(path: pathlib.Path, resolution: int, density_threshold: Optional[float]):
  """Refuses flags that cannot work, before anything is read or made."""
  if resolution < 2:
    raise ConfigError(f'--resolution={resolution}: expected at least 2 grid vertices per side.')
  if density_threshold is not None and not (np.isfinite(density_threshold) and density_threshold > 0):
    raise ConfigError(f'--density_threshold={density_threshold}: expected a finite density above 0.')
  if path.suffix.lower() not in MESH_SUFFIXES:
    raise WorkdirError(f'--out={path}: a mesh is written as {" or ".join(MESH_SUFFIXES)}; name the file so.')
  if path.is_dir():
    raise WorkdirError(f'--out={path} is a directory; expected the path of the file to write.')
  workdirs.refuse_existing(path, '--out')


def _memory_budget(config, memory_budget_mb: Optional[float]) -> Tuple[int, str]:
  """(The budget in bytes, where it is set): --memory_budget_mb, else the workdir's config's."""
  if memory_budget_mb is None:
    return memory.budget_bytes(config), f'{memory.BUDGET_KEY} of the workdir, or --memory_budget_mb'
  if not (np.isfinite(memory_budget_mb) and memory_budget_mb > 0):
    raise ConfigError(f'--memory_budget_mb={memory_budget_mb}: expected a finite number of MiB above 0.')
  return int(memory_budget_mb * memory.MB), '--memory_budget_mb'


def _budgeted_chunk(call: memory.BudgetedCall, chunk_size: int, budget: int, held: int, budget_name: str,
                    num_inputs: int) -> int:
  """The points a call of `call` (of `num_inputs` arrays [N, 3]) takes at once within `budget` bytes, of
  which `held` are taken (the grid, or the mesh)."""
  points = lambda n: [jax.ShapeDtypeStruct((n, 3), jnp.float32)] * num_inputs
  where = f'{budget_name}, less the {memory.format_bytes(held)} of the grid or mesh held meanwhile'
  return memory.largest_chunk(lambda n: call.needed_bytes(*points(n)), chunk_size, max(budget - held, 1),
                              what='points', where=where)


def export_mesh(workdir, path=None, resolution: int = 256, density_threshold: Optional[float] = None,
                box: Optional[Sequence[float]] = None, chunk_size: int = 65536,
                memory_budget_mb: Optional[float] = None) -> Dict:
  """Writes the mesh of `workdir`'s newest intact checkpoint to `path` (default workdir/export/mesh.ply);
  returns a report (file, sizes, box, grid, threshold, seconds). Memory stays within `memory_budget_mb`
  (default: the workdir's config.eval.memory_budget_mb): a grid that cannot is refused before any work, and
  a surface whose mesh cannot, before marching cubes."""
  path = pathlib.Path(path) if path else workdirs.first_free_name(pathlib.Path(workdir) / 'export' / 'mesh.ply')
  _check_request(path, resolution, density_threshold)
  started = time.perf_counter()
  config = checkpoints.load_config(workdir)
  budget, budget_name = _memory_budget(config, memory_budget_mb)
  sampled_box, to_world = _box_and_mapping(config, box)
  geometry.check_grid_fits(sampled_box, resolution, budget, budget_name)
  workdirs.check_writable(path.parent, 'the folder of the export')
  config, experiment, state = experiment_lib.restore_model(workdir, config)
  train_split = camera_alignment.training_split(config, state.group_params)  # Its cameras colour the vertices.
  if train_split.ndc is not None:
    raise ConfigError('The model was trained in NDC space (config.capture.forward_facing): its density is not '
                      'in world space, so it has no mesh to take out; train with forward_facing=False.')
  model, name = experiment.model, final_field_name(experiment.model)
  variables = jax.tree.map(jnp.asarray, jax.device_get(state.variables))  # On the default device, once.
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
  density_at, color_at = (memory.BudgetedCall(f, budget) for f in field_functions(model, variables, world))
  chunk = _budgeted_chunk(density_at, chunk_size, budget, geometry.grid_bytes(shape), budget_name, 1)
  bar = console.progress(None, 'density grid', total=int(np.prod(shape)), unit='pt')
  density, spacing = geometry.sample_density_grid(lambda p: density_at(jnp.asarray(p)), sampled_box,
                                                  resolution, chunk, lambda done, total: bar.update(done - bar.n))
  bar.close()
  expected_vertices = geometry.check_surface_fits(density, threshold, budget, budget_name)
  mesh = geometry.marching_cubes(density, sampled_box, spacing, threshold)
  del density  # The colours need the room.
  mesh = mesh._replace(vertices=np.asarray(world(jnp.asarray(mesh.vertices)), np.float32))
  if to_world is not None:  # Beyond the far bound no ray ever looked (and the ball's rim is infinity).
    mesh = geometry.keep_faces(mesh, np.linalg.norm(mesh.vertices, axis=-1) <= config.far)
  vertices = mesh.vertices
  viewdirs = geometry.nearest_camera_viewdirs(vertices, train_split.camtoworlds[:, :3, 3]).astype(np.float32)
  chunk = _budgeted_chunk(color_at, chunk_size, budget, geometry.export_bytes(expected_vertices), budget_name, 2)
  colours = geometry.map_in_chunks(color_at, (vertices, viewdirs), chunk)
  _write_mesh(path, vertices, mesh.faces, mesh.normals, colours)
  return {'format': 'mesh', 'step': int(state.step), 'file': str(path), 'file_bytes': path.stat().st_size,
          'vertices': len(vertices), 'faces': len(mesh.faces), 'box': list(sampled_box),
          'contracted': to_world is not None, 'grid': list(shape), 'density_threshold': threshold,
          'memory_budget_mb': budget / memory.MB, 'seconds': round(time.perf_counter() - started, 1)}


def _write_mesh(path: pathlib.Path, vertices, faces, normals, colours):
  import trimesh  # pylint: disable=import-outside-toplevel  # Only export needs it.
  rgba = np.concatenate([np.clip(np.round(colours * 255), 0, 255), np.full((len(colours), 1), 255)], axis=-1)
  mesh = trimesh.Trimesh(vertices, faces, vertex_normals=normals, vertex_colors=rgba.astype(np.uint8),
                         process=False)
  workdirs.write_atomically(path, lambda temporary: mesh.export(temporary, file_type=path.suffix.lower()[1:]),
                            replace=False, what='--out')
