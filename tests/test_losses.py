"""The loss terms: brute-force references, masks, and finite gradients at extreme residuals."""

import types

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxnerf.errors import ConfigError
from jaxnerf import losses
from jaxnerf.ops.compositing import RenderedRays
from jaxnerf.ops import stepfun


def _loss_config(data='mse', coarse_weight=1.0, **weights):
  return ml_collections.ConfigDict(dict(data=data, charbonnier_eps=1e-3, coarse_weight=coarse_weight,
                                        interlevel_weight=0.0, distortion_weight=0.0, **weights))


def _data_term(history, target, penalty='mse', coarse_weight=1.0):
  return losses.data_term(history, {'rgb': jnp.asarray(target)}, _loss_config(penalty, coarse_weight))


def _renderings(rng, num_levels=2, complete=None):
  return [RenderedRays(rgb=jnp.asarray(rng.random((5, 3))), depth=None, acc=None, w=None, complete=complete)
          for _ in range(num_levels)]


def test_data_term_leaves_out_incomplete_rays_and_weights_the_coarse_levels():
  rng = np.random.default_rng(1)
  target = rng.random((5, 3))
  complete = np.array([True, False, True, True, False])
  coarse, fine = _renderings(rng, complete=jnp.asarray(complete))
  mse = lambda r: np.mean((np.asarray(r.rgb)[complete] - target[complete]) ** 2)
  np.testing.assert_allclose(_data_term([coarse, fine], target, 'mse', coarse_weight=0.1),
                             0.1 * mse(coarse) + mse(fine), rtol=1e-6)
  np.testing.assert_allclose(losses.level_mses([coarse, fine], jnp.asarray(target)), [mse(coarse), mse(fine)],
                             rtol=1e-6)
  # Without completeness flags every ray counts; with none complete the term is 0, not NaN.
  everything = fine._replace(complete=None)
  np.testing.assert_allclose(_data_term([everything], target),
                             np.mean((np.asarray(everything.rgb) - target) ** 2), rtol=1e-6)
  nothing = fine._replace(complete=jnp.zeros(5, bool))
  assert float(_data_term([nothing], target)) == 0.0


def test_charbonnier_term_is_a_smooth_l1():
  rng = np.random.default_rng(2)
  target = rng.random((5, 3))
  (rendering,) = _renderings(rng, 1)
  residual = np.asarray(rendering.rgb) - target
  np.testing.assert_allclose(_data_term([rendering], target, 'charbonnier'),
                             np.mean(np.sqrt(residual**2 + 1e-6)), rtol=1e-6)
  # Near |r| = 0 it is quadratic and bounded below by eps; far from it, |r|.
  np.testing.assert_allclose(losses.charbonnier(jnp.array([0.0, 1e-5, 10.0]), 1e-3), [1e-3, 1e-3, 10.0],
                             rtol=1e-4)


@pytest.mark.parametrize('penalty', ['mse', 'charbonnier'])
def test_gradients_stay_finite_from_tiny_to_huge_residuals(penalty):
  target = jnp.zeros((4, 3))
  rgb = jnp.array([[0.0] * 3, [1e-12] * 3, [1.0] * 3, [1e6] * 3])
  grad = jax.grad(lambda rgb: _data_term([RenderedRays(rgb, None, None, None)], target, penalty))(rgb)
  chex.assert_tree_all_finite(grad)


def test_total_loss_names_its_terms_and_unknown_penalties_are_refused_when_the_model_is_built():
  rng = np.random.default_rng(3)
  renderings, target = _renderings(rng), jnp.asarray(rng.random((5, 3)))
  config = _loss_config()
  terms = losses.total_loss(renderings, {'rgb': target}, config)
  assert sorted(terms) == ['loss', 'loss_data']
  np.testing.assert_allclose(terms['loss'], jnp.sum(losses.level_mses(renderings, target)), rtol=1e-6)
  config.data = 'l1'
  with pytest.raises(ConfigError, match=r"config.loss.data must be one of \['charbonnier', 'mse'\]"):
    losses.check_terms(config, frozenset({'intervals'}), 'nerf')


def _interval_level(rng, num_samples, rgb=True):
  s_edges = np.sort(rng.random((5, num_samples + 1)), axis=-1)
  s_edges[:, 0], s_edges[:, -1] = 0.0, 1.0
  w = rng.random((5, num_samples)) / num_samples
  return RenderedRays(rgb=jnp.asarray(rng.random((5, 3))) if rgb else None, depth=None, acc=None,
                      w=jnp.asarray(w), s_edges=jnp.asarray(s_edges))


