"""Coordinates of scene space: the axis-aligned scene box and the unit cube that grids index; the contraction
of unbounded scenes into a ball; warps of distances along rays.

Naming conventions:
- `box`: (x_min, y_min, z_min, x_max, y_max, z_max), a sequence of 6 numbers.
- `points`: world-space points [..., 3]; `unit`: the same points in box coordinates, the box mapped onto
  [0, 1]^3.
- `x`: points [..., 3] of an unbounded scene; `mean`, `cov` ([..., 3, 3]) or `cov_diag` ([..., 3]):
  Gaussians in it.
- `t`: metric distances along rays; `s`: the same distances normalised to [0, 1] between near and far
  through a warp (mip-NeRF 360's s-distances).
"""

from typing import Sequence

import jax.numpy as jnp


def to_unit_cube(points, box: Sequence[float]):
  """Points [..., 3] in box coordinates: the box's min corner goes to 0 and its max corner to 1."""
  box = jnp.asarray(box, jnp.float32)
  return (points - box[:3]) / (box[3:] - box[:3])


def from_unit_cube(unit, box: Sequence[float]):
  """World points [..., 3] of box coordinates [..., 3]; the inverse of `to_unit_cube`."""
  box = jnp.asarray(box, jnp.float32)
  return box[:3] + unit * (box[3:] - box[:3])


def inside_unit_cube(unit):
  """Whether box coordinates [..., 3] lie in the box (its faces included), [...] bool."""
  return jnp.all((unit >= 0.0) & (unit <= 1.0), axis=-1)


def contract(x):
  """mip-NeRF 360's contraction (Barron et al. 2022, Eq. 10): the identity inside the unit ball, and
  (2 - 1 / |x|) x / |x| outside it, which maps all of space into the ball of radius 2. [..., 3]."""
  squared_norm = jnp.maximum(jnp.sum(x**2, axis=-1, keepdims=True), 1.0)  # 1 inside: leaves x alone.
  norm = jnp.sqrt(squared_norm)
  return (2.0 * norm - 1.0) / squared_norm * x


def uncontract(y, max_norm: float = 2.0 - 1e-3):
  """The inverse of `contract` at y [..., 3] in its ball: the identity inside the unit ball, and
  y / |y| / (2 - |y|) outside it; norms are clipped to `max_norm` first (the ball's surface is infinity)."""
  norm = jnp.sqrt(jnp.sum(y**2, axis=-1, keepdims=True))
  clipped = jnp.minimum(norm, max_norm)
  return jnp.where(norm <= 1.0, y, y / jnp.maximum(norm, 1e-12) / (2.0 - clipped))


def contract_jacobian(x):
  """The Jacobian [..., 3, 3] of `contract` at x [..., 3]: the identity inside the unit ball, and with
  r = |x| outside it, (2r - 1) / r^2 I + 2 (1 - r) / r^4 x x^T (which is I on the sphere r = 1)."""
  squared_norm = jnp.maximum(jnp.sum(x**2, axis=-1), 1.0)[..., None, None]  # 1 inside: I and 0 below.
  norm = jnp.sqrt(squared_norm)
  across = (2.0 * norm - 1.0) / squared_norm * jnp.eye(3)
  along = 2.0 * (1.0 - norm) / squared_norm**2 * x[..., :, None] * x[..., None, :]
  return across + along


def contract_gaussian(mean, cov):
  """Gaussians [..., 3] with covariances `cov` pushed through `contract` by linearising it at their means
  (mip-NeRF 360, Eq. 9): mean -> contract(mean), cov -> J cov J^T.

  `cov` is full, [..., 3, 3], or a diagonal [..., 3]; for a diagonal the result is the diagonal of J cov J^T
  (the contracted covariance is no longer diagonal; its diagonal is what the integrated encoding reads).
  """
  jacobian = contract_jacobian(mean)
  if cov.shape[-1:] == mean.shape[-1:] and cov.ndim == mean.ndim:
    return contract(mean), jnp.sum(jacobian**2 * cov[..., None, :], axis=-1)
  return contract(mean), jacobian @ cov @ jnp.swapaxes(jacobian, -1, -2)


def disparity_to_s(t, near, far):
  """Distances t in [near, far] -> s in [0, 1], spaced evenly in disparity (mip-NeRF 360, Sec. 2.2 with
  g(t) = 1 / t): s = (1 / t - 1 / near) / (1 / far - 1 / near). near, far: [..., 1], broadcast against t."""
  return (1.0 / t - 1.0 / near) / (1.0 / far - 1.0 / near)


def s_to_disparity(s, near, far):
  """The inverse of `disparity_to_s`: t = 1 / (s / far + (1 - s) / near)."""
  return 1.0 / (s / far + (1.0 - s) / near)


# Spacings of samples along rays: t in [near, far] <-> normalised s in [0, 1]. 'linear_disparity' is
# nerfstudio's piecewise sampler for unbounded scenes: linear in t from near to a pivot distance for the first
# half of s, evenly in disparity from the pivot to far for the second (pure disparity spacing from a small
# near would spend half the samples within twice that distance of the camera, where floaters then grow).
SPACINGS = ('linear', 'disparity', 'linear_disparity')


def _linear_share(near, far, pivot):
  """The pivot clipped to [near, far], and the share of s spaced linearly: half, or all of it when the pivot
  lies at or beyond far."""
  pivot = jnp.clip(pivot, near, far)
  return pivot, jnp.where(pivot < far, 0.5, 1.0)


def t_to_s(t, near, far, spacing: str = 'linear', pivot=None):
  """Distances t [...] -> s in [0, 1], spaced by `spacing` (see SPACINGS; 'linear_disparity' needs the
  `pivot` distance). near, far, pivot broadcast against t."""
  if spacing == 'disparity':
    return disparity_to_s(t, near, far)
  if spacing == 'linear_disparity':
    pivot, share = _linear_share(near, far, pivot)
    linear = share * (t - near) / jnp.maximum(pivot - near, 1e-10)
    beyond = jnp.where(pivot < far, (1.0 / jnp.maximum(t, pivot) - 1.0 / pivot) /
                       jnp.where(pivot < far, 1.0 / far - 1.0 / pivot, 1.0), 0.0)
    return jnp.where(t < pivot, linear, share + (1.0 - share) * beyond)
  return (t - near) / (far - near)


def s_to_t(s, near, far, spacing: str = 'linear', pivot=None):
  """The inverse of `t_to_s`."""
  if spacing == 'disparity':
    return s_to_disparity(s, near, far)
  if spacing == 'linear_disparity':
    pivot, share = _linear_share(near, far, pivot)
    linear = near + s / share * (pivot - near)
    beyond = s_to_disparity(jnp.clip((s - share) / jnp.where(share < 1.0, 1.0 - share, 1.0), 0.0, 1.0),
                            pivot, far)
    return jnp.where(s < share, linear, beyond)
  return near + s * (far - near)
