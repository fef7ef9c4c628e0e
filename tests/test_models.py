"""Fields and renderers: the architectures the papers describe."""

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
  params = _compiled_init(plain, jax.random.key(1), points, viewdirs)
  chex.assert_trees_all_equal_shapes(params,
                                     jax.eval_shape(_compiled_init, remat, jax.random.key(1), points, viewdirs))

  def loss(field):
    def of_params(p):
      out = _at(field, p, points, viewdirs)
      normals = out.extras['normals'][..., 0] if out.extras else 0.0
      return jnp.sum(out.rgb ** 2) + jnp.sum(out.density) + jnp.sum(normals)
    return jax.jit(jax.value_and_grad(of_params))

  # Kernel gradients sum over the chunks in another order: float32 rounding, a few 1e-6 on entries ~0.1.
  chex.assert_trees_all_close(loss(remat)(params), loss(plain)(params), rtol=1e-4, atol=1e-5)


  def kept_for_backward(remat):  # Bytes of the residuals that the backward pass reads (no normals: their
    field = fields.MLPField(depth=4, width=32, remat=remat)  # backward pass runs in the forward, keeping all).
    backward = jax.jit(lambda p: jax.vjp(lambda p: _at(field, p, points, viewdirs).density, p)[1])(params)
    return sum(leaf.nbytes for leaf in jax.tree.leaves(backward))

  kept = {remat: kept_for_backward(remat) for remat in (False, True)}
  assert kept[True] < 0.4 * kept[False], kept  # The encoded inputs and the parameters, no activations.


def test_remat_is_refused_where_no_field_is_an_mlp():
  config = default.get_config()
  config.model.update(field='hash_grid', remat=True)
  with pytest.raises(ConfigError, match='config.model.remat=True recomputes the trunk activations of MLP fields'):
    models.make_model(config.model, (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))


def _at(field, variables, *args):
  """field.apply(variables, *args) at positions (fields.FieldBase.at_positions)."""
  return field.apply(variables, *args, method='at_positions')


