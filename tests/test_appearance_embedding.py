"""A code per training image (models/appearance_embedding.py): what each camera reads, that codes absorb a
per-image gain, NeRF-W's fitted-code score, and the checks of its config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnerf.commands import render
from jaxnerf.commands import view
from jaxnerf.errors import ConfigError
from jaxnerf import models
from jaxnerf.models import appearance_embedding
from jaxnerf.ops import camera
from jaxnerf.training import checkpoints
from jaxnerf.training import config_checks
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import trainer
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import TINY_SCENE
from tests.waiting import wait_for

GAINS = (0.5, 1.0, 1.6)  # Of the three training images of the gain test.


def test_each_camera_reads_its_code_others_the_mean_or_zero():
  module = appearance_embedding.AppearanceEmbedding(num_images=3, dim=4, init_std=1.0)
  index = jnp.array([[0], [2], [camera.ANY_CAMERA], [camera.NO_CAMERA], [3]], jnp.int32)
  variables = module.init(jax.random.key(0), index)
  table = variables['params'][appearance_embedding.PARAM]
  codes = module.apply(variables, index)
  np.testing.assert_array_equal(codes[:2], table[jnp.array([0, 2])])
  np.testing.assert_allclose(codes[2], table.mean(axis=0), rtol=1e-6)
  np.testing.assert_array_equal(codes[3], 0.0)
  np.testing.assert_array_equal(codes[4], codes[2])  # Past the table (another scene's image): the mean.


def test_a_table_without_its_size_is_refused():
  module = appearance_embedding.AppearanceEmbedding(num_images=0, dim=4)
  with pytest.raises(ConfigError, match='num_images is 0'):
    module.init(jax.random.key(0), jnp.zeros((2, 1), jnp.int32))


def _gain_model(dim: int):
  config = small_mlp_config()
  config.model.update(num_coarse_samples=8, num_fine_samples=0)
  config.model.appearance_embedding.update(dim=dim, num_images=len(GAINS), init_std=0.1)
  return models.make_model(config.model)


def _gain_data(num_rays=96, seed=0):
  """The same rays seen by three training images at GAINS of one colour per ray (a smooth function of its
  direction)."""
  rng = np.random.default_rng(seed)
  directions = rng.normal(size=(num_rays, 3)) * [0.3, 0.3, 0.0] + [0.0, 0.0, 1.0]
  origins = np.tile([0.0, 0.0, -4.0], (num_rays, 1))
  base = 0.3 + 0.3 * (np.tanh(3.0 * directions[:, :2].sum(-1, keepdims=True)) + 1.0) * np.array([0.9, 0.6, 0.3])
  ones = np.ones((num_rays, 1), np.float32)
  stacked = lambda x: np.concatenate([x] * len(GAINS)).astype(np.float32)
  viewdirs = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
  cam_idx = np.repeat(np.arange(len(GAINS), dtype=np.int32), num_rays)[:, None]
  rays = camera.Rays(stacked(origins), stacked(directions), stacked(viewdirs), stacked(2 * ones), stacked(6 * ones),
                     stacked(1e-3 * ones), cam_idx)
  return rays, np.concatenate([np.clip(g * base, 0, 1) for g in GAINS]).astype(np.float32)


def _fit(model, rays, rgb, steps=300):
  variables = model.init(jax.random.key(0), None, rays, jnp.ones(3))
  optimizer = optax.adam(1e-2)

  @jax.jit
  def step(params, opt_state):
    loss = lambda p: jnp.mean((model.apply({'params': p}, None, rays, jnp.ones(3))[-1].rgb - rgb) ** 2)
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value

  params, opt_state = variables['params'], optimizer.init(variables['params'])
  for _ in range(steps):
    params, opt_state, loss = step(params, opt_state)
  return {'params': params}, float(loss)


def test_codes_absorb_a_known_gain_per_image_that_one_colour_cannot():
  rays, rgb = _gain_data()
  with_codes, loss_with = _fit(_gain_model(dim=4), rays, rgb)
  _, loss_without = _fit(_gain_model(dim=0), rays, rgb)
  # One colour per ray can at best be the mean over the gains: its error is their spread times the colour.
  assert loss_without > 5e-3
  assert loss_with < 0.1 * loss_without, (loss_with, loss_without)
  # Each image's code renders its gain: the colours of images 0 and 2 relate as 0.5 to 1.6.
  model = _gain_model(dim=4)
  rendered = np.asarray(model.apply(with_codes, None, rays, jnp.ones(3))[-1].rgb).reshape(len(GAINS), -1, 3)
  ratio = np.median(rendered[2] / np.maximum(rendered[0], 1e-3), axis=0)
  np.testing.assert_allclose(ratio[2], GAINS[2] / GAINS[0], rtol=0.15)  # The blue channel never saturates.

  # NeRF-W's test-time fit: a code fitted to image 2's pixels from the mean code renders them.
  image = slice(2 * len(rgb) // 3, None)
  fit = appearance_embedding.CodeFitter(model, jnp.ones(3), learning_rate=0.05)
  fitted = fit(with_codes, jax.tree.map(lambda x: x[image], rays), rgb[image], num_steps=150, batch_size=64)
  as_code_0 = rays._replace(cam_idx=np.zeros_like(rays.cam_idx))
  error = lambda v: float(np.mean((np.asarray(model.apply(v, None, as_code_0, jnp.ones(3))[-1].rgb)[image]
                                   - rgb[image]) ** 2))
  mean_code = rays._replace(cam_idx=np.full_like(rays.cam_idx, camera.ANY_CAMERA))
  mean_error = float(np.mean((np.asarray(model.apply(with_codes, None, mean_code, jnp.ones(3))[-1].rgb)[image]
                              - rgb[image]) ** 2))
  assert error(fitted) < 0.2 * mean_error, (error(fitted), mean_error)
  fit(with_codes, jax.tree.map(lambda x: x[:len(rgb) // 3], rays), rgb[:len(rgb) // 3], num_steps=2, batch_size=64)
  assert fit._step._cache_size() == 1  # pylint: disable=protected-access  # Every view, one compilation.


@pytest.mark.parametrize('key, value', [('dim', -1), ('init_std', 0.0), ('num_images', -3),
                                        ('fit_steps', -1), ('fit_learning_rate', float('nan')), ('fit_rays', 0)])
def test_bad_values_are_refused_in_one_line_naming_the_key(key, value):
  config = small_mlp_config()
  config.model.appearance_embedding[key] = value
  with pytest.raises(ConfigError, match=rf'config.model.appearance_embedding.{key}=') as raised:
    config_checks.check_values(config)
  assert '\n' not in str(raised.value)


def test_a_run_with_codes_sizes_them_by_its_training_split_and_scores_held_out_views_both_ways(
    scene_cache, tmp_path):
  config = small_mlp_config(scene_cache)
  config.model.appearance_embedding.update(dim=4, fit_steps=3, fit_rays=32)
  summary = trainer.train_and_evaluate(config, tmp_path / 'run')
  assert config.model.appearance_embedding.num_images == 0  # The caller's config is not changed...
  saved = checkpoints.load_config(tmp_path / 'run')
  assert saved.model.appearance_embedding.num_images == TINY_SCENE.num_train  # ...the run's is.
  for name in ('val_psnr', 'val_psnr_fitted_code', 'val_psnr_right_half'):
    assert np.isfinite(summary[name]), name

  zero = render.render_split(tmp_path / 'run', 'val', limit=1, appearance=render.ZERO_APPEARANCE)
  assert zero['out_dir'].endswith('val_20_first1_appearance-zero') and zero['appearance'] == 'zero'
  assert 'psnr_fitted_code' not in zero['mean']  # Scored with the mean code only.
  with pytest.raises(ConfigError, match=r"--appearance=r_99: expected 'mean', 'zero' or the name of a training "
                                        r'image \(12: r_0, '):
    render.appearance_index(saved, 'r_99')
  assert render.appearance_index(saved, 'r_3') == 3
  without = small_mlp_config(scene_cache)
  with pytest.raises(ConfigError, match='--appearance=zero: this model has no per-image components'):
    render.appearance_index(without, 'zero')

  # The viewer's Appearance menu offers the same choices; a camera path takes the chosen one, in its own folder.
  viewer = view.open_viewer(tmp_path / 'run', port=8131)
  try:
    assert viewer.appearance.visible and viewer.appearance.options == ('mean', 'zero', *saved_names(saved))
    viewer.path_frames.value = 2
    for choice in ('r_3', 'zero'):
      viewer.appearance.value = choice
      viewer._request_path()  # pylint: disable=protected-access  # What the page's button does.
      folder = tmp_path / 'run' / 'render' / 'viewer' / f'orbit_20_appearance-{choice}'
      wait_for(lambda: sorted(p.name for p in folder.glob('*.gif')) == ['orbit.gif', 'orbit_depth.gif'], 120.0)
  finally:
    viewer.close()


def saved_names(config):
  return tuple(f'r_{i}' for i in range(config.model.appearance_embedding.num_images))


def test_no_fit_means_no_fitted_score_and_scoring_settings_do_not_block_a_resume(tmp_path):
  config = small_mlp_config()
  config.model.appearance_embedding.update(dim=4, num_images=12, fit_steps=0)
  model = models.make_model(config.model, config.scene_box)
  assert models.conditioning.held_out_scorers(model, config.model, 1.0) == []
  config.model.appearance_embedding.fit_steps = 5
  assert len(models.conditioning.held_out_scorers(model, config.model, 1.0)) == 1
  checkpoints.save_config(tmp_path, config)
  config.model.appearance_embedding.update(fit_steps=50, fit_rays=64)  # Scoring only: resumable.
  experiment_lib.check_resumable(config, tmp_path)
  config.model.appearance_embedding.num_images = 0  # Before the training split is read: not known yet...
  experiment_lib.check_resumable(config, tmp_path, before_data=True)
  with pytest.raises(ConfigError, match=r'config.model.appearance_embedding.num_images differ'):
    experiment_lib.check_resumable(config, tmp_path)  # ...after, another count is another table.
