"""Tests of jaxnerf.ops.hash_grid (instant-ngp's multiresolution hash encoding) and models.HashGridField.

References are written independently of the library: the paper's level formula in high-precision decimal
arithmetic, Eq. 4's hash in Python integers, and trilinear interpolation one point, level and corner at a
time in plain Python.
"""

import decimal
import functools
import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf import models
from jaxnerf.ops import hash_grid

pytestmark = pytest.mark.device  # Numerics that GPUs compute their own way (benchmarks/gpu_check.py).

PRIMES = (1, 2654435761, 805459861)  # Eq. 4, written out again rather than read from the library.


def _exact_resolutions(num_levels, n_min, n_max):
  """floor(N_min * b^l), b = exp((ln N_max - ln N_min) / (L - 1)), in 50-digit decimal arithmetic."""
  if num_levels == 1:
    return [n_min]
  with decimal.localcontext() as ctx:
    ctx.prec = 50
    growth = ((decimal.Decimal(n_max).ln() - decimal.Decimal(n_min).ln()) / (num_levels - 1)).exp()
    # Decimal rounding may leave N_min * b^(L-1) a hair below N_max; snap values within 1e-30 of an integer.
    values = [decimal.Decimal(n_min) * growth**level for level in range(num_levels)]
    return [int((v + decimal.Decimal('1e-30')).to_integral_value(rounding=decimal.ROUND_FLOOR)) for v in values]


@pytest.mark.parametrize('num_levels, n_min, n_max', [
    (16, 16, 2048),  # The paper's NeRF setting.
    (16, 16, 512),
    (8, 16, 4096),
    (5, 3, 48),  # b = 2 exactly: every level is an integer that a float rounding below would lose.
    (13, 1, 4096),  # b = 2 exactly.
    (7, 10, 10**6),
    (3, 2, 8),
    (2, 16, 512),
    (4, 16, 16),  # b = 1.
    (1, 16, 512),  # A single level is the coarsest.
])
def test_level_resolutions_match_the_papers_formula(num_levels, n_min, n_max):
  resolutions = hash_grid.level_resolutions(num_levels, n_min, n_max)
  assert resolutions == _exact_resolutions(num_levels, n_min, n_max)
  assert all(isinstance(n, int) for n in resolutions)
  assert resolutions[0] == n_min
  if num_levels > 1:
    assert resolutions[-1] == n_max  # Not lost to rounding below the integer.
  assert resolutions == sorted(resolutions)


def test_level_resolutions_known_values():
  # b = 2^(5/15) = 2^(1/3): 16 * 2^(l/3).
  expected = [math.floor(16 * 2 ** (level / 3) + 1e-9) for level in range(16)]
  assert hash_grid.level_resolutions(16, 16, 512) == expected
  assert expected[:4] == [16, 20, 25, 32]
  assert hash_grid.level_resolutions(1, 7, 100) == [7]


def test_level_table_sizes():
  # (N + 1)^3: 27, 125, 729, 4913, 35937.
  assert hash_grid.level_table_sizes([2, 4, 8, 16, 32], 4096) == [27, 125, 729, 4096, 4096]
  assert hash_grid.level_table_sizes([2, 4, 8], 125) == [27, 125, 125]  # Exactly fits: dense.
  assert hash_grid.level_table_sizes([2, 4, 8], 124) == [27, 124, 124]
  assert hash_grid.level_table_sizes([16], 2**19) == [17**3]


@pytest.mark.parametrize('resolution, table_size', [(1, 8), (2, 27), (4, 2**7), (7, 1000), (15, 2**12)])
def test_dense_vertex_index_is_a_bijection(resolution, table_size):
  side = resolution + 1
  assert side**3 <= table_size
  vertices = np.array(list(itertools.product(range(side), repeat=3)), np.int32)[:, ::-1]  # x fastest.
  index = np.asarray(hash_grid.vertex_index(jnp.asarray(vertices), resolution, table_size))
  assert index.dtype == np.int32
  np.testing.assert_array_equal(np.sort(index), np.arange(side**3))
  # Row-major with x fastest: neighbours along x get neighbouring entries.
  np.testing.assert_array_equal(index, np.arange(side**3))


def _brute_force_hash(vertex, table_size):
  x, y, z = (int(v) for v in vertex)
  return ((x * PRIMES[0]) ^ (y * PRIMES[1]) ^ (z * PRIMES[2])) % 2**32 % table_size


