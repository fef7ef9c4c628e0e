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
- `t0`, `t1`: the near and far ends of intervals along rays, [..., num_samples] (interval edges t[..., :-1]
  and t[..., 1:]).
- `mean`, `cov` / `cov_diag`: Gaussians standing in for the conical frustums of intervals (mip-NeRF),
  [..., num_samples, 3] and [..., num_samples, 3, 3] / [..., num_samples, 3].
- `samples`: a level's per-sample field outputs by name ('density' [..., N], 'rgb' [..., N, 3], and whatever
  else the field gives, [..., N, D]); `extras`: the per-ray composites [..., D] of those other than density
  and rgb (`composite`: the same weighted sum as colour, Eq. 3).
Packed samples (marching.py) hold the samples of many rays in one flat buffer of C slots, ray by ray:
`ray_index` [C] names each slot's ray (num_rays for unused slots), and per-sample arrays are [C, ...].
"""

from typing import Dict, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxnerf.ops import stepfun
FAR_DELTA = 1e10


class RenderedRays(NamedTuple):
  """One level of a renderer's ray history (renderers return one per level, the final output last)."""

  rgb: Optional[jnp.ndarray]  # [..., 3]; None for levels that render density only (proposals).
  depth: jnp.ndarray  # [...], expected termination distance given that the ray terminates.
  acc: jnp.ndarray  # [...], accumulated opacity.
  w: jnp.ndarray  # [..., num_samples], volume-rendering weights ([..., C] for packed samples).
  # [...] bool: whether the ray was rendered with all its samples (packed renderers can run out of slots);
  # None means all rays were.
  complete: Optional[jnp.ndarray] = None
  # [..., num_samples + 1]: the intervals' edges in the renderer's normalised sampling space, [0, 1] from
  # near to far (linear or in disparity), which the interlevel and distortion losses read; None for
  # packed samples.
  s_edges: Optional[jnp.ndarray] = None
  # [..., num_samples + 1]: the same edges as distances t along the rays (for `median_depth`); None for
  # packed samples.
  t_edges: Optional[jnp.ndarray] = None
  # The level's per-sample field outputs by name, [..., num_samples, ...] ([C, ...] packed): what loss terms
  # that need per-sample values (normals, ...) read.
  samples: Optional[Dict[str, jnp.ndarray]] = None
  # Per-ray composites [..., D] of the per-sample outputs other than density and rgb (normals, ...).
  extras: Optional[Dict[str, jnp.ndarray]] = None


def composite(w, values):
  """The per-ray sum [..., D] of per-sample values [..., num_samples, D] weighted by w [..., num_samples]
  (Eq. 3's sum, for colour or any other quantity)."""
  return jnp.sum(w[..., None] * values, axis=-2)


def composite_packed(w, values, ray_index, num_rays: int):
  """`composite` for packed samples: w [C], values [C, D], ray_index [C] (sorted) -> [num_rays, D]."""
  return jax.ops.segment_sum(w[:, None] * values, ray_index, num_segments=num_rays, indices_are_sorted=True)


def expected_depth(weighted_t, acc, empty_depth, depth_range=None, xnp=jnp):
  """[...] the expected termination depth of rays given that they terminate: the weighted sum of the
  samples' t [...] over their opacity acc [...], clipped to depth_range ((lowest, highest), [...] each) when
  given; empty_depth where a ray is empty (acc <= 1e-10). With `xnp` numpy, the same on the host (rays
  rendered in rounds, outputs/chunked.py)."""
  filled = acc > 1e-10
  depth = weighted_t / xnp.where(filled, acc, 1.0)
  if depth_range is not None:
    depth = xnp.clip(depth, *depth_range)
  return xnp.where(filled, depth, empty_depth)


def finish(w, t, density, rgb, background, empty_depth, extras: Optional[Dict] = None, composite_fn=composite,
           depth_range=None) -> RenderedRays:
  """The one finisher of every renderer: a level's rays from the weights of its samples (Eq. 3's sums).

  Args:
    w: [..., N] weights (packed: [C]).
    t: [..., N] the distance each sample stands for (the point's t, or its interval's midpoint).
    density: [..., N], kept with the level's samples.
    rgb: [..., N, 3] colours, or None (a density-only level: rgb comes back None).
    background: [3] or [..., 3] colour behind the scene.
    empty_depth: [...] the depth of rays with no opacity.
    extras: other per-sample quantities {name: [..., N, D]} to composite like colour.
    composite_fn: (w, values [..., N, D]) -> per-ray sums [..., D]: `composite`, or for packed samples
      `composite_packed` bound to their rays.
    depth_range: (lowest, highest), [...] each: the expected depth is clipped to them; None: no clip.

  Returns:
    RenderedRays with rgb, depth (`expected_depth`), acc and w, and the level's samples and per-ray extras.
  """
  acc = composite_fn(w, jnp.ones(w.shape + (1,), w.dtype))[..., 0]
  color = None if rgb is None else composite_fn(w, rgb) + (1.0 - acc[..., None]) * background
  depth = expected_depth(composite_fn(w, t[..., None])[..., 0], acc, empty_depth, depth_range)
  return _with_samples(RenderedRays(rgb=color, depth=depth, acc=acc, w=w), rgb, density, extras, composite_fn)