# Compiled, once per field's settings (flax modules hash by them): op by op, initialising or applying a field
# compiles a tiny program per operation, ~0.05 s each on a small CPU.
_compiled_at = jax.jit(_at, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _compiled_init(field, key, *args):
  """field.init(key, *args) at positions, compiled."""
  return field.init(key, *args, method='at_positions')


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
  variables = _compiled_init(field, jax.random.key(0), points, viewdirs)
  # Positional encoding includes the input (3 more inputs): compare the integrated one on points with its
  # own Gaussians of zero extent, and with very wide Gaussians (every frequency fades: constant output).
  as_points = _compiled_at(field, variables, points, viewdirs)
  as_gaussians = _compiled_at(field, variables, models.Gaussians(points, jnp.zeros_like(points)), viewdirs)
  chex.assert_trees_all_close(as_points, as_gaussians)
  wide = [_compiled_at(field, variables, models.Gaussians(points + shift, jnp.full_like(points, 1e4)), viewdirs)
          for shift in (0.0, 5.0)]
  chex.assert_trees_all_close(wide[0].density, wide[1].density, atol=1e-6)
  params = jax.eval_shape(_compiled_init, positional, jax.random.key(0), points, viewdirs)['params']
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
  variables = _compiled_init(field, jax.random.key(0), gaussians, viewdirs)

  def density_sum(v, g):
    out = _at(field, v, g, viewdirs)
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


class _RadialDensityField(fields.FieldBase):
  """A field whose raw density is analytic: 1 - |x|^2 (denser towards the centre), so its normals are known
  in closed form: x / |x|, outwards."""

  def geometry(self, inputs, progress=1.0):
    del progress
    points = inputs.mean if isinstance(inputs, fields.Gaussians) else inputs
    warped = fields.warp_inputs(points, self.warp, self.contract_radius)
    return 1.0 - jnp.sum(warped**2, axis=-1), warped

  def color(self, features, viewdirs, condition=None):
    return features + viewdirs


@pytest.mark.parametrize('warp', ['none', 'contract'])
def test_density_normals_of_an_analytic_density_point_out_of_the_surface(warp):
  rng = np.random.default_rng(0)
  directions = rng.normal(size=(64, 3))
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  # Points at radii from 1e-3 to 1e3: through the contraction too, the normals stay radial.
  points = jnp.asarray(directions * np.logspace(-3, 3, 64)[:, None], jnp.float32)
  field = _RadialDensityField(normals='density', warp=warp)
  out = _compiled_at(field, {}, points, jnp.asarray(directions, jnp.float32))
  chex.assert_shape(out.extras['normals'], (64, 3))
  # (Far out, the contraction's gradient is ~1 / r^2: float32 keeps its direction to about 1e-4.)
  np.testing.assert_allclose(out.extras['normals'], directions, atol=1e-4)
  gaussians = fields.Gaussians(points, jnp.full_like(points, 0.01))  # Normals at the Gaussians' means.
  density_normals = jax.jit(functools.partial(field.apply, {}, method='density_normals'))
  np.testing.assert_allclose(density_normals(gaussians), directions, atol=1e-4)
  # At the centre, where the gradient has no direction, the normal and its gradient stay finite.
  chex.assert_tree_all_finite(jax.jit(jax.grad(lambda x: jnp.sum(_at(field, {}, x, x).extras['normals'])))(
      jnp.zeros((1, 3))))


def test_normals_by_central_differences_are_exact_for_a_quadratic_and_smooth_the_hash_grids():
  rng = np.random.default_rng(0)
  directions = rng.normal(size=(64, 3))
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  points = jnp.asarray(directions * np.logspace(-1, 1, 64)[:, None], jnp.float32)
  # Central differences of 1 - |x|^2 are its gradient, -2x, whatever the step: the normals are radial.
  field = _RadialDensityField(normals='density', normals_step=0.05)
  np.testing.assert_allclose(_at(field, {}, points, points).extras['normals'], directions, atol=1e-4)
  # Over a hash grid, the normals are the differences of its raw density, and a wide step smooths them: the
  # normals of nearby points agree more than the exact ones do.
  grid = fields.HashGridField(num_levels=4, log2_table_size=10, max_resolution=64, normals='density')
  points = jax.random.uniform(jax.random.key(0), (64, 3), minval=-1, maxval=1)  # Inside the grid's box.
  # (Compiled: the tables op by op, bit for bit, in a third of the time.)
  variables = jax.jit(lambda key, x: grid.init(key, x, x, method='at_positions'))(jax.random.key(1), points)
  variables = jax.tree.map(lambda v: v * 1e3, variables)
  raw_density = lambda x: grid.apply(variables, x, method=lambda m, x: m.geometry(x)[0])
  step, axes = 0.05, np.eye(3, dtype=np.float32)
  brute = np.stack([(raw_density(points + step * a) - raw_density(points - step * a)) / (2 * step) for a in axes], -1)
  numerical = _at(grid.clone(normals_step=step), variables, points, points).extras['normals']
  np.testing.assert_allclose(numerical, -brute / np.linalg.norm(brute, axis=-1, keepdims=True), atol=1e-5)
  near = points[:1] + 0.01 * jax.random.normal(jax.random.key(2), (32, 3))
  spread = lambda normals: float(jnp.mean(jnp.sum(normals * jnp.mean(normals, 0), -1)))  # 1: all alike.
  exact, smooth = (_at(grid.clone(normals_step=h), variables, near, near).extras['normals'] for h in (0.0, 0.1))
  assert spread(smooth) > spread(exact)
  # Their gradients are finite and reach the tables.
  grads = jax.grad(lambda v: jnp.sum(_at(grid.clone(normals_step=step), v, points, points).extras['normals'][:, 0]))(
      variables)
  chex.assert_tree_all_finite(grads)
  assert float(jnp.abs(grads['params']['table_0']).sum()) > 0


@pytest.mark.device
@pytest.mark.parametrize('kind', ['mlp', 'hash_grid'])
def test_both_fields_give_the_normalised_negative_gradient_of_their_raw_density(kind):
  if kind == 'mlp':  # Octaves low enough for central differences of 1e-3.
    field = fields.MLPField(depth=2, width=32, width_view=16, point_max_deg=4, normals='density')
  else:
    field = fields.HashGridField(num_levels=4, log2_table_size=10, max_resolution=64, normals='density')
  points = jax.random.uniform(jax.random.key(0), (16, 3), minval=-1, maxval=1)
  viewdirs = points / jnp.linalg.norm(points, axis=-1, keepdims=True)
  variables = _compiled_init(field, jax.random.key(1), points, viewdirs)
  # (The hash grid op by op: compiling its normals takes longer than running them, their ops alike by level.)
  at = _compiled_at if kind == 'mlp' else _at
  out = at(field, variables, points, viewdirs)
  raw_density = jax.jit(lambda x: field.apply(variables, x, method=lambda m, x: m.geometry(x)[0]))
  gradient = np.asarray(jax.jit(jax.vmap(jax.grad(lambda x: raw_density(x[None])[0])))(points), np.float64)
  # The brute force: central differences of the raw density at the first 4 points, all in one call.
  step, axes = 1e-3, np.eye(3, dtype=np.float32)
  shifted = np.asarray(points[:4])[:, None, None, :] + np.array([step, -step])[None, :, None, None] * axes
  values = np.asarray(raw_density(jnp.asarray(shifted.reshape(-1, 3))), np.float64).reshape(4, 2, 3)
  central = (values[:, 0] - values[:, 1]) / (2 * step)
  np.testing.assert_allclose(central, gradient[:4], rtol=0.05, atol=1e-3)
  np.testing.assert_allclose(out.extras['normals'], -gradient / np.linalg.norm(gradient, axis=-1, keepdims=True),
                             atol=1e-5)
  # Without normals asked for, the field gives the same density and colour and no extras.
  plain = at(field.clone(normals='none'), variables, points, viewdirs)
  assert plain.extras is None
  chex.assert_trees_all_close((plain.density, plain.rgb), (out.density, out.rgb), rtol=1e-6)


def test_hash_grid_normals_by_forward_mode_have_the_reverse_mode_values_and_gradients():
  class ReverseModeHashGrid(fields.HashGridField):
    NORMALS_AUTODIFF = 'reverse'

  # Two levels, the finer one hashed ((32 + 1)^3 vertices > 2^8 entries).
  settings = dict(num_levels=2, log2_table_size=8, max_resolution=32, normals='density')
  forward, reverse = fields.HashGridField(**settings), ReverseModeHashGrid(**settings)
  points = jax.random.uniform(jax.random.key(0), (64, 3), minval=-1, maxval=1)
  viewdirs = points / jnp.linalg.norm(points, axis=-1, keepdims=True)
  variables = forward.init(jax.random.key(1), points, viewdirs, method='at_positions')
  variables = jax.tree.map(lambda v: v * 1e3, variables)  # Tables far from their tiny initial values.

  def normal_loss(field):  # A loss on the normals: the normal losses differentiate them once more.
    return jax.jit(jax.value_and_grad(lambda v: jnp.sum(_at(field, v, points, viewdirs).extras['normals'] *
                                                        jnp.array([0.3, -0.5, 0.8]))))

  chex.assert_trees_all_close(normal_loss(forward)(variables), normal_loss(reverse)(variables), rtol=2e-4,
                              atol=1e-5)


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
  params = jax.eval_shape(_compiled_init, field, jax.random.key(2), points, viewdirs)['params']
  chex.assert_shape(params['appearance']['bottleneck']['kernel'], (23, 8))


def test_refnerf_reflecting_about_the_density_normals_reads_them_and_shapes_them():
  from jaxnerf.errors import ConfigError  # pylint: disable=import-outside-toplevel
  from jaxnerf.models.appearance import RefNeRFAppearance  # pylint: disable=import-outside-toplevel
  appearance = RefNeRFAppearance(bottleneck_width=8, depth=2, width=16, ide_levels=3, reflect_about='density')
  features = jax.random.normal(jax.random.key(0), (32, 12))
  viewdirs = fields.safe_normalize(jax.random.normal(jax.random.key(1), (32, 3)))
  normals = fields.safe_normalize(jax.random.normal(jax.random.key(2), (32, 3)))
  variables = jax.jit(appearance.init)(jax.random.key(3), features, viewdirs, normals)
  assert 'normals_pred' not in variables['params']  # No head: nothing would train it.
  apply = jax.jit(appearance.apply)
  linear, extras = apply(variables, features, viewdirs, normals)
  assert 'normals_pred' not in extras
  # The reflection is about the normals given: other normals, other colours; the colour's gradient reaches
  # them (it shapes the density that gave them).
  assert float(jnp.max(jnp.abs(linear - apply(variables, features, viewdirs, -normals)[0]))) > 1e-3
  grad = jax.jit(jax.grad(lambda n: jnp.sum(appearance.apply(variables, features, viewdirs, n)[0])))(normals)
  assert float(jnp.abs(grad).sum()) > 0
  with pytest.raises(ConfigError, match="reflect_about='density' needs the density's normals"):
    appearance.apply(variables, features, viewdirs)


def test_refnerf_appearance_stays_finite_from_mirror_like_to_rough():
  from jaxnerf.models.appearance import RefNeRFAppearance
  appearance = RefNeRFAppearance(bottleneck_width=8, depth=3, width=16, skip_every=1, ide_levels=5)
  scales = jnp.repeat(jnp.array([1e-6, 1.0, 1e4, 1e4]), 8)[:, None]  # Tiny to huge features, a row each.
  features = scales * jax.random.normal(jax.random.key(0), (32, 12))
  viewdirs = fields.safe_normalize(jax.random.normal(jax.random.key(1), (32, 3)))
  variables = jax.jit(appearance.init)(jax.random.key(2), features, viewdirs)
  linear, extras = jax.jit(appearance.apply)(variables, features, viewdirs)
  chex.assert_shape(linear, (32, 3))
  assert float(linear.min()) >= 0 and float(linear.max()) <= 2  # Diffuse + tint x specular, each in [0, 1].
  # The parts the pictures show add up to the colour.
  np.testing.assert_allclose(extras['diffuse'] + extras['specular'], linear, rtol=1e-6)
  assert float(jnp.max(extras['specular'] - extras['tint'])) <= 1e-6  # The specular colour is at most 1.
  np.testing.assert_allclose(jnp.linalg.norm(extras['normals_pred'], axis=-1), 1.0, atol=1e-5)
  assert float(extras['roughness'].min()) >= 0  # (Large features drive it to 0 or to thousands.)
  grads = jax.jit(jax.grad(lambda v, f: jnp.sum(appearance.apply(v, f, viewdirs)[0]), argnums=(0, 1)))(
      variables, features)
  chex.assert_tree_all_finite(grads)


def test_any_field_can_predict_normals_for_the_tie_and_refnerf_keeps_its_own():
  from configs import demo  # pylint: disable=import-outside-toplevel
  from jaxnerf import losses  # pylint: disable=import-outside-toplevel
  from jaxnerf.errors import ConfigError  # pylint: disable=import-outside-toplevel
  config = demo.get_config()
  config.model.update(normals='density')
  config.loss.predicted_normals_weight = 3e-4
  model = models.make_model(config.model, config.scene_box)
  with pytest.raises(ConfigError, match='predicted_normals_weight=0.0003 needs'):  # No head, no tie.
    losses.check_terms(config.loss, models.model_provides(model, config.model), config.model.name)
  config.model.predicted_normals = True
  model = models.make_model(config.model, config.scene_box)
  losses.check_terms(config.loss, models.model_provides(model, config.model), config.model.name)

  field = fields.HashGridField(num_levels=4, log2_table_size=10, max_resolution=64, normals='density',
                               predicted_normals=fields.PredictedNormals())
  points = jax.random.uniform(jax.random.key(0), (2, 8, 3), minval=-1, maxval=1)
  viewdirs = points / jnp.linalg.norm(points, axis=-1, keepdims=True)
  variables = field.init(jax.random.key(1), points, viewdirs, method='at_positions')
  out = _at(field, variables, points, viewdirs)
  chex.assert_shape(out.extras['normals_pred'], (2, 8, 3))
  np.testing.assert_allclose(np.linalg.norm(out.extras['normals_pred'], axis=-1), 1.0, rtol=1e-5)
  assert variables['params']['predicted_normals']['normals_pred']['kernel'].shape[-1] == 3
  plain = _at(field.clone(predicted_normals=None), variables, points, viewdirs)  # Same density and colour.
  chex.assert_trees_all_close((plain.density, plain.rgb), (out.density, out.rgb), rtol=1e-6)

  config.model.appearance = 'refnerf'
  with pytest.raises(ConfigError, match="the appearance config.model.appearance='refnerf' predicts its own normals"):
    models.make_model(config.model, config.scene_box)


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
