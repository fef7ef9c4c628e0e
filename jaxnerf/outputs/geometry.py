"""Geometry out of a trained field: a mesh by marching cubes over its density, and distances between surfaces.

Naming conventions:
- `box`: (x_min, y_min, z_min, x_max, y_max, z_max) of the region meshed, in the space the density is
  sampled in (world units; for contracted fields, the contracted space).
- `resolution`: grid vertices along the box's longest side; the other sides get as many as keep the cells
  cubic.
- `density_threshold`: the iso-level of the surface, in the field's density (per world unit).
- `vertices` [V, 3] float32 and `faces` [F, 3] int32 (counter-clockwise seen from outside, where the
  density is below the threshold).
"""

import math
from typing import Callable, NamedTuple, Sequence, Tuple

import numpy as np

from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import memory


class Mesh(NamedTuple):
  vertices: np.ndarray  # [V, 3] float32.
  faces: np.ndarray  # [F, 3] int32.
  normals: np.ndarray  # [V, 3] float32, unit, pointing out (down the density).


def grid_shape(box: Sequence[float], resolution: int) -> Tuple[int, int, int]:
  """Vertices per axis of a grid over `box` with `resolution` along its longest side and cubic cells."""
  if resolution < 2:
    raise ConfigError(f'--resolution={resolution}: expected at least 2 grid vertices per side.')
  if len(box) != 6:
    raise ConfigError(f'box {tuple(box)}: expected 6 numbers (x_min, y_min, z_min, x_max, y_max, z_max).')
  sizes = np.asarray(box[3:], np.float64) - np.asarray(box[:3], np.float64)
  if not np.all(sizes > 0):
    raise ConfigError(f'box {tuple(box)}: expected each min below its max.')
  cell = sizes.max() / (resolution - 1)
  return tuple(int(max(2, math.floor(size / cell + 1e-6) + 1)) for size in sizes)


def default_density_threshold(box: Sequence[float]) -> float:
  """The density at which a slab 1% of the box's diagonal thick is half opaque: ln 2 / (0.01 diagonal)."""
  return math.log(2.0) / (0.01 * math.dist(box[:3], box[3:]))


def _call_padded(fn: Callable, arrays: Sequence[np.ndarray], chunk_size: int) -> np.ndarray:
  """fn(*arrays) of arrays of at most `chunk_size` rows, padded to that size with their last row (so that a
  compiled fn is traced once) and cut back to theirs."""
  count = len(arrays[0])
  padded = [np.concatenate([a, np.repeat(a[-1:], chunk_size - count, axis=0)]) for a in arrays]
  return np.asarray(fn(*padded))[:count]


def map_in_chunks(fn: Callable, arrays: Sequence[np.ndarray], chunk_size: int,
                  progress: Callable = lambda done, total: None) -> np.ndarray:
  """fn(*chunks) over `arrays` (each [N, ...]) in chunks of `chunk_size` rows, concatenated ([N, ...]). The
  last chunk is padded to that size with its last row, so that a compiled fn is traced once; progress(rows
  done, N) is called after each chunk."""
  total, outputs = len(arrays[0]), []
  for start in range(0, total, chunk_size):
    outputs.append(_call_padded(fn, [a[start:start + chunk_size] for a in arrays], chunk_size))
    progress(start + len(outputs[-1]), total)
  return np.concatenate(outputs)


def grid_bytes(shape: Sequence[int]) -> int:
  """The bytes of a float32 density grid of `shape`."""
  return 4 * math.prod(shape)


def check_grid_fits(box: Sequence[float], resolution: int, budget: int, budget_name: str):
  """Refuses (ConfigError, before any work) a grid over `box` at `resolution` whose density grid alone takes
  more than `budget` bytes: marching cubes needs the whole grid in memory. Says what it would take and the
  largest resolution within the budget (`budget_name` names where the budget is set)."""
  shape = grid_shape(box, resolution)
  if grid_bytes(shape) <= budget:
    return
  low, high = 2, resolution  # The largest resolution whose grid fits lies in [low - 1, high).
  while low < high:
    middle = (low + high) // 2
    low, high = (middle + 1, high) if grid_bytes(grid_shape(box, middle)) <= budget else (low, middle)
  fits = f'the largest whose grid fits it is {low - 1}' if low > 2 else 'no grid fits it'
  raise ConfigError(f'--resolution={resolution}: the density grid of {shape[0]}x{shape[1]}x{shape[2]} vertices '
                    f'takes {memory.format_bytes(grid_bytes(shape))} as float32, and marching cubes needs it '
                    f'whole: over the memory budget of {memory.format_bytes(budget)} ({budget_name}); {fits}.')


