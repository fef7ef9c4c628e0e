"""Samples along rays: what every renderer hands its fields, and the positions a field derives from them.

In the spirit of nerfstudio's `RaySamples` and multinerf's rays with `cam_idx`: a renderer builds one
`RaySamples` per level from its rays and its sample distances, and a field reads what it needs (points,
the Gaussians of conical frustums, the view directions, the camera index, the training progress). A new
kind of input (multisamples, an appearance code, a learned camera's correction) is then a new derivation
here, not a new argument threaded through every renderer.

Naming conventions:
- `t_starts`, `t_ends`: each sample's interval along its ray, [..., N]; t is measured along `directions`
  (NeRF's depth for camera rays, ops/camera.py). Point samples sit at `t_starts` (NeRF's samples and
  instant-ngp's marching steps stand for the interval to the next one).
- Per-ray quantities (`origins`, `directions`, `viewdirs` [..., 1, 3]; `radii` [..., 1, 1]; `cam_idx`
  [..., 1, 1]) keep a sample axis of size 1 (or N) that broadcasts against the samples; packed samples
  (marching.py) are flat, [C] per sample and [C, 3] per ray quantity.
- `Gaussians`: mean [..., 3] and the diagonal of the covariance [..., 3] (mip-NeRF's stand-in for a frustum).
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxnerf.ops import compositing


class Gaussians(NamedTuple):
  mean: jnp.ndarray  # [..., 3]
  cov_diag: jnp.ndarray  # [..., 3], the diagonal of the covariance.


@dataclasses.dataclass(frozen=True)
class RaySamples:
  """Samples [..., N] along rays: see the module's naming conventions.

  Attributes:
    origins, directions: [..., 1 or N, 3] the rays' origins and directions (t is measured along them).
    viewdirs: [..., 1 or N, 3] unit view directions in the world (also for NDC rays).
    radii: [..., 1 or N, 1] the rays' cone radii per unit of t (ops/camera.py: Rays.radii).
    t_starts, t_ends: [..., N] the samples' intervals.
    cam_idx: [..., 1 or N, 1] int32, the training image each ray comes from, or camera.ANY_CAMERA /
      camera.NO_CAMERA (ops/camera.py).
    progress: scalar, the fraction of training done (1 when rendering images).
    conical: whether the samples stand for conical frustums (mip-NeRF: fields read `gaussians()`) or for
      points (NeRF, instant-ngp: `points()`); static.
  """

  origins: jnp.ndarray
  directions: jnp.ndarray
  viewdirs: jnp.ndarray
  radii: jnp.ndarray
  t_starts: jnp.ndarray
  t_ends: jnp.ndarray
  cam_idx: jnp.ndarray
  progress: jnp.ndarray
  conical: bool = False

  @classmethod
  def along_rays(cls, rays, t_starts, t_ends, progress=1.0, conical: bool = False) -> 'RaySamples':
    """The samples of intervals t_starts, t_ends [..., N] of rays (camera.Rays) [...]."""
    per_ray = lambda x: x[..., None, :]
    return cls(per_ray(rays.origins), per_ray(rays.directions), per_ray(rays.viewdirs), per_ray(rays.radii),
               t_starts, t_ends, per_ray(rays.cam_idx), jnp.asarray(progress, jnp.float32), conical)

  def replace(self, **changes) -> 'RaySamples':
    """These samples with `changes` ({attribute: value})."""
    return dataclasses.replace(self, **changes)

  @property
  def shape(self):
    """The samples' shape [..., N]."""
    return self.t_starts.shape

  def per_sample(self, x):
    """A per-ray quantity [..., 1 or N, D] broadcast to every sample, [..., N, D]."""
    return jnp.broadcast_to(x, self.shape + x.shape[-1:])

  def points(self):
    """[..., N, 3] the points at the samples' starts."""
    return self.origins + self.t_starts[..., None] * self.directions

  def gaussians(self) -> Gaussians:
    """The Gaussians [..., N] of the conical frustums between t_starts and t_ends of each ray's cone
    (compositing.conical_frustum_to_gaussian, mip-NeRF Eq. 7-8), in world space."""
    directions, radii = self.per_sample(self.directions), self.per_sample(self.radii)
    # Every sample as a ray of its own with one interval: the same elementwise maths as [..., N] at once.
    mean, cov_diag = compositing.conical_frustum_to_gaussian(directions, self.t_starts[..., None],
                                                           self.t_ends[..., None], radii)
    return Gaussians(mean[..., 0, :] + self.origins, cov_diag[..., 0, :])

  def positions(self):
    """What a field reads as the samples' positions: Gaussians where they stand for frustums, else points."""
    return self.gaussians() if self.conical else self.points()


# A pytree: jit, vmap and tree maps see its arrays; `conical` is static (part of the tree's structure).
jax.tree_util.register_dataclass(RaySamples, data_fields=[f.name for f in dataclasses.fields(RaySamples)
                                                          if f.name != 'conical'], meta_fields=['conical'])
