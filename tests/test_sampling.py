"""Tests of jaxnerf.ops.sampling: stratified sampling, inverse-CDF resampling and hierarchical samples.

Brute-force references (pure Python quantiles, np.interp), Monte Carlo histograms, and invariants.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import sampling
# Compiled wrappers: num_samples (and lindisp / eps) fix shapes and branches.
_stratified = jax.jit(sampling.stratified_samples, static_argnums=(3, 4))
_inverse_cdf = jax.jit(sampling.inverse_cdf_samples, static_argnums=(3, 4))
_hierarchical = jax.jit(sampling.hierarchical_samples, static_argnums=(3,))


def _near_far(num_rays, seed=0):
  rng = np.random.default_rng(seed)
  near = rng.uniform(0.1, 2.0, (num_rays, 1)).astype(np.float32)
  far = (near + rng.uniform(0.5, 6.0, (num_rays, 1))).astype(np.float32)
  return jnp.asarray(near), jnp.asarray(far)


def _random_bins_and_weights(num_rays, num_bins, seed):
  rng = np.random.default_rng(seed)
  widths = rng.uniform(0.05, 1.0, (num_rays, num_bins))
  start = rng.uniform(-2.0, 2.0, (num_rays, 1))
  bins = np.concatenate([start, start + np.cumsum(widths, axis=-1)], axis=-1)
  w = rng.uniform(0.0, 1.0, (num_rays, num_bins)) ** 3
  w[:, 1] = 0.0  # An empty bin.
  return bins.astype(np.float32), w.astype(np.float32)


def _bin_index(t, bins):
  """Index of the bin containing each sample, per ray (pure numpy)."""
  return np.stack([np.searchsorted(b, s, side='right') - 1 for b, s in zip(bins, t)])


# Stratified samples.


@pytest.mark.parametrize('lindisp', [False, True])
@pytest.mark.parametrize('jitter', [False, True])
def test_stratified_one_sample_per_bin(lindisp, jitter):
  near, far = _near_far(64)
  num_samples = 16
  rng = jax.random.PRNGKey(0) if jitter else None
  t = np.asarray(_stratified(rng, near, far, num_samples, lindisp), np.float64)
  chex.assert_shape(t, (64, num_samples))
  near, far = np.asarray(near, np.float64), np.asarray(far, np.float64)
  assert np.all(t >= near * (1 - 1e-6)) and np.all(t <= far * (1 + 1e-6))
  assert np.all(np.diff(t, axis=-1) > 0)
  # Position in [0, 1] within the (depth or disparity) interval: sample i lies in [i, i + 1] / num_samples.
  if lindisp:
    u = (1 / near - 1 / t) / (1 / near - 1 / far)
  else:
    u = (t - near) / (far - near)
  offset = u * num_samples - np.arange(num_samples)
  assert np.all(offset > -1e-4) and np.all(offset < 1 + 1e-4)
  if not jitter:  # Deterministic: bin centres.
    np.testing.assert_allclose(offset, 0.5, atol=1e-4)
  else:  # Uniform jitter in each bin, independent across bins and rays: mean 1/2, variance 1/12.
    n = offset.size
    assert abs(offset.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(offset.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    assert abs(np.corrcoef(offset[:, :-1].ravel(), offset[:, 1:].ravel())[0, 1]) < 5 / np.sqrt(n)


def test_stratified_deterministic_values_by_hand():
  t = _stratified(None, jnp.array([[2.0]]), jnp.array([[6.0]]), 4, False)
  np.testing.assert_allclose(t, [[2.5, 3.5, 4.5, 5.5]], rtol=1e-6)
  # Disparity from 1/2 to 1/6 in four bins of width 1/12; centres at 1/2 - (i + 1/2) / 12.
  t = _stratified(None, jnp.array([[2.0]]), jnp.array([[6.0]]), 4, True)
  expected = 1.0 / (0.5 - (np.arange(4) + 0.5) / 12)
  np.testing.assert_allclose(t, [expected], rtol=1e-6)


def test_stratified_keys_and_broadcasting():
  near, far = _near_far(8)
  a = _stratified(jax.random.PRNGKey(1), near, far, 8, False)
  b = _stratified(jax.random.PRNGKey(1), near, far, 8, False)
  c = _stratified(jax.random.PRNGKey(2), near, far, 8, False)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  # Scalar-like [1] bounds broadcast against [rays, 1].
  t = _stratified(None, jnp.full((3, 1), 1.0), jnp.array([4.0]), 3, False)
  np.testing.assert_allclose(t, np.broadcast_to([1.5, 2.5, 3.5], (3, 3)), rtol=1e-6)


# Inverse-CDF samples.


def test_inverse_cdf_monte_carlo_histogram():
  num_rays, num_bins, num_samples = 4, 8, 20000
  bins, w = _random_bins_and_weights(num_rays, num_bins, seed=3)
  t = np.asarray(_inverse_cdf(jax.random.PRNGKey(4), bins, w, num_samples, 1e-5), np.float64)
  chex.assert_shape(t, (num_rays, num_samples))
  assert np.all(np.diff(t, axis=-1) >= 0)
  assert np.all(t >= bins[:, :1]) and np.all(t <= bins[:, -1:])
  index = _bin_index(t, bins)
  p = (w + 1e-5) / np.sum(w + 1e-5, axis=-1, keepdims=True)
  for ray in range(num_rays):
    counts = np.bincount(np.minimum(index[ray], num_bins - 1), minlength=num_bins)
    sigma = np.sqrt(num_samples * p[ray] * (1 - p[ray]))
    np.testing.assert_array_less(np.abs(counts - num_samples * p[ray]), 5 * sigma + 1)
  # Within a bin the density is constant: the fractional position is uniform (mean 1/2, variance 1/12).
  fraction = (t - np.take_along_axis(bins, index, -1)) / (
      np.take_along_axis(bins, index + 1, -1) - np.take_along_axis(bins, index, -1))
  for ray in range(num_rays):
    big = np.argmax(p[ray])
    f = fraction[ray][index[ray] == big]
    assert abs(f.mean() - 0.5) < 5 * np.sqrt(1 / 12 / f.size)
    assert abs(f.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / f.size)


def _brute_force_quantiles(bins, w, num_samples, eps):
  """Deterministic inverse-CDF samples of one ray, one quantile at a time, in float64."""
  w = [float(x) + eps for x in w]
  total = sum(w)
  out = []
  for i in range(num_samples):
    u = (i + 0.5) / num_samples
    cumulative = 0.0
    for j, wj in enumerate(w):
      p = wj / total
      if u <= cumulative + p or j == len(w) - 1:
        fraction = min(max((u - cumulative) / p, 0.0), 1.0) if p > 0 else 0.0
        out.append(float(bins[j]) + fraction * (float(bins[j + 1]) - float(bins[j])))
        break
      cumulative += p
  return np.array(out)


@pytest.mark.parametrize('eps', [1e-5, 0.0])
def test_inverse_cdf_deterministic_matches_brute_force(eps):
  bins, w = _random_bins_and_weights(5, 7, seed=6)
  t = np.asarray(_inverse_cdf(None, bins, w, 33, eps))
  for ray in range(5):
    expected = _brute_force_quantiles(bins[ray], w[ray], 33, eps)
    np.testing.assert_allclose(t[ray], expected, rtol=1e-5, atol=1e-5)
    # The same quantiles through np.interp of the CDF at the bin edges.
    cdf = np.concatenate([[0.0], np.cumsum(w[ray] + eps)]) / np.sum(w[ray] + eps)
    np.testing.assert_allclose(t[ray], np.interp((np.arange(33) + 0.5) / 33, cdf, bins[ray]), atol=1e-5)


def test_inverse_cdf_quantile_property():
  # Deterministic samples: the fraction of samples left of each edge is the CDF there, to within 1 / n.
  bins, w = _random_bins_and_weights(3, 6, seed=7)
  n = 500
  t = np.asarray(_inverse_cdf(None, bins, w, n, 1e-5))
  p = (w + 1e-5) / np.sum(w + 1e-5, axis=-1, keepdims=True)
  cdf = np.cumsum(p, axis=-1)
  for ray in range(3):
    below = np.array([np.mean(t[ray] < edge) for edge in bins[ray, 1:]])
    np.testing.assert_allclose(below, cdf[ray], atol=1.0 / n + 1e-6)


def test_inverse_cdf_zero_weights_give_equal_mass_per_bin():
  rng = np.random.default_rng(8)
  bins = np.concatenate([[0.0], np.cumsum(rng.uniform(0.1, 2.0, 5))]).astype(np.float32)[None]
  t = np.asarray(_inverse_cdf(None, bins, np.zeros((1, 5), np.float32), 20, 1e-5))
  counts = np.bincount(_bin_index(t, bins)[0], minlength=5)
  np.testing.assert_array_equal(counts, 4)
  # Equal-width bins: evenly spaced samples, the same as stratified bin centres.
  even = np.linspace(1.0, 3.0, 9, dtype=np.float32)[None]
  t = _inverse_cdf(None, even, np.zeros((1, 8), np.float32), 10, 1e-5)
  np.testing.assert_allclose(t, [1.0 + 2.0 * (np.arange(10) + 0.5) / 10], rtol=1e-5)


def test_inverse_cdf_without_eps_skips_empty_bins():
  bins = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]], np.float32)
  w = np.array([[1.0, 0.0, 0.0, 1.0]], np.float32)
  for rng in (None, jax.random.PRNGKey(9)):
    t = np.asarray(_inverse_cdf(rng, bins, w, 256, 0.0))
    chex.assert_tree_all_finite(t)
    inside_empty = (t > 1.0 + 1e-6) & (t < 3.0 - 1e-6)
    assert not inside_empty.any(), t[inside_empty]


def test_inverse_cdf_no_gradients():
  bins, w = _random_bins_and_weights(2, 6, seed=10)

  def total(bins, w, rng):
    return jnp.sum(sampling.inverse_cdf_samples(rng, bins, w, 16))

  for rng in (None, jax.random.PRNGKey(0)):
    g_bins, g_w = jax.jit(jax.grad(total, argnums=(0, 1)))(bins, w, rng)
    np.testing.assert_array_equal(g_bins, 0.0)
    np.testing.assert_array_equal(g_w, 0.0)


def test_inverse_cdf_extreme_weights_finite():
  bins = np.linspace(1e-3, 1e3, 11, dtype=np.float32)[None].repeat(3, 0)
  w = np.array([[0.0] * 10, [1e-30] * 5 + [1e30] * 5, [1e8, 0, 0, 0, 0, 0, 0, 0, 0, 1e-8]], np.float32)
  t = np.asarray(_inverse_cdf(jax.random.PRNGKey(11), bins, w, 64, 1e-5))
  chex.assert_tree_all_finite(t)
  assert np.all(t >= bins[:, :1]) and np.all(t <= bins[:, -1:])
  assert np.all(t[1] >= bins[1, 5] * (1 - 1e-6))  # All the mass is in the upper half.
  assert np.all(t[2] <= bins[2, 1] * (1 + 1e-6))  # All of it in the first bin.


# Hierarchical samples.


@pytest.mark.parametrize('rng', [None, jax.random.PRNGKey(13)])
def test_hierarchical_samples(rng):
  near, far = _near_far(6, seed=14)
  t_coarse = _stratified(jax.random.PRNGKey(15), near, far, 16, False)
  w_coarse = np.random.default_rng(16).uniform(size=t_coarse.shape).astype(np.float32)
  t = np.asarray(_hierarchical(rng, t_coarse, w_coarse, 32))
  chex.assert_shape(t, (6, 16 + 32))
  assert np.all(np.diff(t, axis=-1) >= 0)
  t_coarse = np.asarray(t_coarse)
  for ray in range(6):
    # Every coarse sample is kept, as many times as it occurs.
    for value in t_coarse[ray]:
      assert np.sum(t[ray] == value) >= np.sum(t_coarse[ray] == value)
    # New samples lie between the first and last midpoints of the coarse samples.
    new = np.setdiff1d(t[ray], t_coarse[ray])
    mids = 0.5 * (t_coarse[ray, 1:] + t_coarse[ray, :-1])
    assert np.all(new >= mids[0]) and np.all(new <= mids[-1])


@pytest.mark.parametrize('k', [1, 5, 14])
def test_hierarchical_samples_follow_the_coarse_weights(k):
  # A one-hot weight on interior coarse sample k: its bin is [mid(k-1, k), mid(k, k+1)].
  t_coarse = np.linspace(2.0, 6.0, 16, dtype=np.float32)[None]
  w_coarse = np.eye(16, dtype=np.float32)[k][None]
  t = np.asarray(_hierarchical(None, t_coarse, w_coarse, 64))[0]
  t_coarse = np.asarray(t_coarse)[0]
  new = np.setdiff1d(t, t_coarse)
  lo, hi = 0.5 * (t_coarse[k - 1] + t_coarse[k]), 0.5 * (t_coarse[k] + t_coarse[k + 1])
  assert len(new) >= 60  # (Ties with coarse samples are possible but rare.)
  assert np.all(new >= lo - 1e-5) and np.all(new <= hi + 1e-5), (new.min(), new.max(), lo, hi)


def test_hierarchical_no_gradient_into_coarse_samples():
  t_coarse = jnp.linspace(2.0, 6.0, 8)[None]
  w_coarse = jnp.linspace(0.1, 1.0, 8)[None]
  g_t, g_w = jax.jit(jax.grad(lambda t, w: jnp.sum(sampling.hierarchical_samples(None, t, w, 8) ** 2),
                              argnums=(0, 1)))(t_coarse, w_coarse)
  np.testing.assert_array_equal(g_t, 0.0)
  np.testing.assert_array_equal(g_w, 0.0)
