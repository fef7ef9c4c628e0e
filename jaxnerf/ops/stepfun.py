"""Step functions along rays: interval edges with a weight per interval (mip-NeRF 360, Barron et al. 2022).

A ray's samples are intervals, not points: N intervals [t_i, t_{i+1}) with one weight each. Sampling and
resampling, the proposal network's interlevel loss and the distortion regulariser are all operations on
these step functions.

Naming conventions:
- `t`: interval edges along a ray, [..., N + 1], non-decreasing. They may be metric distances or any
  monotonic re-parametrisation of them (mip-NeRF 360's normalised s-distances).
- `w`: weights of the intervals, [..., N], non-negative (volume-rendering weights sum to at most 1).
- `cdf`: the integral of `w`, [..., N + 1]: 0 at t_0, then cumulative sums.
- `u`: quantiles in [0, 1].
- `rng`: a jax.random key, or None for deterministic sampling (evaluation).
Interval i's density (the value of the step function) is w_i / (t_{i+1} - t_i).
"""

import jax
import jax.numpy as jnp


def integrate_weights(w):
  """The integral [..., N + 1] of normalised weights w [..., N] (summing to 1): a leading 0, the cumulative
  sums capped at 1, and exactly 1 at the end whatever the rounding."""
  cdf = jnp.minimum(1.0, jnp.cumsum(w[..., :-1], axis=-1))
  zeros, ones = jnp.zeros_like(w[..., :1]), jnp.ones_like(w[..., :1])
  return jnp.concatenate([zeros, cdf, ones], axis=-1)


def interpolate(x, xp, fp):
  """Piecewise-linear interpolation over the last axis (jnp.interp with batch dimensions).

  Args:
    x: [..., M] query points.
    xp: [..., K] non-decreasing knots.
    fp: [..., K] values at the knots.

  Returns:
    [..., M] values; queries outside [xp_0, xp_{K-1}] take the end values. Where knots repeat (an interval
    of zero width), a query on them takes the value of the last repeated knot.
  """
  # The interval of each query: the count of knots at or below it, minus one (O(M K), fine for the few
  # hundred samples of a ray and friendly to accelerators).
  index = jnp.sum(x[..., :, None] >= xp[..., None, :], axis=-1) - 1
  index = jnp.clip(index, 0, xp.shape[-1] - 2)
  x0, x1 = (jnp.take_along_axis(xp, i, axis=-1) for i in (index, index + 1))
  f0, f1 = (jnp.take_along_axis(fp, i, axis=-1) for i in (index, index + 1))
  width = x1 - x0
  fraction = jnp.where(width > 0, (x - x0) / jnp.where(width > 0, width, 1.0), 0.0)
  return f0 + jnp.clip(fraction, 0.0, 1.0) * (f1 - f0)


def invert_cdf(u, t, w):
  """The points [..., M] below which the step function (t, w) holds fractions u [..., M] of its weight.

  w is normalised first (a ray without weight is treated as uniform over its extent); the inverse of the
  piecewise-linear integral is exact.
  """
  total = jnp.sum(w, axis=-1, keepdims=True)
  widths = t[..., 1:] - t[..., :-1]
  uniform = widths / jnp.maximum(jnp.sum(widths, axis=-1, keepdims=True), jnp.finfo(w.dtype).tiny)
  w = jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), uniform)
  return interpolate(u, integrate_weights(w), t)


def quantiles(rng, batch_shape, num_samples: int, single_jitter: bool = False):
  """`num_samples` sorted quantiles in [0, 1), [*batch_shape, num_samples], one per stratum of width
  1 / num_samples: at stratum centres when rng is None, else jittered within them (by one offset per ray
  with `single_jitter`, mip-NeRF 360's choice, else independently)."""
  strata = jnp.arange(num_samples, dtype=jnp.float32)
  if rng is None:
    return jnp.broadcast_to((strata + 0.5) / num_samples, tuple(batch_shape) + (num_samples,))
  jitter_shape = tuple(batch_shape) + ((1,) if single_jitter else (num_samples,))
  return (strata + jax.random.uniform(rng, jitter_shape)) / num_samples


def sample(rng, t, w, num_samples: int, single_jitter: bool = False, padding: float = 0.0):
  """Points [..., num_samples] drawn from the step function (t, w) by inverse transform sampling,
  stratified over the quantiles (`quantiles`); sorted. `padding` is added to every weight first, so that
  rays of zero weight still sample their whole extent. No gradient flows into the samples."""
  t, w = jax.lax.stop_gradient(t), jax.lax.stop_gradient(w)
  u = quantiles(rng, w.shape[:-1], num_samples, single_jitter)
  return invert_cdf(u, t, w + padding)