def _grid_points(axes: Sequence[np.ndarray], shape: Sequence[int], start: int, stop: int) -> np.ndarray:
  """The vertices [stop - start, 3] of the grid with `axes` (each [n_i]) at flat (C-order) indices [start,
  stop)."""
  i, j, k = np.unravel_index(np.arange(start, stop), shape)
  return np.stack([axes[0][i], axes[1][j], axes[2][k]], axis=-1)


def sample_density_grid(density_fn: Callable, box: Sequence[float], resolution: int, chunk_size: int,
                        progress: Callable = lambda done, total: None) -> Tuple[np.ndarray, np.ndarray]:
  """The density at every vertex of the grid over `box` (`grid_shape`), sampled in slabs of `chunk_size`
  consecutive vertices (rows of the grid): beside the grid itself, memory holds one slab's points.

  Args:
    density_fn: points [N, 3] (numpy float32) -> density [N]; called with chunks of `chunk_size` points
      (the last one padded to that size, so that a compiled function is traced once).
    progress: called as progress(points done, points in all) after each chunk.

  Returns:
    (density [nx, ny, nz] float32, spacing [3]: the cell's size per axis).
  """
  shape = grid_shape(box, resolution)
  low, high = np.asarray(box[:3], np.float32), np.asarray(box[3:], np.float32)
  axes = [np.linspace(low[i], high[i], shape[i], dtype=np.float32) for i in range(3)]
  density = np.empty(shape, np.float32)
  flat, non_finite = density.reshape(-1), 0
  for start in range(0, flat.size, chunk_size):
    stop = min(start + chunk_size, flat.size)
    flat[start:stop] = _call_padded(density_fn, [_grid_points(axes, shape, start, stop)], chunk_size)
    non_finite += int(np.sum(~np.isfinite(flat[start:stop])))
    progress(stop, flat.size)
  if non_finite:
    raise CheckpointError(f'the field gave {non_finite} non-finite densities in the box: the checkpoint is '
                          'damaged or its training diverged.')
  return density, (high - low) / (np.asarray(shape, np.float32) - 1)