def _with_samples(rendered: RenderedRays, rgb, density, extras: Optional[Dict], composite_fn) -> RenderedRays:
  """`rendered` with its level's per-sample outputs and the per-ray composites of `extras`."""
  extras = extras or {}
  samples = {'density': density, **({} if rgb is None else {'rgb': rgb}), **extras}
  return rendered._replace(samples=samples, extras={k: composite_fn(rendered.w, v) for k, v in extras.items()})


def complete_rays_mse(rendered: RenderedRays, rgb) -> jnp.ndarray:
  """Mean squared error of `rendered`'s colours [B, 3] against `rgb` [B, 3] over the rays it rendered
  completely (all of them where `complete` is None; packed models can run out of slots)."""
  weight = jnp.ones(rendered.acc.shape) if rendered.complete is None else rendered.complete.astype(jnp.float32)
  return jnp.sum(weight[:, None] * (rendered.rgb - rgb)**2) / jnp.maximum(3.0 * jnp.sum(weight), 1.0)


def median_depth(rendered: RenderedRays) -> jnp.ndarray:
  """[...] the distance in front of which half of a ray's weight lies (linear within each interval); the
  far edge for empty rays, and the expected depth for packed samples (which keep no edges). Computed only
  where asked (rendering images), not in every training step."""
  if rendered.t_edges is None:
    return rendered.depth
  edges, w = jax.lax.stop_gradient(rendered.t_edges), jax.lax.stop_gradient(rendered.w)
  median = stepfun.weighted_percentile(edges, w, [50.0])[..., 0]
  return jnp.where(rendered.acc > 1e-10, median, edges[..., -1])


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


