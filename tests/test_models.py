"""Fields and renderers: the architectures the papers describe. (Their normals: test_normals.py.)"""

import dataclasses
import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxnerf.errors import ConfigError
from jaxnerf import models
from jaxnerf.models import appearance
from jaxnerf.models import fields
from jaxnerf.models.proposal import anneal_power
from jaxnerf.models.proposal import scale_gradient
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from tests.field_calls import at
from tests.field_calls import compiled_at
from tests.field_calls import compiled_init


def test_the_paper_mlp_feeds_the_encoded_point_again_to_its_sixth_layer():
  """NeRF's Fig. 7 and its code (skips=[4]), JaxNeRF and multinerf: the 5th layer's output is concatenated
  with the encoded point, so the 6th layer (trunk_5) reads 256 + 63 inputs and every other layer 256."""
  field = models.MLPField()  # The paper's: 8x256, positional encoding of 10 octaves (3 + 3 * 2 * 10 = 63).
  points = jnp.zeros((2, 3))
  init = functools.partial(field.init, method='at_positions')
  shapes = jax.eval_shape(init, jax.random.key(0), points, points)['params']
  input_sizes = {name: shapes[name]['kernel'].shape[0] for name in shapes if name.startswith('trunk_')}
  assert input_sizes == {'trunk_0': 63, 'trunk_1': 256, 'trunk_2': 256, 'trunk_3': 256, 'trunk_4': 256,
                         'trunk_5': 256 + 63, 'trunk_6': 256, 'trunk_7': 256}


# Chunks of 100 samples: 512 flat samples in 6 chunks, the last one padded; 32 rays of 16 samples in chunks
# of 2 samples of every ray (the largest divisor of 16 that keeps 32 k <= 100).
@pytest.mark.device
@pytest.mark.parametrize('shape', [(512, 3), (32, 16, 3)])
def test_remat_changes_no_value_or_gradient_and_keeps_fewer_activations(monkeypatch, shape):
  """Gradient checkpointing (model.remat): the same parameters, outputs and gradients (normals' too, which
  differentiate through the trunk), and the backward pass keeps no activation of the trunk."""
  monkeypatch.setattr(fields.MLPField, 'REMAT_CHUNK', 100)
  kwargs = dict(depth=4, width=32, normals='density' if len(shape) == 3 else 'none')
  plain, remat = fields.MLPField(**kwargs), fields.MLPField(remat=True, **kwargs)
  points = jax.random.normal(jax.random.key(0), shape)
  viewdirs = points / jnp.linalg.norm(points, axis=-1, keepdims=True)
  params = compiled_init(plain, jax.random.key(1), points, viewdirs)
  chex.assert_trees_all_equal_shapes(params,
                                     jax.eval_shape(compiled_init, remat, jax.random.key(1), points, viewdirs))

  def loss(field):
    def of_params(p):
      out = at(field, p, points, viewdirs)
      normals = out.extras['normals'][..., 0] if out.extras else 0.0
      return jnp.sum(out.rgb ** 2) + jnp.sum(out.density) + jnp.sum(normals)
    return jax.jit(jax.value_and_grad(of_params))

  # Kernel gradients sum over the chunks in another order: float32 rounding, a few 1e-6 on entries ~0.1.
  chex.assert_trees_all_close(loss(remat)(params), loss(plain)(params), rtol=1e-4, atol=1e-5)


  def kept_for_backward(remat):  # Bytes of the residuals that the backward pass reads (no normals: their
    field = fields.MLPField(depth=4, width=32, remat=remat)  # backward pass runs in the forward, keeping all).
    backward = jax.jit(lambda p: jax.vjp(lambda p: at(field, p, points, viewdirs).density, p)[1])(params)
    return sum(leaf.nbytes for leaf in jax.tree.leaves(backward))

  kept = {remat: kept_for_backward(remat) for remat in (False, True)}
  assert kept[True] < 0.4 * kept[False], kept  # The encoded inputs and the parameters, no activations.


def test_remat_is_refused_where_no_field_is_an_mlp():
  config = default.get_config()
  config.model.update(field='hash_grid', remat=True)
  with pytest.raises(ConfigError, match='config.model.remat=True recomputes the trunk activations of MLP fields'):
    models.make_model(config.model, (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))