def test_interlevel_and_distortion_terms_read_the_ray_history():
  rng = np.random.default_rng(4)
  proposal, final = _interval_level(rng, 6, rgb=False), _interval_level(rng, 9)
  target = jnp.asarray(rng.random((5, 3)))
  config = _loss_config()
  config.update(interlevel_weight=0.5, distortion_weight=0.01)
  # Compiled (op by op, these calls compiled ~60 tiny programs).
  terms = jax.jit(lambda history, batch: losses.total_loss(history, batch, config))([proposal, final],
                                                                                     {'rgb': target})
  assert sorted(terms) == ['loss', 'loss_data', 'loss_distortion', 'loss_interlevel']
  # The proposal level has no colour: only the final level's data term counts.
  np.testing.assert_allclose(terms['loss_data'], np.mean((np.asarray(final.rgb) - target)**2), rtol=1e-6)
  np.testing.assert_allclose(terms['loss_interlevel'], 0.5 * jax.jit(stepfun.interlevel_loss)(
      final.s_edges, final.w, proposal.s_edges, proposal.w), rtol=1e-6)
  # The distortion term against the brute-force double integral's closed form per ray (Eq. 15).
  edges, w = np.asarray(final.s_edges, np.float64), np.asarray(final.w, np.float64)
  middle = 0.5 * (edges[:, 1:] + edges[:, :-1])
  brute = [np.sum(w[r, :, None] * w[r, None, :] * np.abs(middle[r, :, None] - middle[r, None, :])) +
           np.sum(w[r]**2 * np.diff(edges[r])) / 3 for r in range(5)]
  np.testing.assert_allclose(terms['loss_distortion'], 0.01 * np.mean(brute), rtol=1e-5)
  np.testing.assert_allclose(terms['loss'], terms['loss_data'] + terms['loss_interlevel'] +
                             terms['loss_distortion'], rtol=1e-6)
  # Only the proposal learns from the interlevel term.
  grads = jax.jit(jax.grad(lambda p, f: losses.interlevel_term([proposal._replace(w=p), final._replace(w=f)]),
                           argnums=(0, 1)))(proposal.w, final.w)
  assert float(jnp.abs(grads[0]).sum()) > 0 and float(jnp.abs(grads[1]).sum()) == 0


def test_terms_the_renderer_cannot_feed_are_refused_when_the_model_is_built():
  config = _loss_config()
  config.distortion_weight = 0.01
  losses.check_terms(config, frozenset({'intervals'}), 'proposal')
  with pytest.raises(ConfigError, match=r'config.loss.distortion_weight=0.01 needs interval edges and weights '
                                        r'.* which the occupancy_grid renderer does not provide'):
    losses.check_terms(config, frozenset(), 'occupancy_grid')


def test_a_term_registered_elsewhere_is_weighted_by_its_config_key(monkeypatch):
  monkeypatch.setitem(losses.LOSS_TERMS, 'toy', losses.LossTerm(
      lambda history, batch, config: jnp.mean(history[-1].rgb), frozenset(), 0.0))
  rng = np.random.default_rng(6)
  renderings, target = _renderings(rng), jnp.asarray(rng.random((5, 3)))
  config = _loss_config()
  assert 'loss_toy' not in losses.total_loss(renderings, {'rgb': target}, config)  # Weight 0 by default.
  config.toy_weight = 0.5
  terms = losses.total_loss(renderings, {'rgb': target}, config)
  np.testing.assert_allclose(terms['loss_toy'], 0.5 * jnp.mean(renderings[-1].rgb), rtol=1e-6)
  np.testing.assert_allclose(terms['loss'], terms['loss_data'] + terms['loss_toy'], rtol=1e-6)


def _normal_level(rng, normals, normals_pred, num_rays=4):
  num_samples = normals.shape[-2]
  w = jnp.asarray(rng.random((num_rays, num_samples)) / num_samples)
  return RenderedRays(rgb=jnp.zeros((num_rays, 3)), depth=None, acc=None, w=w,
                      samples={'normals': jnp.asarray(normals), 'normals_pred': jnp.asarray(normals_pred)})