def sample_intervals(rng, t, w, num_samples: int, single_jitter: bool = False, padding: float = 0.0):
  """New interval edges [..., num_samples + 1] drawn from the step function (t, w) (mip-NeRF 360's
  resampling): `num_samples` points are sampled, and the edges lie half way between neighbours, with the
  first and last edges as far outside the end points as their inner neighbours are, clipped to [t_0, t_N].
  """
  points = sample(rng, t, w, num_samples, single_jitter, padding)
  middle = 0.5 * (points[..., 1:] + points[..., :-1])
  first = 2.0 * points[..., :1] - middle[..., :1]
  last = 2.0 * points[..., -1:] - middle[..., -1:]
  edges = jnp.concatenate([first, middle, last], axis=-1)
  return jnp.clip(edges, jax.lax.stop_gradient(t[..., :1]), jax.lax.stop_gradient(t[..., -1:]))


def blur_weights(w, padding: float = 0.0):
  """mip-NeRF's filter of the coarse weights before resampling (Barron et al. 2021, Eq. 18): a max over
  each pair of neighbours, then the mean of neighbouring maxima (a 2-tap max then a 2-tap blur), plus
  `padding` (their alpha = 0.01). Returns [..., N]."""
  padded = jnp.concatenate([w[..., :1], w, w[..., -1:]], axis=-1)
  maxima = jnp.maximum(padded[..., :-1], padded[..., 1:])
  return 0.5 * (maxima[..., :-1] + maxima[..., 1:]) + padding


def outer_bound(t, t_env, w_env):
  """The outer measure of the step function (t_env, w_env) on the intervals of `t` (mip-NeRF 360, Eq. 13):
  for each interval [t_i, t_{i+1}] the sum of the weights of all intervals of t_env that overlap it.

  Args:
    t: [..., N + 1] edges to bound on.
    t_env, w_env: [..., M + 1] edges and [..., M] weights of the enveloping step function.

  Returns:
    [..., N] bounds.
  """
  cdf = jnp.concatenate([jnp.zeros_like(w_env[..., :1]), jnp.cumsum(w_env, axis=-1)], axis=-1)
  # Envelope interval j overlaps [t_i, t_{i+1}] when t_env_j < t_{i+1} and t_env_{j+1} > t_i. Those j
  # form the range [first_j, end_j): first_j counts the intervals ending at or before t_i, end_j those
  # starting before t_{i+1}.
  first_j = jnp.sum(t_env[..., None, 1:] <= t[..., :-1, None], axis=-1)
  end_j = jnp.sum(t_env[..., None, :-1] < t[..., 1:, None], axis=-1)
  end_j = jnp.maximum(end_j, first_j)
  return jnp.take_along_axis(cdf, end_j, axis=-1) - jnp.take_along_axis(cdf, first_j, axis=-1)


def interlevel_loss(t, w, t_proposal, w_proposal, eps: float = 1e-7):
  """mip-NeRF 360's proposal loss (Eq. 14): the NeRF weights (t, w) [..., N+1], [..., N] must lie under the
  proposal's outer bound; the excess is penalised as max(0, w - bound)^2 / w. Gradients reach only the
  proposal. Returns the mean over rays of each ray's sum, a scalar."""
  t, w = jax.lax.stop_gradient(t), jax.lax.stop_gradient(w)
  bound = outer_bound(t, t_proposal, w_proposal)
  excess = jnp.maximum(0.0, w - bound)
  return jnp.mean(jnp.sum(excess**2 / (w + eps), axis=-1))


def distortion_loss(t, w):
  """mip-NeRF 360's distortion regulariser (Eq. 15) in its closed form, per ray, [...]:

    sum_{i,j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (t_{i+1} - t_i),   m_i = (t_i + t_{i+1}) / 2.

  The double sum is computed in O(N) with cumulative sums (Eq. 16): the midpoints are sorted, so
  sum_{i,j} w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i W_{<i} - (w m)_{<i}), where X_{<i} sums over j < i.
  """
  middle = 0.5 * (t[..., 1:] + t[..., :-1])
  weight_before = jnp.cumsum(w, axis=-1) - w
  weighted_middle_before = jnp.cumsum(w * middle, axis=-1) - w * middle
  between = 2.0 * jnp.sum(w * (middle * weight_before - weighted_middle_before), axis=-1)
  within = jnp.sum(w**2 * (t[..., 1:] - t[..., :-1]), axis=-1) / 3.0
  return between + within


def weighted_percentile(t, w, percentiles):
  """The points [..., P] below which percentiles [P] (in 0..100) of the step function's weight lie; the
  50th is the median depth of a ray."""
  u = jnp.broadcast_to(jnp.asarray(percentiles, jnp.float32) / 100.0, w.shape[:-1] + (len(percentiles),))
  return invert_cdf(u, t, w)