class _SphereField(nn.Module):
  """An opaque grey unit sphere at the origin in empty space (analytic); reads points or Gaussians."""

  @nn.compact
  def density(self, inputs, rng=None):
    points = inputs.mean if isinstance(inputs, models.Gaussians) else inputs
    return jnp.where(jnp.linalg.norm(points, axis=-1) < 1.0, 1e6, 0.0), None

  def density_at(self, samples, rng=None):
    return self.density(samples.positions())

  def __call__(self, samples, rng=None):
    density, _ = self.density_at(samples)
    return models.FieldOutputs(density, jnp.full(density.shape + (3,), 0.25))


def _rays_at_sphere(num_rays=16):
  """Rays from (0, 0, -4) along +z (unit directions, so t is depth) with offsets b < 1 from the axis: they
  hit the unit sphere at t = 4 - sqrt(1 - b^2)."""
  offsets = np.linspace(0.0, 0.9, num_rays)
  origins = np.stack([offsets, np.zeros(num_rays), np.full(num_rays, -4.0)], -1)
  directions = np.tile([[0.0, 0.0, 1.0]], (num_rays, 1))
  rays = Rays(jnp.asarray(origins, jnp.float32), jnp.asarray(directions, jnp.float32),
              jnp.asarray(directions, jnp.float32), jnp.full((num_rays, 1), 2.0), jnp.full((num_rays, 1), 6.0),
              jnp.full((num_rays, 1), 1e-3), jnp.full((num_rays, 1), -1, jnp.int32))
  return rays, 4.0 - np.sqrt(1.0 - offsets**2)


@pytest.mark.parametrize('renderer', ['nerf', 'mipnerf', 'proposal'])
@pytest.mark.parametrize('rng', [None, 0])
def test_each_renderer_finds_the_depth_of_an_analytic_sphere(renderer, rng):
  model = {
      'nerf': lambda: models.NeRF(coarse_field=_SphereField(), fine_field=_SphereField(),
                                  num_coarse_samples=64, num_fine_samples=64),
      'mipnerf': lambda: models.MipNeRF(field=_SphereField(), num_samples=64),
      'proposal': lambda: models.ProposalNeRF(field=_SphereField(), proposal_fields=[_SphereField()] * 2,
                                              num_proposal_samples=(32, 32), num_samples=16),
  }[renderer]()
  rays, hit_depth = _rays_at_sphere()
  key = None if rng is None else jax.random.key(rng)
  renderings = jax.jit(lambda r: model.apply({}, key, r, jnp.ones(3), 1.0))(rays)
  final = renderings[-1]
  np.testing.assert_allclose(final.acc, 1.0, atol=1e-5)
  np.testing.assert_allclose(final.rgb, 0.25, atol=1e-5)
  # Within one first-level interval (4 / 64: the surface can fall anywhere in it, and a frustum is dense
  # only where its mean is), and far closer for most rays: resampling concentrates samples at the surface.
  for depth in (final.depth, compositing.median_depth(final)):
    error = np.abs(np.asarray(depth) - hit_depth)
    assert error.max() < 4.0 / 64 and np.median(error) < 0.02, error
  for level in renderings:  # The ray history: increasing edges in [0, 1], a weight per interval.
    edges = np.asarray(level.s_edges)
    assert edges.shape[-1] == level.w.shape[-1] + 1 and np.all(np.diff(edges, axis=-1) >= 0)
    assert edges.min() >= 0.0 and edges.max() <= 1.0
  # The first level spans the ray but for the jitter of its end samples.
  first = np.asarray(renderings[0].s_edges)
  assert np.all(first[:, 0] < 2.0 / first.shape[-1]) and np.all(first[:, -1] > 1.0 - 2.0 / first.shape[-1])
  if renderer == 'proposal':
    assert [r.rgb is None for r in renderings] == [True, True, False]
    widths = lambda level: np.diff(np.asarray(level.s_edges), axis=-1)
    # Each level's intervals near the surface are narrower than a uniform split: the sampler focused.
    assert np.median(np.min(widths(renderings[-1]), axis=-1)) < 0.1 / 16


