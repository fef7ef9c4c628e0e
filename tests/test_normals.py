"""Normals: the density's (the normalised negative gradient of its raw density, Ref-NeRF Eq. 2: exact by
reverse or forward mode, or by central differences), predicted ones and their tie, and Ref-NeRF's appearance
that reflects about them."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf import models
from jaxnerf.models import fields
from tests.field_calls import at
from tests.field_calls import compiled_at
from tests.field_calls import compiled_init


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
  out = compiled_at(field, {}, points, jnp.asarray(directions, jnp.float32))
  chex.assert_shape(out.extras['normals'], (64, 3))
  # (Far out, the contraction's gradient is ~1 / r^2: float32 keeps its direction to about 1e-4.)
  np.testing.assert_allclose(out.extras['normals'], directions, atol=1e-4)
  gaussians = fields.Gaussians(points, jnp.full_like(points, 0.01))  # Normals at the Gaussians' means.
  density_normals = jax.jit(functools.partial(field.apply, {}, method='density_normals'))
  np.testing.assert_allclose(density_normals(gaussians), directions, atol=1e-4)
  # At the centre, where the gradient has no direction, the normal and its gradient stay finite.
  chex.assert_tree_all_finite(jax.jit(jax.grad(lambda x: jnp.sum(at(field, {}, x, x).extras['normals'])))(
      jnp.zeros((1, 3))))


def test_normals_by_central_differences_are_exact_for_a_quadratic_and_smooth_the_hash_grids():
  rng = np.random.default_rng(0)
  directions = rng.normal(size=(64, 3))
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  points = jnp.asarray(directions * np.logspace(-1, 1, 64)[:, None], jnp.float32)
  # Central differences of 1 - |x|^2 are its gradient, -2x, whatever the step: the normals are radial.
  field = _RadialDensityField(normals='density', normals_step=0.05)
  np.testing.assert_allclose(at(field, {}, points, points).extras['normals'], directions, atol=1e-4)
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
  numerical = at(grid.clone(normals_step=step), variables, points, points).extras['normals']
  np.testing.assert_allclose(numerical, -brute / np.linalg.norm(brute, axis=-1, keepdims=True), atol=1e-5)
  near = points[:1] + 0.01 * jax.random.normal(jax.random.key(2), (32, 3))
  spread = lambda normals: float(jnp.mean(jnp.sum(normals * jnp.mean(normals, 0), -1)))  # 1: all alike.
  exact, smooth = (at(grid.clone(normals_step=h), variables, near, near).extras['normals'] for h in (0.0, 0.1))
  assert spread(smooth) > spread(exact)
  # Their gradients are finite and reach the tables.
  grads = jax.grad(lambda v: jnp.sum(at(grid.clone(normals_step=step), v, points, points).extras['normals'][:, 0]))(
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
  variables = compiled_init(field, jax.random.key(1), points, viewdirs)
  # (The hash grid op by op: compiling its normals takes longer than running them, their ops alike by level.)
  apply_field = compiled_at if kind == 'mlp' else at
  out = apply_field(field, variables, points, viewdirs)
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
  plain = apply_field(field.clone(normals='none'), variables, points, viewdirs)
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
    return jax.jit(jax.value_and_grad(lambda v: jnp.sum(at(field, v, points, viewdirs).extras['normals'] *
                                                        jnp.array([0.3, -0.5, 0.8]))))

  chex.assert_trees_all_close(normal_loss(forward)(variables), normal_loss(reverse)(variables), rtol=2e-4,
                              atol=1e-5)


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
  out = at(field, variables, points, viewdirs)
  chex.assert_shape(out.extras['normals_pred'], (2, 8, 3))
  np.testing.assert_allclose(np.linalg.norm(out.extras['normals_pred'], axis=-1), 1.0, rtol=1e-5)
  assert variables['params']['predicted_normals']['normals_pred']['kernel'].shape[-1] == 3
  plain = at(field.clone(predicted_normals=None), variables, points, viewdirs)  # Same density and colour.
  chex.assert_trees_all_close((plain.density, plain.rgb), (out.density, out.rgb), rtol=1e-6)

  config.model.appearance = 'refnerf'
  with pytest.raises(ConfigError, match="the appearance config.model.appearance='refnerf' predicts its own normals"):
    models.make_model(config.model, config.scene_box)