def test_orientation_term_is_zero_for_front_facing_normals_and_matches_a_brute_force_sum():
  rng = np.random.default_rng(8)
  viewdirs = np.tile([[0.0, 0.0, -1.0]], (4, 1))  # Rays looking down -z.
  rays = types.SimpleNamespace(viewdirs=jnp.asarray(viewdirs))
  config = _loss_config(coarse_weight=0.1)
  facing = np.tile([0.0, 0.0, 1.0], (4, 5, 1))  # Towards the camera.
  assert float(losses.orientation_term([_normal_level(rng, facing, facing)], {'rays': rays}, config)) == 0.0
  normals_pred = rng.normal(size=(4, 5, 3))
  normals_pred /= np.linalg.norm(normals_pred, axis=-1, keepdims=True)
  coarse, fine = _normal_level(rng, facing, facing), _normal_level(rng, facing, normals_pred)
  w = np.asarray(fine.w)
  brute = np.mean([sum(w[r, i] * max(0.0, float(normals_pred[r, i] @ viewdirs[r]))**2 for i in range(5))
                   for r in range(4)])
  value = losses.orientation_term([coarse, fine], {'rays': rays}, config)  # The coarse level adds 0.
  np.testing.assert_allclose(value, brute, rtol=1e-5)
  assert brute > 0
  # Only normals facing away count: their gradient pushes them towards the camera, not the weights.
  grads = jax.grad(lambda n, w: losses.orientation_term([fine._replace(w=w, samples={'normals_pred': n})],
                                                        {'rays': rays}, config), argnums=(0, 1))(
      jnp.asarray(normals_pred), fine.w)
  assert float(jnp.abs(grads[1]).sum()) == 0.0 and float(jnp.abs(grads[0]).sum()) > 0


def test_orientation_term_can_penalise_the_density_normals_and_needs_them_then():
  rng = np.random.default_rng(11)
  viewdirs = np.tile([[0.0, 0.0, -1.0]], (4, 1))
  rays = types.SimpleNamespace(viewdirs=jnp.asarray(viewdirs))
  normals = rng.normal(size=(4, 5, 3))
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  facing = np.tile([0.0, 0.0, 1.0], (4, 5, 1))
  level = _normal_level(rng, normals, facing)  # Only the density's normals face away.
  config = _loss_config(orientation_target='normals')
  w = np.asarray(level.w)
  brute = np.mean([sum(w[r, i] * max(0.0, float(normals[r, i] @ viewdirs[r]))**2 for i in range(5))
                   for r in range(4)])
  np.testing.assert_allclose(losses.orientation_term([level], {'rays': rays}, config), brute, rtol=1e-5)
  assert brute > 0
  config.orientation_weight = 0.1
  losses.check_terms(config, frozenset({'intervals', 'normals'}), 'proposal')
  with pytest.raises(ConfigError, match=r'orientation_weight=0.1 needs per-sample normals of the density'):
    losses.check_terms(config, frozenset({'intervals', 'predicted_normals'}), 'proposal')
  config.orientation_target = 'density'
  with pytest.raises(ConfigError, match=r"config.loss.orientation_target must be one of \['normals', "
                                        r"'normals_pred'\], got 'density'"):
    losses.check_terms(config, frozenset({'intervals', 'normals'}), 'proposal')


def test_predicted_normals_term_against_a_brute_force_sum_with_the_coarse_weight():
  rng = np.random.default_rng(9)
  normals, normals_pred = rng.normal(size=(2, 4, 6, 3))
  levels = [_normal_level(rng, normals, normals_pred), _normal_level(rng, normals, -normals_pred)]
  config = _loss_config(coarse_weight=0.1)
  per_level = [np.mean(np.sum(np.asarray(r.w) * np.sum((np.asarray(r.samples['normals']) -
                                                         np.asarray(r.samples['normals_pred']))**2, -1), -1))
               for r in levels]
  np.testing.assert_allclose(losses.predicted_normals_term(levels, {}, config), 0.1 * per_level[0] + per_level[1],
                             rtol=1e-5)
  # A renderer without normals cannot feed it: refused when the model is built.
  config.predicted_normals_weight = 3e-4
  with pytest.raises(ConfigError, match=r"needs per-sample normals of the density \(config.model.normals"):
    losses.check_terms(config, frozenset({'intervals', 'predicted_normals'}), 'mipnerf')


def test_predicted_normals_term_can_leave_the_density_normals_alone():
  rng = np.random.default_rng(10)
  normals, normals_pred = rng.normal(size=(2, 4, 6, 3))
  level = _normal_level(rng, normals, normals_pred)
  config = _loss_config()

  def gradients(shape_density):
    config.predicted_normals_shape_density = shape_density
    return jax.grad(lambda n, p: losses.predicted_normals_term(
        [level._replace(samples={'normals': n, 'normals_pred': p})], {}, config), argnums=(0, 1))(
            jnp.asarray(normals), jnp.asarray(normals_pred))

  to_density, to_prediction = gradients(True)
  assert float(jnp.abs(to_density).sum()) > 0 and float(jnp.abs(to_prediction).sum()) > 0
  to_density, alone = gradients(False)
  assert float(jnp.abs(to_density).sum()) == 0
  chex.assert_trees_all_close(alone, to_prediction)
