"""Occupancy grid for empty-space skipping (instant-ngp, Mueller et al. 2022, App. E.2; nerfacc's update).

The scene box is divided into `resolution`^3 cells. Each cell keeps an exponential moving average of the
density seen at random points inside it; cells whose average exceeds a threshold are *occupied*, and ray
marching evaluates the field only at samples in occupied cells.

Naming conventions:
- `box`: the scene's axis-aligned box (x_min, y_min, z_min, x_max, y_max, z_max).
- `cell`: integer cell coordinates (i, j, k), i along x, [..., 3] int32; `cell_index` its flat row-major
  index i + R * (j + R * k), so a grid array [R^3] flattens x fastest.
- `density_ema`: [R^3] float32, the running density estimate of every cell; negative (UNMEASURED) until the
  cell's first measurement. Unmeasured cells count as occupied: nothing is skipped before it is known empty.
- `occupied`: [R^3] bool, the bit field that ray marching reads.
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxnerf.ops import coord
UNMEASURED = -1.0  # The density estimate of a cell that was never measured.


def cell_of(points, box: Sequence[float], resolution: int):
  """Cell coordinates [..., 3] int32 of points [..., 3], and whether each point is inside the box [...]."""
  unit = coord.to_unit_cube(points, box)
  inside = coord.inside_unit_cube(unit)
  cell = jnp.clip(jnp.floor(unit * resolution), 0, resolution - 1).astype(jnp.int32)
  return cell, inside


def flat_index(cell, resolution: int):
  """Row-major flat index [...] of cell coordinates [..., 3]."""
  return cell[..., 0] + resolution * (cell[..., 1] + resolution * cell[..., 2])


def unflatten_index(cell_index, resolution: int):
  """Cell coordinates [..., 3] of flat indices [...]; the inverse of `flat_index`."""
  i = cell_index % resolution
  j = (cell_index // resolution) % resolution
  k = cell_index // (resolution * resolution)
  return jnp.stack([i, j, k], axis=-1)


def is_occupied(occupied, points, box: Sequence[float], resolution: int):
  """Whether points [..., 3] lie in occupied cells, [...] bool; points outside the box are never occupied."""
  cell, inside = cell_of(points, box, resolution)
  return inside & occupied[flat_index(cell, resolution)]


def random_points_in_cells(key, cell_index, box: Sequence[float], resolution: int):
  """One uniformly random point [..., 3] inside each cell of flat indices cell_index [...]."""
  offset = jax.random.uniform(key, cell_index.shape + (3,))
  return coord.from_unit_cube((unflatten_index(cell_index, resolution) + offset) / resolution, box)


def cells_to_update(key, occupied, num_uniform: int, num_occupied: int):
  """Flat indices of the cells one update samples: `num_uniform` cells drawn uniformly and `num_occupied`
  drawn among the occupied ones (all with replacement), as instant-ngp does after its warm-up. Drawing from
  the occupied cells refreshes the cells that rendering relies on more often than empty ones.

  Returns:
    [num_uniform + num_occupied] int32. Without occupied cells, the second group is uniform too.
  """
  num_cells = occupied.shape[0]
  uniform_key, occupied_key = jax.random.split(key)
  uniform = jax.random.randint(uniform_key, (num_uniform,), 0, num_cells, jnp.int32)
  # Inverse-CDF sampling of the occupied cells: the k-th draw lands on the cell where the running count of
  # occupied cells first exceeds a uniform draw in [0, count).
  counts = jnp.cumsum(occupied | ~jnp.any(occupied), dtype=jnp.int32)
  draws = jax.random.randint(occupied_key, (num_occupied,), 0, counts[-1], jnp.int32)
  among_occupied = jnp.searchsorted(counts, draws, side='right').astype(jnp.int32)
  return jnp.concatenate([uniform, among_occupied])


def update_density(density_ema, cell_index, densities, decay: float):
  """The moving average after densities [N] were measured in cells cell_index [N]: every measured cell
  becomes max(decay * old, the largest density measured in it); the others keep their value.

  A cell measured several times decays once. Taking the max (not a weighted mean) keeps thin structures that
  a random point found once (instant-ngp's update; nerfacc's `_update`).
  """
  measured = jnp.zeros(density_ema.shape, bool).at[cell_index].set(True)
  decayed = jnp.where(measured, density_ema * decay, density_ema)
  return decayed.at[cell_index].max(densities)


def threshold_occupied(density_ema, density_threshold: float):
  """The bit field: unmeasured cells, and cells whose average density exceeds min(mean density of the
  measured cells, density_threshold).

  The mean keeps a grid of uniformly low densities (early in training) from emptying at once (nerfacc).
  """
  measured = density_ema >= 0.0
  mean = jnp.sum(jnp.where(measured, density_ema, 0.0)) / jnp.maximum(jnp.sum(measured), 1)
  return ~measured | (density_ema > jnp.minimum(mean, density_threshold))
