"""Sampling distances along rays: stratified sampling and inverse-CDF (hierarchical) resampling.

Naming conventions:
- `t`: sample distances along a ray, [..., num_samples], increasing; a point is `origin + t * direction`.
- `w`: weights of samples (from volume rendering), [..., num_samples], non-negative.
- `bins`: edges of piecewise-constant distributions, [..., num_bins + 1], increasing.
- `near`, `far`: [..., 1] bounds of each ray.
- `rng`: a jax.random key, or None for deterministic (evaluation) sampling.
"""

import jax
import jax.numpy as jnp

from jaxnerf.ops import stepfun
def stratified_samples(rng, near, far, num_samples: int, lindisp: bool = False):
  """One sample in each of `num_samples` equal bins between near and far (NeRF, Eq. 2).

  Args:
    rng: key for jittering within each bin; None places every sample at its bin's centre.
    near, far: [..., 1] ray bounds.
    num_samples: samples per ray.
    lindisp: space the bins linearly in inverse depth (disparity) instead of depth.

  Returns:
    t: [..., num_samples] increasing sample distances in [near, far].
  """
  batch_shape = jnp.broadcast_shapes(near.shape, far.shape)[:-1]
  if rng is None:
    u = (jnp.arange(num_samples, dtype=near.dtype) + 0.5) / num_samples
    u = jnp.broadcast_to(u, batch_shape + (num_samples,))
  else:
    u = (jnp.arange(num_samples, dtype=near.dtype) +
         jax.random.uniform(rng, batch_shape + (num_samples,), dtype=near.dtype)) / num_samples
  if lindisp:
    return 1.0 / (1.0 / near * (1.0 - u) + 1.0 / far * u)
  return near * (1.0 - u) + far * u


def inverse_cdf_samples(rng, bins, w, num_samples: int, eps: float = 1e-5):
  """Samples from the piecewise-constant distribution with weights `w` over `bins` (NeRF, Sec. 5.2).

  The density on bin i is proportional to w[i] + eps (eps keeps empty rays well defined), constant within the
  bin, so samples are drawn by inverting the piecewise-linear CDF.

  Args:
    rng: key for uniform draws; None uses evenly spaced quantiles (deterministic evaluation).
    bins: [..., num_bins + 1] increasing bin edges.
    w: [..., num_bins] non-negative bin weights.
    num_samples: samples per ray.
    eps: added to every weight.

  Returns:
    t: [..., num_samples] samples, sorted. Gradients do not flow into them (the paper's stop-gradient on
    the coarse weights).
  """
  bins, w = jax.lax.stop_gradient(bins), jax.lax.stop_gradient(w)
  w = w + eps
  cdf = stepfun.integrate_weights(w / jnp.sum(w, axis=-1, keepdims=True))  # [..., num_bins + 1]
  batch_shape = cdf.shape[:-1]
  if rng is None:
    u = (jnp.arange(num_samples, dtype=w.dtype) + 0.5) / num_samples
    u = jnp.broadcast_to(u, batch_shape + (num_samples,))
  else:
    u = jnp.sort(jax.random.uniform(rng, batch_shape + (num_samples,), dtype=w.dtype), axis=-1)
  return stepfun.interpolate(u, cdf, bins)


def hierarchical_samples(rng, t_coarse, w_coarse, num_samples: int):
  """Fine-network samples: the coarse samples plus `num_samples` drawn from the coarse weights.

  As in the paper's code, the coarse distribution has bins between the midpoints of consecutive coarse
  samples, carrying the weights of the interior samples.

  Args:
    rng: key, or None for deterministic evaluation.
    t_coarse: [..., num_coarse] coarse sample distances.
    w_coarse: [..., num_coarse] coarse volume-rendering weights.
    num_samples: number of new samples.

  Returns:
    t: [..., num_coarse + num_samples], sorted.
  """
  bins = 0.5 * (t_coarse[..., 1:] + t_coarse[..., :-1])
  t_new = inverse_cdf_samples(rng, bins, w_coarse[..., 1:-1], num_samples)
  return jnp.sort(jnp.concatenate([jax.lax.stop_gradient(t_coarse), t_new], axis=-1), axis=-1)