@pytest.mark.parametrize('resolution, table_size', [
    (4, 2**6),
    (2048, 2**19),
    (512, 2**15),
    (100, 1000),  # Not a power of two: the modulo, not the mask.
    (2048, 12345),
])
def test_hashed_vertex_index_matches_eq_4(resolution, table_size):
  assert (resolution + 1) ** 3 > table_size
  rng = np.random.default_rng(resolution + table_size)
  vertices = np.concatenate([
      rng.integers(0, resolution + 1, (200, 3)),
      rng.integers(0, 2**31 - 1, (50, 3)),  # Large coordinates: products wrap around 2^32.
      [[0, 0, 0], [resolution, resolution, resolution], [2**31 - 1, 2**31 - 1, 2**31 - 1], [1, 0, 0]],
  ]).astype(np.int32)
  index = np.asarray(hash_grid.vertex_index(jnp.asarray(vertices), resolution, table_size))
  assert index.dtype == np.int32
  assert np.all((index >= 0) & (index < table_size))
  np.testing.assert_array_equal(index, [_brute_force_hash(v, table_size) for v in vertices])
  # pi_1 = 1: neighbours along x differ in the low bits only (cache coherence).
  assert _brute_force_hash((1, 0, 0), table_size) == 1


def _brute_force_index(vertex, resolution, table_size):
  side = resolution + 1
  if side**3 <= table_size:
    x, y, z = vertex
    return x + side * (y + side * z)
  return _brute_force_hash(vertex, table_size)


def _brute_force_level(point, table, resolution):
  """Trilinear interpolation at one point, corner by corner; also returns {index: summed weight}."""
  table = np.asarray(table, np.float64)
  cell, fraction = [], []
  for coordinate in point:
    scaled = min(max(float(coordinate), 0.0), 1.0) * resolution  # Clamped onto the unit cube.
    c = min(int(math.floor(scaled)), resolution - 1)  # x = 1 lies in the last cell.
    cell.append(c)
    fraction.append(scaled - c)
  features = np.zeros(table.shape[1])
  weights = {}
  for offset in itertools.product((0, 1), repeat=3):
    weight = 1.0
    for axis in range(3):
      weight *= fraction[axis] if offset[axis] else 1.0 - fraction[axis]
    index = _brute_force_index([cell[a] + offset[a] for a in range(3)], resolution, table.shape[0])
    features += weight * table[index]
    weights[index] = weights.get(index, 0.0) + weight
  return features, weights


def _brute_force_encode(points, tables, resolutions):
  points = np.asarray(points, np.float64)
  out = []
  for point in points.reshape(-1, 3):
    out.append(np.concatenate([_brute_force_level(point, t, n)[0] for t, n in zip(tables, resolutions)]))
  return np.array(out).reshape(points.shape[:-1] + (-1,))


RESOLUTIONS = [2, 4, 8]


def _tables(max_table_size, num_features=2, seed=0):
  rng = np.random.default_rng(seed)
  sizes = hash_grid.level_table_sizes(RESOLUTIONS, max_table_size)
  return [jnp.asarray(rng.normal(size=(s, num_features)), jnp.float32) for s in sizes]


# Compiled once per configuration: eager dispatch of every small op would dominate the test time.
_encode = jax.jit(hash_grid.encode, static_argnums=2)
_interpolate_level = jax.jit(hash_grid.interpolate_level, static_argnums=2)
_vertex_index = jax.jit(hash_grid.vertex_index, static_argnums=(1, 2))


@pytest.mark.parametrize('max_table_size', [
    2**6,  # Level 0 dense (27 entries), levels 1, 2 hashed.
    100,  # Hashed levels with a non-power-of-two table.
    1000,  # All dense.
])
def test_encode_matches_brute_force(max_table_size):
  assert hash_grid.level_resolutions(3, 2, 8) == RESOLUTIONS
  tables = _tables(max_table_size)
  rng = np.random.default_rng(1)
  points = np.concatenate([
      rng.uniform(0.0, 1.0, (40, 3)),
      rng.uniform(-0.5, 1.5, (10, 3)),  # Partly outside: clamped onto the cube.
      [[1.0, 1.0, 1.0], [1.0, 0.3, 0.7], [0.0, 0.0, 0.0], [0.0, 1.0, 0.5], [1.0, 0.5, 0.25]],  # Faces.
      [[-3.0, 0.2, 0.4], [0.2, 7.0, 0.4], [-1.0, -1.0, 2.0]],
  ]).astype(np.float32).reshape(2, 29, 3)
  actual = _encode(jnp.asarray(points), tables, tuple(RESOLUTIONS))
  chex.assert_shape(actual, (2, 29, 2 * len(RESOLUTIONS)))
  expected = _brute_force_encode(points, tables, RESOLUTIONS)
  np.testing.assert_allclose(actual, expected, atol=2e-5, rtol=0)
  # Documented clamping: outside points encode as their projection onto the cube.
  clamped = _encode(jnp.asarray(np.clip(points, 0.0, 1.0)), tables, tuple(RESOLUTIONS))
  np.testing.assert_allclose(actual, clamped, atol=1e-6, rtol=0)