class _SoftSphereField(_SphereField):
  """A sphere whose density falls smoothly at its surface: positions have a gradient."""

  @nn.compact
  def density(self, inputs, rng=None):
    points = inputs.mean if isinstance(inputs, models.Gaussians) else inputs
    return 50.0 * jax.nn.sigmoid(20.0 * (1.0 - jnp.linalg.norm(points, axis=-1))), None


def test_proposal_levels_pass_no_gradient_to_the_rays_and_the_field_does():
  """A learned camera (training/camera_optimizer.py) follows the field's colours: the proposal levels' weights
  (what the interlevel loss reads) have no gradient in the rays' origins, the final level's have one."""
  model = models.ProposalNeRF(field=_SoftSphereField(), proposal_fields=[_SoftSphereField()] * 2,
                              num_proposal_samples=(32, 32), num_samples=16)
  rays, _ = _rays_at_sphere()

  def level_weights(origins):  # [levels]
    renderings = model.apply({}, None, rays._replace(origins=origins), jnp.ones(3), 1.0)
    return jnp.stack([jnp.sum(level.w**2) for level in renderings])

  grads = np.asarray(jax.jit(jax.jacrev(level_weights))(rays.origins))  # Each level's gradient, one program.
  for level, moves in ((0, False), (1, False), (2, True)):
    grad = grads[level]
    assert np.all(np.isfinite(grad)) and (np.abs(grad).max() > 1e-3) == moves, (level, np.abs(grad).max())


def test_proposal_annealing_rises_from_uniform_to_the_weights():
  power = [float(anneal_power(p, 10.0)) for p in (0.0, 0.1, 0.5, 1.0, 2.0)]
  assert power[0] == 0.0 and power[-2] == power[-1] == pytest.approx(1.0)
  assert np.all(np.diff(power) >= 0) and power[1] > 0.5  # Steep: half way within a tenth of the run.
  assert anneal_power(0.3, 0.0) == 1.0


def test_integrated_encoding_of_points_is_the_positional_one_and_wide_gaussians_fade():
  field = models.MLPField(depth=2, width=16, width_view=8, point_max_deg=6, encoding='integrated')
  positional = models.MLPField(depth=2, width=16, width_view=8, point_max_deg=6)
  rng = np.random.default_rng(0)
  points = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  viewdirs = points / jnp.linalg.norm(points, axis=-1, keepdims=True)
  variables = compiled_init(field, jax.random.key(0), points, viewdirs)
  # Positional encoding includes the input (3 more inputs): compare the integrated one on points with its
  # own Gaussians of zero extent, and with very wide Gaussians (every frequency fades: constant output).
  as_points = compiled_at(field, variables, points, viewdirs)
  as_gaussians = compiled_at(field, variables, models.Gaussians(points, jnp.zeros_like(points)), viewdirs)
  chex.assert_trees_all_close(as_points, as_gaussians)
  wide = [compiled_at(field, variables, models.Gaussians(points + shift, jnp.full_like(points, 1e4)), viewdirs)
          for shift in (0.0, 5.0)]
  chex.assert_trees_all_close(wide[0].density, wide[1].density, atol=1e-6)
  params = jax.eval_shape(compiled_init, positional, jax.random.key(0), points, viewdirs)['params']
  assert params['trunk_0']['kernel'].shape[0] == 39


