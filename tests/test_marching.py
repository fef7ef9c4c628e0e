"""Tests of jaxnerf.ops.marching and packed volume rendering: packing against a brute-force loop, packed
rendering equal to rendering the same samples unpacked, overflow, extremes and gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import compositing
from jaxnerf.ops import marching
_pack = jax.jit(marching.pack, static_argnums=1)
_repack = jax.jit(marching.repack, static_argnums=2)
_render_packed = jax.jit(compositing.volume_render_packed, static_argnums=5)
_render = jax.jit(compositing.volume_render, static_argnums=5)


def _brute_force_pack(selected, capacity):
  """Slot by slot: the selected (ray, step) pairs in ray-major order, cut at capacity."""
  pairs = [(r, m) for r in range(selected.shape[0]) for m in range(selected.shape[1]) if selected[r, m]]
  counts = selected.sum(axis=1)
  complete = (np.cumsum(counts) <= capacity) | (counts == 0)  # A ray with no samples has none to lose.
  return pairs[:capacity], complete


@pytest.mark.parametrize('capacity', [40, 97, 200])
def test_pack_matches_brute_force(capacity):
  rng = np.random.default_rng(capacity)
  selected = rng.uniform(size=(13, 17)) < 0.4
  selected[-2] = False  # An empty ray after the buffer overflowed is still complete.
  packed = _pack(jnp.asarray(selected), capacity)
  pairs, complete = _brute_force_pack(selected, capacity)
  n = len(pairs)
  np.testing.assert_array_equal(packed.valid, np.arange(capacity) < n)
  np.testing.assert_array_equal(packed.ray_index[:n], [r for r, _ in pairs])
  np.testing.assert_array_equal(packed.step_index[:n], [m for _, m in pairs])
  np.testing.assert_array_equal(packed.ray_index[n:], 13)  # Unused slots name no ray.
  np.testing.assert_array_equal(packed.complete, complete)
  assert packed.complete[0] and packed.complete[-2]
  assert bool(packed.complete[-1]) == (capacity >= selected.sum())


def test_repack_keeps_order_and_tracks_completeness():
  rng = np.random.default_rng(1)
  selected = rng.uniform(size=(9, 11)) < 0.5
  packed = _pack(jnp.asarray(selected), 40)  # Overflows: the last rays are incomplete already.
  keep = jnp.asarray(rng.uniform(size=40) < 0.5)
  repacked = _repack(packed, keep, 12)
  kept_slots = [i for i in range(40) if bool(keep[i]) and bool(packed.valid[i])]
  n = min(len(kept_slots), 12)
  np.testing.assert_array_equal(repacked.ray_index[:n], np.asarray(packed.ray_index)[kept_slots[:n]])
  np.testing.assert_array_equal(repacked.step_index[:n], np.asarray(packed.step_index)[kept_slots[:n]])
  np.testing.assert_array_equal(repacked.valid, np.arange(12) < n)
  kept_per_ray = np.bincount(np.asarray(packed.ray_index)[kept_slots], minlength=10)[:9]
  fits = (np.cumsum(kept_per_ray) <= 12) | (kept_per_ray == 0)
  np.testing.assert_array_equal(repacked.complete, np.asarray(packed.complete) & fits)
  assert not np.asarray(repacked.complete).all()


def test_packing_round_trip():
  rng = np.random.default_rng(2)
  selected = rng.uniform(size=(6, 8)) < 0.3
  packed = _pack(jnp.asarray(selected), 64)
  values = np.arange(64, dtype=np.float32) + 1.0
  grid = np.zeros((7, 8), np.float32)  # Unpack slot by slot; unused slots land on row 6 (ray R).
  grid[np.asarray(packed.ray_index), np.asarray(packed.step_index)] = values
  grid = grid[:6]
  np.testing.assert_array_equal(grid > 0, selected)  # Each selected step got its own slot.
  np.testing.assert_array_equal(grid[selected], np.arange(selected.sum()) + 1.0)


def test_step_distances_and_num_steps():
  s = marching.step_distances(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.5]), 0.25, marching.step_indices(4))
  np.testing.assert_allclose(s, [[1.0, 1.25, 1.5, 1.75], [2.125, 2.375, 2.625, 2.875]])
  # A window of steps from step 2 has the same distances as those steps of the whole march, to the bit.
  window = marching.step_distances(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.5]), 0.25,
                                   marching.step_indices(2, first_step=jnp.array([2, 2])))
  np.testing.assert_array_equal(window, s[:, 2:])
  # Steps cover the longest chord of the box, whatever the offset.
  assert (marching.num_steps_for(3.0, 0.01) - 1) * 0.01 >= 3.0


def _random_packed_scene(rng, num_rays=7, num_steps=12, selected_fraction=0.6, step=0.05):
  selected = rng.uniform(size=(num_rays, num_steps)) < selected_fraction
  selected[2] = False  # A ray with no samples at all.
  density = rng.uniform(0.0, 30.0, (num_rays, num_steps)).astype(np.float32)
  density[selected & (rng.uniform(size=selected.shape) < 0.2)] = 0.0
  rgb = rng.uniform(size=(num_rays, num_steps, 3)).astype(np.float32)
  t = (1.0 + step * (np.arange(num_steps) + 0.5))[None].repeat(num_rays, 0).astype(np.float32)
  return selected, density, rgb, t


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_packed_rendering_equals_unpacked(seed):
  rng = np.random.default_rng(seed)
  step = 0.05
  selected, density, rgb, t = _random_packed_scene(rng, step=step)
  num_rays, num_steps = selected.shape
  background = rng.uniform(size=(num_rays, 3)).astype(np.float32)
  # Unpacked: every step, with no density where a step was not selected; unit directions so that t is
  # metric, and a last interval of one step, so every sample stands for `step` as in the packed buffer.
  directions = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (num_rays, 1))
  reference = _render(rgb, np.where(selected, density, 0.0), t, directions, background, step)

  packed = _pack(jnp.asarray(selected), 128)
  assert bool(jnp.all(packed.complete))
  take = lambda x: jnp.asarray(x)[jnp.minimum(packed.ray_index, num_rays - 1), packed.step_index]
  rendered = _render_packed(take(rgb), jnp.where(packed.valid, take(density), 0.0), take(t),
                            jnp.full(128, step), packed.ray_index, num_rays, background,
                            jnp.full(num_rays, 9.0))
  np.testing.assert_allclose(rendered.rgb, reference.rgb, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(rendered.acc, reference.acc, rtol=1e-5, atol=1e-6)
  hit = np.asarray(reference.acc) > 1e-6
  np.testing.assert_allclose(np.asarray(rendered.depth)[hit], np.asarray(reference.depth)[hit], rtol=1e-5)
  np.testing.assert_allclose(rendered.depth[2], 9.0)  # No samples: the given empty depth.
  # The packed weights are the unpacked ones at the packed slots.
  np.testing.assert_allclose(np.asarray(rendered.w)[np.asarray(packed.valid)],
                             np.asarray(reference.w)[selected], rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(np.asarray(rendered.w)[~np.asarray(packed.valid)], 0.0)


def test_packed_transmittance_restarts_per_ray_at_extreme_depths():
  # Huge optical depths on earlier rays must not leak into later rays (no global cumulative sums).
  density = jnp.array([1e6, 1e6, 1e6, 0.5, 0.5, 1e-6, 1e-6, 0.0])
  ray_index = jnp.array([0, 0, 0, 1, 1, 2, 2, 3])
  delta = jnp.full(8, 0.1)
  w, transmittance = jax.jit(compositing.compute_weights_packed)(density, delta, ray_index)
  np.testing.assert_allclose(transmittance, [1, 0, 0, 1, np.exp(-0.05), 1, 1 - 1e-7, 1], rtol=1e-6,
                             atol=1e-30)
  np.testing.assert_allclose(w[:3], [1, 0, 0], atol=1e-30)
  np.testing.assert_allclose(w[5:7], [1e-7, 1e-7], rtol=1e-4)  # Tiny opacities stay exact (expm1).


def test_packed_rendering_gradients_are_finite_and_match_unpacked():
  rng = np.random.default_rng(5)
  step = 0.05
  selected, density, rgb, t = _random_packed_scene(rng, step=step)
  num_rays = selected.shape[0]
  packed = _pack(jnp.asarray(selected), 128)
  slot_rays = jnp.minimum(packed.ray_index, num_rays - 1)
  directions = jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (num_rays, 1))

  def packed_loss(density):
    d = jnp.where(packed.valid, density[slot_rays, packed.step_index], 0.0)
    out = compositing.volume_render_packed(jnp.asarray(rgb)[slot_rays, packed.step_index], d,
                                         jnp.asarray(t)[slot_rays, packed.step_index], jnp.full(128, step),
                                         packed.ray_index, num_rays, jnp.ones(3), jnp.zeros(num_rays))
    return jnp.sum(out.rgb ** 2)

  def unpacked_loss(density):
    out = compositing.volume_render(rgb, jnp.where(selected, density, 0.0), t, directions, jnp.ones(3), step)
    return jnp.sum(out.rgb ** 2)

  for scale in (1e-6, 1.0, 1e5):
    d = jnp.asarray(density) * scale
    grad_packed, grad_unpacked = jax.jit(jax.grad(packed_loss))(d), jax.jit(jax.grad(unpacked_loss))(d)
    chex.assert_tree_all_finite(grad_packed)
    np.testing.assert_allclose(grad_packed, grad_unpacked, rtol=1e-4, atol=1e-6 / scale)