def test_interpolate_level_matches_brute_force_per_level():
  tables = _tables(2**6, num_features=3, seed=2)
  points = np.random.default_rng(3).uniform(-0.2, 1.2, (30, 3)).astype(np.float32)
  for table, n in zip(tables, RESOLUTIONS):
    actual = _interpolate_level(jnp.asarray(points), table, n)
    expected = np.array([_brute_force_level(p, table, n)[0] for p in points])
    np.testing.assert_allclose(actual, expected, atol=2e-5, rtol=0)


def test_vertices_reproduce_table_entries():
  tables = _tables(2**6, seed=4)  # Level 0 dense, levels 1 and 2 hashed.
  finest = RESOLUTIONS[-1]
  # Every vertex of the finest level (k / 8 is exact in float32), x = 1 included.
  vertices = np.array(list(itertools.product(range(finest + 1), repeat=3)), np.int32)
  points = jnp.asarray(vertices / finest, jnp.float32)
  index = _vertex_index(jnp.asarray(vertices), finest, tables[-1].shape[0])
  np.testing.assert_allclose(_interpolate_level(points, tables[-1], finest), tables[-1][index],
                             atol=1e-6, rtol=0)
  # Vertices of the coarsest level are vertices of every level: the encoding is their entries, concatenated.
  coarse = vertices[np.all(vertices % (finest // RESOLUTIONS[0]) == 0, axis=-1)]
  expected = []
  for table, n in zip(tables, RESOLUTIONS):
    level_vertex = jnp.asarray(coarse * n // finest, jnp.int32)
    expected.append(table[_vertex_index(level_vertex, n, table.shape[0])])
  np.testing.assert_allclose(_encode(jnp.asarray(coarse / finest, jnp.float32), tables, tuple(RESOLUTIONS)),
                             jnp.concatenate(expected, axis=-1), atol=1e-6, rtol=0)


def test_encode_is_continuous_across_cell_faces():
  tables = _tables(2**6, seed=5)
  rng = np.random.default_rng(6)
  points = rng.uniform(0.05, 0.95, (60, 3))
  # Put one coordinate of each point on a face of the finest level (every coarser face is one too).
  axis = rng.integers(0, 3, 60)
  points[np.arange(60), axis] = rng.integers(1, RESOLUTIONS[-1], 60) / RESOLUTIONS[-1]
  step = np.zeros((60, 3))
  step[np.arange(60), axis] = 1e-6
  below = _encode(jnp.asarray(points - step, jnp.float32), tables, tuple(RESOLUTIONS))
  above = _encode(jnp.asarray(points + step, jnp.float32), tables, tuple(RESOLUTIONS))
  # Slopes are at most N * 2 * max|entry| ~ 8 * 2 * 4: a jump of order 1 would be a discontinuity.
  np.testing.assert_allclose(below, above, atol=2e-4, rtol=0)
  far_apart = _encode(jnp.asarray(points + 10 * step * 1e4, jnp.float32), tables, tuple(RESOLUTIONS))
  assert float(jnp.max(jnp.abs(far_apart - below))) > 1e-2  # The check above is not vacuous.


@pytest.mark.parametrize('max_table_size', [2**6, 100, 1000])
def test_gradients_reach_exactly_the_touched_entries(max_table_size):
  tables = _tables(max_table_size, seed=7)
  points = np.random.default_rng(8).uniform(0.0, 1.0, (5, 3)).astype(np.float32)
  grads = jax.jit(jax.grad(lambda t: jnp.sum(hash_grid.encode(jnp.asarray(points), t, RESOLUTIONS))))(tables)
  for grad, table, n in zip(grads, tables, RESOLUTIONS):
    expected = np.zeros(table.shape[0])
    for point in points:
      for index, weight in _brute_force_level(point, table, n)[1].items():
        expected[index] += weight
    grad = np.asarray(grad)
    chex.assert_tree_all_finite(grad)
    for feature in range(table.shape[1]):  # Every feature of an entry gets the same weight.
      np.testing.assert_allclose(grad[:, feature], expected, atol=1e-5, rtol=0)
      np.testing.assert_array_equal(grad[:, feature] != 0, expected > 0)
    assert 0 < np.count_nonzero(expected) <= 8 * len(points)
    np.testing.assert_allclose(grad.sum(axis=0), len(points), rtol=1e-5)  # Weights sum to 1 per point.


def test_gradients_finite_at_extremes():
  tables = _tables(2**6, seed=9)
  points = jnp.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1e-30, 1.0 - 1e-7, 0.5], [-1e6, 1e6, 0.5]],
                     jnp.float32)
  loss = lambda x, t: jnp.sum(hash_grid.encode(x, t, RESOLUTIONS) ** 2)
  grad_x, grad_tables = jax.jit(jax.grad(loss, argnums=(0, 1)))(points, tables)
  chex.assert_tree_all_finite((grad_x, grad_tables))
  np.testing.assert_array_equal(grad_x[3, :2], 0.0)  # Clamped coordinates have no influence.
  assert float(jnp.abs(grad_x[3, 2])) > 0  # The coordinate inside the cube does.


def test_hash_grid_field_shapes_and_initialisation():
  field = models.HashGridField(scene_box=(-1.0, 0.0, 2.0, 1.0, 4.0, 3.0), num_levels=4, features_per_level=2,
                               log2_table_size=8, min_resolution=2, max_resolution=16, density_width=16,
                               geo_features=7, color_depth=1, color_width=16, view_max_deg=2)
  rng = np.random.default_rng(10)
  points = jnp.asarray(rng.uniform(-1.0, 4.0, (2, 3, 5, 3)), jnp.float32)
  viewdirs = jnp.asarray(rng.normal(size=(2, 3, 5, 3)), jnp.float32)
  viewdirs /= jnp.linalg.norm(viewdirs, axis=-1, keepdims=True)
  variables = jax.jit(functools.partial(field.init, method='at_positions'))(jax.random.PRNGKey(0), points, viewdirs)
  apply = jax.jit(functools.partial(field.apply, method='at_positions'))
  out = apply(variables, points, viewdirs)
  chex.assert_shape(out.rgb, (2, 3, 5, 3))
  chex.assert_shape(out.density, (2, 3, 5))
  chex.assert_type([out.rgb, out.density], jnp.float32)
  chex.assert_tree_all_finite(out)
  assert float(out.density.min()) > 0 and 0 < float(out.rgb.min()) and float(out.rgb.max()) < 1

  resolutions = hash_grid.level_resolutions(4, 2, 16)
  assert resolutions == [2, 4, 8, 16]
  sizes = hash_grid.level_table_sizes(resolutions, 2**8)
  assert sizes == [27, 125, 256, 256]
  params = variables['params']
  for level, size in enumerate(sizes):
    table = np.asarray(params[f'table_{level}'])
    assert table.shape == (size, 2)
    assert np.all(np.abs(table) <= 1e-4)
    assert table.max() > 5e-5 and table.min() < -5e-5  # Spread over the range, not all zero.
  assert sorted(name for name in params if name.startswith('table_')) == [f'table_{l}' for l in range(4)]

  # The box maps onto the unit cube, which is clamped: points outside it act as their projection on it.
  box_min, box_max = np.array([-1.0, 0.0, 2.0]), np.array([1.0, 4.0, 3.0])
  projected = jnp.asarray(np.clip(np.asarray(points), box_min, box_max), jnp.float32)
  assert not np.allclose(projected, points)
  # Large table entries, so that a wrong mapping changes the output visibly.
  big = jax.tree_util.tree_map_with_path(
      lambda path, p: p * 1e4 if 'table_' in jax.tree_util.keystr(path) else p, variables)
  out, out_projected = apply(big, points, viewdirs), apply(big, projected, viewdirs)
  np.testing.assert_allclose(out[0], out_projected[0], atol=1e-5)
  np.testing.assert_allclose(out[1], out_projected[1], atol=1e-5)
  inside = jnp.asarray(box_min + 0.5 * (box_max - box_min), jnp.float32)
  moved = apply(big, jnp.broadcast_to(inside, points.shape), viewdirs)
  assert float(jnp.max(jnp.abs(moved[1] - out[1]))) > 1e-3  # The outputs do depend on the point.