@pytest.mark.parametrize('field_name', ['mlp', 'hash_grid'])
def test_contracted_fields_stay_finite_with_gradients_at_extreme_distances(field_name):
  if field_name == 'mlp':
    field = models.MLPField(depth=2, width=16, width_view=8, encoding='integrated', warp='contract',
                            contract_radius=2.0, density_activation='softplus')
  else:
    field = models.HashGridField(num_levels=4, log2_table_size=8, max_resolution=32, density_width=8,
                                 geo_features=3, color_depth=1, color_width=8, warp='contract',
                                 contract_radius=2.0)
  distances = jnp.array([1e-3, 1.0, 1e2, 1e4, 1e6, 1e8])
  direction = jnp.array([0.6, 0.0, 0.8])
  gaussians = models.Gaussians(distances[:, None] * direction, (1e-3 * distances[:, None])**2 * jnp.ones(3))
  viewdirs = jnp.broadcast_to(direction, gaussians.mean.shape)
  variables = compiled_init(field, jax.random.key(0), gaussians, viewdirs)

  def density_sum(v, g):
    out = at(field, v, g, viewdirs)
    return jnp.sum(out.density), out

  (_, out), grads = jax.jit(jax.value_and_grad(density_sum, argnums=(0, 1), has_aux=True))(variables, gaussians)
  chex.assert_tree_all_finite(out)
  chex.assert_tree_all_finite(grads)
  # All of space lands inside the ball of radius 2 * contract_radius.
  warped = jax.jit(models.fields.warp_inputs, static_argnums=(1, 2))(gaussians, 'contract', 2.0)
  assert float(jnp.max(jnp.linalg.norm(warped.mean, axis=-1))) <= 4.0 + 1e-5


def test_gradient_scaling_keeps_values_and_scales_gradients():
  x = jnp.array([1.0, -2.0, 3.0])
  scale = jnp.array([0.0, 0.25, 1.0])
  np.testing.assert_array_equal(scale_gradient(x, scale), x)
  np.testing.assert_allclose(jax.grad(lambda y: jnp.sum(scale_gradient(y, scale) ** 2))(x), 2 * x * scale)


def test_hash_grid_hidden_features_widen_what_the_colour_reads_and_leave_the_density_alone():
  settings = dict(num_levels=2, log2_table_size=8, max_resolution=32, density_width=16, geo_features=7)
  narrow, wide = fields.HashGridField(**settings), fields.HashGridField(**settings, hidden_features=True)
  points = jax.random.uniform(jax.random.key(0), (64, 3), minval=-1, maxval=1)
  # The flag adds no parameter.
  variables = jax.jit(functools.partial(narrow.init, method='geometry'))(jax.random.key(1), points)
  variables = jax.tree.map(lambda v: v * 1e3, variables)
  (density, features), (wide_density, wide_features) = (
      jax.jit(functools.partial(field.apply, method='geometry'))(variables, points) for field in (narrow, wide))
  np.testing.assert_array_equal(wide_density, density)
  chex.assert_shape(wide_features, (64, 16 + 7))
  np.testing.assert_array_equal(wide_features[:, 16:], features)  # The outputs, after the hidden layer.
  hidden = wide_features[:, :16]
  assert float(hidden.min()) >= 0 and int(jax.jit(jnp.linalg.matrix_rank)(hidden)) > 7  # ReLU units, wider than 7.
  # Ref-NeRF's heads over it read all 23 numbers.
  from jaxnerf.models.appearance import RefNeRFAppearance
  field = fields.HashGridField(**settings, hidden_features=True, appearance=RefNeRFAppearance(
      bottleneck_width=8, depth=1, width=8, ide_levels=2))
  viewdirs = points / jnp.linalg.norm(points, axis=-1, keepdims=True)
  params = jax.eval_shape(compiled_init, field, jax.random.key(2), points, viewdirs)['params']
  chex.assert_shape(params['appearance']['bottleneck']['kernel'], (23, 8))


@pytest.mark.parametrize('module, group', [
    (models.MLPField, 'mlp'), (models.HashGridField, 'hash_grid'), (models.OccupancyGridNeRF, 'occupancy_grid'),
    (models.MipNeRF, 'mipnerf'), (appearance.RefNeRFAppearance, 'refnerf'), (models.ProposalNeRF, 'proposal')])
def test_a_modules_defaults_are_its_config_groups(module, group):
  """One place for each default: a module built without a setting behaves as the default config does."""
  config_group = default.get_config().model[group]
  module_defaults = {f.name: f.default for f in dataclasses.fields(module) if f.default is not dataclasses.MISSING}
  as_python = lambda v: tuple(v) if isinstance(v, (list, tuple)) else v
  differing = {key: (module_defaults[key], value) for key, value in config_group.items()
               if key in module_defaults and not hasattr(value, 'items')
               and as_python(module_defaults[key]) != as_python(value)}
  assert not differing, differing
