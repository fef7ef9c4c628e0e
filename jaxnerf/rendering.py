"""Volume rendering of samples along rays (NeRF, Eq. 3).

Naming conventions:
- `t`: sample distances along each ray, [..., num_samples], increasing.
- `density`: volume density sigma at the samples, [..., num_samples], non-negative.
- `rgb`: colour at the samples, [..., num_samples, 3].
- `delta`: distance from each sample to the next, [..., num_samples]; the last is `far_delta` (1e10 in the
  paper), so a ray that reaches its last sample with any density there stops on it.
- `alpha`: opacity of each sample's interval, 1 - exp(-density * delta).
- `w`: weights alpha_i * T_i, where T_i = prod_{j<i} (1 - alpha_j) is the transmittance, [..., num_samples].
- `acc`: accumulated opacity, sum of `w`, [...].
"""

from typing import NamedTuple

import jax.numpy as jnp

FAR_DELTA = 1e10


class RenderedRays(NamedTuple):
  rgb: jnp.ndarray  # [..., 3]
  depth: jnp.ndarray  # [...], expected termination distance given that the ray terminates.
  acc: jnp.ndarray  # [...], accumulated opacity.
  w: jnp.ndarray  # [..., num_samples], volume-rendering weights.


def sample_deltas(t, directions, far_delta: float = FAR_DELTA):
  """Metric distance between consecutive samples, [..., num_samples].

  `t` is measured along un-normalised `directions` [..., 3], so deltas are scaled by their norm (as the
  paper's code does) to be distances in world units. `far_delta` (scalar or [..., 1]) is the last
  sample's interval in t.
  """
  last = jnp.broadcast_to(jnp.asarray(far_delta, t.dtype), t[..., :1].shape)
  delta = jnp.concatenate([t[..., 1:] - t[..., :-1], last], axis=-1)
  return delta * jnp.linalg.norm(directions[..., None, :], axis=-1)


def compute_weights(density, delta):
  """Volume-rendering weights w_i = T_i * (1 - exp(-sigma_i * delta_i)) (NeRF, Eq. 3), [..., num_samples].

  Computed in log space, T_i = exp(-sum_{j<i} sigma_j delta_j), which stays exact for large optical depths.
  """
  density_delta = density * delta
  alpha = -jnp.expm1(-density_delta)  # 1 - exp(-x), exact for tiny opacities too.
  optical_depth = jnp.concatenate(
      [jnp.zeros_like(density_delta[..., :1]), jnp.cumsum(density_delta[..., :-1], axis=-1)], axis=-1)
  return alpha * jnp.exp(-optical_depth)


def volume_render(rgb, density, t, directions, background, far_delta: float = FAR_DELTA) -> RenderedRays:
  """Composites samples along rays into colour, depth and opacity.

  Args:
    rgb: [..., num_samples, 3] colours.
    density: [..., num_samples] densities (sigma).
    t: [..., num_samples] sample distances.
    directions: [..., 3] ray directions t is measured along.
    background: [3] or [..., 3] colour behind the scene (white for Blender scenes).
    far_delta: length in t of the last sample's interval, scalar or [..., 1]. The paper's 1e10 makes any
      density at the last sample opaque, which suits bounds that end behind the scene; rays clipped to a
      scene box pass the distance to the box's exit instead, so that they can stay transparent.

  Returns:
    RenderedRays. `depth` is sum(w * t) / acc, clipped to [t_first, t_last]; it is t_last where acc is 0.
  """
  w = compute_weights(density, sample_deltas(t, directions, far_delta))
  acc = jnp.sum(w, axis=-1)
  color = jnp.sum(w[..., None] * rgb, axis=-2) + (1.0 - acc[..., None]) * background
  expected_t = jnp.sum(w * t, axis=-1) / jnp.maximum(acc, 1e-10)
  depth = jnp.where(acc > 1e-10, expected_t, t[..., -1])
  depth = jnp.clip(depth, t[..., 0], t[..., -1])
  return RenderedRays(rgb=color, depth=depth, acc=acc, w=w)
