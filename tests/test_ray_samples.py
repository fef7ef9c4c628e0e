"""The samples every renderer hands its fields (ops/ray_samples.py), and the camera index rays carry
(camera.Rays.cam_idx) from the data to the fields."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnerf import datasets
from jaxnerf.datasets.batching import RayBatcher
from jaxnerf.models import conditioning
from jaxnerf.models import fields
from jaxnerf.ops import camera
from jaxnerf.ops import compositing
from jaxnerf.ops.ray_samples import RaySamples
from jaxnerf.training import steps as steps_lib
from tests.tiny_configs import tiny_config


def _rays(num_rays=6, seed=0):
  rng = np.random.default_rng(seed)
  pose = np.concatenate([np.eye(3), rng.normal(size=(3, 1))], axis=1)
  return camera.pixels_to_rays(rng.uniform(0, 20, num_rays), rng.uniform(0, 20, num_rays), pose,
                               camera.Intrinsics.pinhole(25.0, 20, 20), 0.5, 4.0, cam_idx=np.arange(num_rays))


def _t_edges(num_rays, num_samples=5, seed=1):
  return np.sort(np.random.default_rng(seed).uniform(0.5, 4.0, (num_rays, num_samples + 1)), axis=-1).astype(np.float32)


def test_samples_give_the_points_renderers_formed_before_exactly():
  rays, t = _rays(), _t_edges(6)
  samples = RaySamples.along_rays(rays, t[:, :-1], t[:, 1:])
  chex.assert_shape(samples.points(), (6, 5, 3))
  np.testing.assert_array_equal(samples.points(),
                                rays.origins[:, None, :] + t[:, :-1, None] * rays.directions[:, None, :])
  np.testing.assert_array_equal(samples.positions(), samples.points())  # Not conical: points.


def test_conical_samples_give_the_frustum_gaussians_of_their_intervals():
  rays, t = _rays(), _t_edges(6)
  samples = RaySamples.along_rays(rays, t[:, :-1], t[:, 1:], conical=True)
  mean, cov_diag = compositing.conical_frustum_to_gaussian(rays.directions, t[:, :-1], t[:, 1:], rays.radii)
  gaussians = samples.positions()
  np.testing.assert_allclose(gaussians.mean, mean + rays.origins[:, None, :], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(gaussians.cov_diag, cov_diag, rtol=1e-6, atol=1e-12)


def test_samples_carry_their_rays_camera_index_and_the_training_progress():
  rays, t = _rays(), _t_edges(6)
  samples = RaySamples.along_rays(rays, t[:, :-1], t[:, 1:], progress=0.25)
  np.testing.assert_array_equal(samples.per_sample(samples.cam_idx)[..., 0], np.repeat(np.arange(6)[:, None], 5, 1))
  assert float(samples.progress) == 0.25
  # A pytree: jit and tree maps see every array, and `conical` stays static.
  traced = jax.jit(lambda s: s)(samples.replace(conical=True))
  assert traced.conical


def test_training_rays_carry_their_image_and_other_splits_any_camera(scene_cache):
  config = tiny_config(scene_cache)
  train, val = datasets.load_split(config, 'train'), datasets.load_split(config, 'val')
  pixels = RayBatcher(train, batch_size=64, seed=3).batch(0)['pixels']
  image, _, _ = RayBatcher(train, batch_size=64, seed=3).pixel_indices(0)
  rays = steps_lib.batch_rays({'pixels': pixels}, train.camera_table().as_arrays(jnp))['rays']  # The step's.
  np.testing.assert_array_equal(rays.cam_idx[:, 0], image)
  assert rays.cam_idx.dtype == np.int32
  np.testing.assert_array_equal(train.rays_of_pixels(*pixels.T).cam_idx[:, 0], image)
  np.testing.assert_array_equal(train.rays_of_image(5).cam_idx, 5)
  np.testing.assert_array_equal(val.rays_of_image(1).cam_idx, camera.ANY_CAMERA)
  path_rays = train.rays_of_view(train.camtoworlds[0], train.intrinsics.take(0), 8, 8)
  np.testing.assert_array_equal(path_rays.cam_idx, camera.ANY_CAMERA)


def test_fields_read_their_conditioning_from_the_camera_index():
  """A field's colour depends on its conditioning's output for each sample's camera; without conditioning it
  has the parameters it had before."""

  class Offsets(nn.Module):  # A per-image input: image k reads k (any other camera reads -1).
    @nn.compact
    def __call__(self, cam_idx):
      return cam_idx.astype(jnp.float32)

  field = fields.MLPField(depth=2, width=16, width_view=8, conditioning=(Offsets(),))
  rays, t = _rays(), _t_edges(6)
  samples = RaySamples.along_rays(rays, t[:, :-1], t[:, 1:])
  variables = field.init(jax.random.key(0), samples)
  seen = field.apply(variables, samples)
  other = field.apply(variables, samples.replace(cam_idx=jnp.zeros_like(samples.cam_idx)))
  assert np.all(np.abs(np.asarray(seen.rgb - other.rgb))[1:].max(axis=(1, 2)) > 0)  # Rays 1-5 change.
  np.testing.assert_array_equal(seen.rgb[0], other.rgb[0])  # Ray 0 is image 0 either way.
  np.testing.assert_array_equal(seen.density, other.density)  # Geometry never reads it.
  plain = fields.MLPField(depth=2, width=16, width_view=8)
  kernel = lambda v: v['params']['view']['kernel'].shape[0]
  assert kernel(variables) == kernel(plain.init(jax.random.key(0), samples)) + 1
  assert conditioning.build_modules(tiny_config().model, jnp.float32) == ()  # Off by default.