def surface_vertices(density: np.ndarray, density_threshold: float, slab_vertices: int = 1 << 22) -> int:
  """The edges of the grid `density` [nx, ny, nz] whose two vertices lie on both sides of
  `density_threshold`: marching cubes puts one vertex on each (scikit-image's Lewiner variant adds a few
  inside ambiguous cells: 4% more on noise), and about two triangles per vertex. Counted in slabs of about
  `slab_vertices` grid vertices along x, so that memory holds one slab's tests beside the grid."""
  planes = max(1, slab_vertices // (density.shape[1] * density.shape[2]))
  count = 0
  for start in range(0, density.shape[0], planes):
    above = density[start:start + planes + 1] > density_threshold  # With the next slab's first plane.
    own = above[:planes]
    count += np.count_nonzero(above[1:] != above[:-1]) + np.count_nonzero(own[:, 1:] != own[:, :-1])
    count += np.count_nonzero(own[:, :, 1:] != own[:, :, :-1])
  return int(count)


# Host memory per vertex of the mesh (`surface_vertices`), bounding what was measured on noise and on smooth
# surfaces (docs/rendering.md, "Meshes and point clouds"): marching cubes' output and working lists, beside the grid;
# then, once the grid is freed, the mesh, its view directions and colours, and the file's encoding.
MARCHING_BYTES_PER_VERTEX = 256
EXPORT_BYTES_PER_VERTEX = 640


def export_bytes(vertices: int) -> int:
  """What a mesh of about `vertices` vertices takes from marching cubes to its file, the grid freed."""
  return vertices * EXPORT_BYTES_PER_VERTEX


def check_surface_fits(density: np.ndarray, density_threshold: float, budget: int, budget_name: str) -> int:
  """The vertices of the surface's mesh (`surface_vertices`); refuses (ConfigError, before marching cubes)
  a surface whose mesh would take more than `budget` bytes, with the grid while marching and then alone."""
  vertices = surface_vertices(density, density_threshold)
  needed = max(grid_bytes(density.shape) + vertices * MARCHING_BYTES_PER_VERTEX, export_bytes(vertices))
  if needed > budget:
    raise ConfigError(f'the surface at the density threshold {density_threshold:.4g} crosses {vertices} of the '
                      f'grid\'s edges: its mesh would take about {memory.format_bytes(needed)}, over the memory '
                      f'budget of {memory.format_bytes(budget)} ({budget_name}); a lower --resolution or a '
                      'threshold the field crosses less often (--density_threshold) needs less.')
  return vertices


def marching_cubes(density: np.ndarray, box: Sequence[float], spacing: np.ndarray,
                   density_threshold: float) -> Mesh:
  """The surface where `density` [nx, ny, nz] (sampled over `box`) crosses `density_threshold` (Lorensen and
  Cline 1987, through scikit-image's Lewiner variant), in the box's coordinates. Raises ConfigError when the
  density never crosses the threshold inside the box."""
  from skimage import measure  # pylint: disable=import-outside-toplevel  # Only export needs it.
  if not density.min() < density_threshold < density.max():
    raise ConfigError(f'the density in the box runs from {density.min():.3g} to {density.max():.3g}: no '
                     f'surface at the threshold {density_threshold:.3g}; choose a --density_threshold '
                     'inside that range.')
  vertices, faces, normals, _ = measure.marching_cubes(density, density_threshold, spacing=tuple(spacing),
                                                       gradient_direction='descent')
  vertices = vertices + np.asarray(box[:3], np.float32)
  return Mesh(vertices.astype(np.float32), faces.astype(np.int32), normals.astype(np.float32))


def keep_faces(mesh: Mesh, keep_vertex: np.ndarray) -> Mesh:
  """The mesh with only the faces whose three vertices `keep_vertex` [V] (bool) keeps, and the vertices
  they use (renumbered)."""
  faces = mesh.faces[np.all(keep_vertex[mesh.faces], axis=-1)]
  used = np.unique(faces)
  renumber = np.full(len(mesh.vertices), -1, np.int32)
  renumber[used] = np.arange(len(used), dtype=np.int32)
  return Mesh(mesh.vertices[used], renumber[faces], mesh.normals[used])


def nearest_camera_viewdirs(points: np.ndarray, camera_origins: np.ndarray) -> np.ndarray:
  """Unit directions [N, 3] from the camera origin [C, 3] nearest each point [N, 3] to that point: the view
  under which a point's colour was seen best in training."""
  from scipy import spatial  # pylint: disable=import-outside-toplevel
  _, nearest = spatial.cKDTree(camera_origins).query(points)
  directions = points - camera_origins[nearest]
  return directions / np.maximum(np.linalg.norm(directions, axis=-1, keepdims=True), 1e-12)


def chamfer_distance(points_a: np.ndarray, points_b: np.ndarray) -> Tuple[float, float]:
  """(mean distance from each point of a [N, 3] to its nearest in b [M, 3], and from b to a). Their mean is
  the symmetric Chamfer distance; the first alone measures how far a's surface strays from b's."""
  from scipy import spatial  # pylint: disable=import-outside-toplevel
  a_to_b = spatial.cKDTree(points_b).query(points_a)[0]
  b_to_a = spatial.cKDTree(points_a).query(points_b)[0]
  return float(np.mean(a_to_b)), float(np.mean(b_to_a))


def sample_surface(mesh: Mesh, num_points: int, seed: int = 0) -> np.ndarray:
  """`num_points` points [num_points, 3] uniformly over the mesh's area (for Chamfer distances that do not
  depend on how finely it is triangulated)."""
  triangles = mesh.vertices[mesh.faces].astype(np.float64)  # [F, 3 corners, 3].
  areas = 0.5 * np.linalg.norm(np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0]),
                               axis=-1)
  rng = np.random.default_rng(seed)
  chosen = rng.choice(len(areas), num_points, p=areas / areas.sum())
  u, v = rng.random((2, num_points, 1))
  flip = u + v > 1  # Reflect the points of the parallelogram's far half back into the triangle.
  u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
  t = triangles[chosen]
  return (t[:, 0] + u * (t[:, 1] - t[:, 0]) + v * (t[:, 2] - t[:, 0])).astype(np.float32)