def volume_render(rgb, density, t, directions, background, far_delta: float = FAR_DELTA,
                  extras: Optional[Dict] = None) -> RenderedRays:
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
    extras: other per-sample quantities {name: [..., num_samples, D]} to composite like colour.

  Returns:
    RenderedRays. `depth` is sum(w * t) / acc, clipped to [t_first, t_last]; it is t_last where acc is 0.
  """
  w = compute_weights(density, sample_deltas(t, directions, far_delta))
  return finish(w, t, density, rgb, background, t[..., -1], extras, depth_range=(t[..., 0], t[..., -1]))


def render_intervals(rgb, density, t_edges, directions, background, opaque_last: bool = False,
                     extras: Optional[Dict] = None) -> RenderedRays:
  """Composites intervals along rays (mip-NeRF's form of Eq. 3: each sample stands for its interval).

  Args:
    rgb: [..., num_samples, 3] colours, or None (a density-only level: rgb comes back None).
    density: [..., num_samples] densities.
    t_edges: [..., num_samples + 1] increasing interval edges along `directions` [..., 3].
    background: [3] or [..., 3].
    opaque_last: make the last interval opaque, so that every ray stops by its far bound and no background
      shows (mip-NeRF 360's `opaque_background`, for unbounded scenes: else a sky close to the background
      colour is learnt as transparency).

  Returns:
    RenderedRays with depth the expected distance of the intervals' midpoints (given that the ray
    terminates; t_edges' last where the ray is empty) and t_edges.
  """
  delta = (t_edges[..., 1:] - t_edges[..., :-1]) * jnp.linalg.norm(directions, axis=-1, keepdims=True)
  w = compute_weights(density, delta)
  if opaque_last:  # The last weight takes all the light left: its transmittance.
    w = jnp.concatenate([w[..., :-1], jnp.maximum(1.0 - jnp.sum(w[..., :-1], axis=-1, keepdims=True), 0.0)],
                        axis=-1)
  middle = 0.5 * (t_edges[..., 1:] + t_edges[..., :-1])
  rendered = finish(w, middle, density, rgb, background, t_edges[..., -1], extras,
                    depth_range=(t_edges[..., 0], t_edges[..., -1]))
  return rendered._replace(t_edges=t_edges)


def _segmented_cumsum(values, segment_start):
  """Inclusive cumulative sums [C] of values [C] that restart wherever segment_start [C] is True."""

  def combine(a, b):
    (a_sum, a_start), (b_sum, b_start) = a, b
    return jnp.where(b_start, b_sum, a_sum + b_sum), a_start | b_start

  return jax.lax.associative_scan(combine, (values, segment_start))[0]


def compute_weights_packed(density, delta, ray_index):
  """`compute_weights` for packed samples: w_i = T_i * (1 - exp(-sigma_i delta_i)), with T_i accumulated
  over the earlier samples of the same ray only.

  Args:
    density, delta: [C] per slot; unused slots must hold zero density.
    ray_index: [C] ray of each slot, non-decreasing.

  Returns:
    (w, transmittance), [C] each.
  """
  density_delta = density * delta
  segment_start = jnp.concatenate([jnp.ones(1, bool), ray_index[1:] != ray_index[:-1]])
  # The optical depth before each sample: the sum over the ray's earlier samples. Scanning the previous
  # sample's value (0 at a ray's start) gives it exactly, rather than as a difference of large sums.
  previous = jnp.where(segment_start, 0.0, jnp.concatenate([jnp.zeros(1), density_delta[:-1]]))
  transmittance = jnp.exp(-_segmented_cumsum(previous, segment_start))
  return -jnp.expm1(-density_delta) * transmittance, transmittance


def volume_render_packed(rgb, density, t, delta, ray_index, num_rays: int, background,
                         empty_depth, extras: Optional[Dict] = None) -> RenderedRays:
  """`volume_render` for packed samples (Eq. 3 per ray, over the ray's slots).

  Args:
    rgb: [C, 3] colours; density: [C] densities, zero in unused slots.
    t: [C] sample depths (NeRF's t); delta: [C] metric interval of each sample.
    ray_index: [C] non-decreasing ray of each slot, num_rays in unused slots.
    num_rays: R.
    background: [3] or [R, 3].
    empty_depth: [R] depth reported for rays with no opacity (e.g. their far bound).
    extras: other per-sample quantities {name: [C, D]} to composite like colour.

  Returns:
    RenderedRays with rgb [R, 3], depth [R], acc [R] and w [C].
  """
  w, _ = compute_weights_packed(density, delta, ray_index)
  return finish(w, t, density, rgb, background, empty_depth, extras,
                lambda w, values: composite_packed(w, values, ray_index, num_rays))


def conical_frustum_to_gaussian(directions, t0, t1, radii, diagonal: bool = True):
  """Mean and covariance of the conical frustums between t0 and t1 along cones (mip-NeRF, Sec. 3.1).

  A cone with apex at the origin follows directions [..., 3], with radius `radii` [..., 1] per unit of t.
  The frustum's moments along the axis and across it are computed in mip-NeRF's numerically stable form
  (Eq. 7), with t_mu = (t0 + t1) / 2 and t_delta = (t1 - t0) / 2:

    mu_t      = t_mu + 2 t_mu t_delta^2 / (3 t_mu^2 + t_delta^2)
    sigma_t^2 = t_delta^2 / 3 - 4/15 t_delta^4 (12 t_mu^2 - t_delta^2) / (3 t_mu^2 + t_delta^2)^2
    sigma_r^2 = radii^2 (t_mu^2 / 4 + 5/12 t_delta^2 - 4/15 t_delta^4 / (3 t_mu^2 + t_delta^2))

  and lifted to world space (Eq. 8): mean = mu_t d, cov = sigma_t^2 d d^T + sigma_r^2 (I - d d^T / |d|^2).

  Args:
    directions: [..., 3] cone axes (t is measured along them; they need not be unit length).
    t0, t1: [..., num_samples] interval ends, 0 <= t0 <= t1.
    radii: [..., 1] cone radius per unit of t.
    diagonal: return only the diagonal of the covariance.

  Returns:
    mean [..., num_samples, 3] (relative to the cone's apex: add the ray origin), and the covariance
    [..., num_samples, 3] (diagonal) or [..., num_samples, 3, 3].
  """
  t_mu, t_delta = 0.5 * (t0 + t1), 0.5 * (t1 - t0)
  # Written with the ratio t_delta^2 / (3 t_mu^2 + t_delta^2), in [0, 1], so that no power of t beyond the
  # square is formed: t_delta^4 and the squared denominator under- or overflow float32 at extreme distances.
  # The ratio does not change when t is scaled, so it is computed on t / t1 (t1 held constant), whose
  # gradient (1 / denominator^2) stays finite too.
  scale = jax.lax.stop_gradient(jnp.where(t1 > 0, t1, 1.0))
  scaled_mu, scaled_delta = t_mu / scale, t_delta / scale
  denominator = 3.0 * scaled_mu**2 + scaled_delta**2
  positive = denominator > 0
  ratio = jnp.where(positive, scaled_delta**2 / jnp.where(positive, denominator, 1.0), 0.0)
  mean_t = t_mu + 2.0 * t_mu * ratio
  variance_t = t_delta**2 / 3.0 - (4.0 / 15.0) * ratio**2 * (12.0 * t_mu**2 - t_delta**2)
  variance_r = radii**2 * (t_mu**2 / 4.0 + (5.0 / 12.0) * t_delta**2 - (4.0 / 15.0) * t_delta**2 * ratio)
  d = directions[..., None, :]
  mean = mean_t[..., None] * d
  squared_norm = jnp.maximum(jnp.sum(directions**2, axis=-1), 1e-10)[..., None, None]
  if diagonal:
    axis_share = d**2 / squared_norm  # The diagonal of d d^T / |d|^2.
    cov_diag = variance_t[..., None] * d**2 + variance_r[..., None] * (1.0 - axis_share)
    return mean, cov_diag
  outer = d[..., :, None] * d[..., None, :]
  across = jnp.eye(3) - outer / squared_norm[..., None]
  cov = variance_t[..., None, None] * outer + variance_r[..., None, None] * across
  return mean, cov
