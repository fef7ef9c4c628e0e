"""Learned cameras (training/camera_optimizer.py) on the parameter-group contract: a zero correction changes
nothing, the corrections train with their own learning rate, are saved and resumed, and pull perturbed
training poses back toward the truth; bad values are refused before anything is written."""

import dataclasses
import json

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxnerf import datasets
from jaxnerf.commands import cameras as cameras_export
from jaxnerf.commands import render
from jaxnerf.datasets import batching
from jaxnerf.datasets import pose_noise
from jaxnerf.errors import ConfigError
from jaxnerf.training import camera_alignment
from jaxnerf.training import camera_optimizer
from jaxnerf.training import checkpoints
from jaxnerf.training import config_checks
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import parameter_groups
from jaxnerf.ops import compositing
from jaxnerf.ops import rigid
from jaxnerf.outputs import evaluation
from jaxnerf.training import trainer
from jaxnerf import parallel
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import tiny_config


def _config(scene_cache, mode='SE3', **train):
  config = small_mlp_config(scene_cache, **train)
  config.camera_optimizer.mode = mode
  return config


def _experiment_and_batch(config):
  """The experiment of `config` (with the training split's values), a fresh state, a batch and the cameras."""
  split = datasets.load_split(config, 'train')
  config = parameter_groups.with_training_split(config, split)
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state(experiment, config.seed)
  batch = batching.RayBatcher(split, config.train.batch_size, 'all_images', 0, 0.5, 0).batch(0)
  batch = jax.device_put(batch, experiment.steps.batch_sharding)
  table = parallel.shard_replicated_data(split.camera_table().as_arrays(), experiment.steps.replicated)
  return config, experiment, state, batch, table


def test_a_zero_correction_changes_nothing_and_the_corrections_learn_at_their_own_rate(scene_cache):
  _, off, state_off, batch, table = _experiment_and_batch(_config(scene_cache, mode='off'))
  config, on, state_on, _, _ = _experiment_and_batch(_config(scene_cache))
  assert state_off.group_params is None
  chex.assert_shape(state_on.group_params[camera_optimizer.NAME]['twists'], (config.camera_optimizer.num_cameras, 6))
  chex.assert_trees_all_equal(state_on.params, state_off.params)  # The model starts alike.
  new_off, metrics_off = off.steps.train_step(state_off, batch, table)
  new_on, metrics_on = on.steps.train_step(state_on, batch, table)
  # At zero the correction and its pull vanish: the same loss, and the model's update is the same.
  assert float(metrics_on['loss']) == pytest.approx(float(metrics_off['loss']), rel=1e-6)
  chex.assert_trees_all_close(new_on.params, new_off.params, atol=1e-6)
  # Its own schedule: Adam's first step moves every trained twist by its learning rate.
  rate = float(metrics_on[f'learning_rate_{camera_optimizer.NAME}'])
  assert rate == pytest.approx(config.camera_optimizer.lr_init)
  assert float(metrics_on['learning_rate']) == pytest.approx(config.optim.lr_init)
  twists = np.asarray(new_on.group_params[camera_optimizer.NAME]['twists'])
  seen = np.unique(np.asarray(batch['pixels'])[:, 0])
  np.testing.assert_allclose(np.abs(twists[seen]), rate, rtol=1e-3)
  unseen = np.setdiff1d(np.arange(len(twists)), seen)
  np.testing.assert_array_equal(twists[unseen], 0.0)


def test_a_fit_started_where_the_model_is_compiles_its_step_once():
  """parallel.placed_like, as register_views and the appearance codes' fit use it: the corrections and Adam's
  state start on the model's devices, where the step's outputs land, so the step is not traced again at its
  second call (a new compile on any machine of two devices)."""
  if jax.device_count() < 2:
    pytest.skip('one device: every array is where the model is')
  model = jax.device_put({'w': jnp.arange(1.0, 4.0)}, parallel.replicated(parallel.make_mesh(jax.devices()[:2])))
  step = jax.jit(chex.assert_max_traces(
      lambda carry, model: jax.tree.map(lambda x: x + model['w'][0].astype(x.dtype), carry), n=1))
  carry = parallel.placed_like({'twists': jnp.zeros((2, 6)), 'count': jnp.int32(0)}, model)
  for _ in range(3):
    carry = step(carry, model)
  chex.assert_trees_all_equal(jax.device_get(carry), {'twists': np.full((2, 6), 3.0, np.float32),
                                                       'count': np.int32(3)})
  host = {'twists': np.zeros((2, 6))}
  assert parallel.placed_like(host, {'w': np.arange(3.0)}) is host  # Host arrays: nothing to place.

def test_the_twists_gradient_matches_finite_differences(scene_cache):
  config = _config(scene_cache)
  split = datasets.load_split(config, 'train')
  group_config = parameter_groups.with_training_split(config, split).camera_optimizer
  assert group_config.pivot_depth > 0  # The median distance to the scene's centre, filled in.
  table = split.camera_table().as_arrays(jnp)
  image, row, col = jnp.array([0, 1, 2]), jnp.array([3, 10, 20]), jnp.array([5, 12, 7])
  target = jnp.array([0.3, -0.2, 0.5])

  def loss(twists):
    rays = camera_optimizer.corrected_cameras(group_config, {'twists': twists}, table).rays(image, row, col,
                                                                                            xnp=jnp)
    return jnp.sum((rays.origins + 2.0 * rays.directions - target)**2)

  twists = jnp.asarray(np.random.default_rng(0).normal(size=(split.num_images, 6)) * 0.01, jnp.float32)
  # Compiled: op by op, the loss and its gradient compiled ~190 tiny programs.
  grad, compiled_loss = np.asarray(jax.jit(jax.grad(loss))(twists)), jax.jit(loss)
  for cam, k in [(0, 0), (1, 3), (2, 5), (2, 1)]:
    step = np.zeros(twists.shape, np.float32)
    step[cam, k] = 1e-3
    numeric = (float(compiled_loss(twists + step)) - float(compiled_loss(twists - step))) / 2e-3
    assert grad[cam, k] == pytest.approx(numeric, rel=2e-2, abs=2e-3)
  assert np.all(grad[3:] == 0)  # Cameras no ray came from.


def test_the_corrections_are_saved_and_resumed_and_a_resume_with_another_mode_is_refused(scene_cache, tmp_path):
  config, experiment, state, _, _ = _experiment_and_batch(_config(scene_cache))
  twists = jnp.arange(config.camera_optimizer.num_cameras * 6, dtype=jnp.float32).reshape(-1, 6) * 1e-3
  state = state.replace(step=jnp.int32(7), group_params={camera_optimizer.NAME: {'twists': twists}})
  manager = checkpoints.make_manager(tmp_path, 2)
  checkpoints.save(manager, state, 1.0)
  manager.wait_until_finished()
  restored = checkpoints.restore_step(manager, 7, experiment_lib.abstract_state(experiment, config.seed))
  manager.close()
  chex.assert_trees_all_equal(jax.device_get(restored.state), jax.device_get(state))
  checkpoints.save_config(tmp_path, config)
  other = _config(scene_cache, mode='off')
  with pytest.raises(ConfigError, match='camera_optimizer.mode'):
    experiment_lib.check_resumable(other, tmp_path, before_data=True)


@pytest.mark.parametrize('key, value, expected', [
    ('camera_optimizer.mode', 'se3', "one of ['off', 'SE3']"),
    ('camera_optimizer.lr_init', 0.0, 'a finite number > 0'),
    ('pose_noise.rotation_degrees', -1.0, 'a finite number >= 0'),
    ('model.encoding_annealing', (0.5, 0.2), '0 <= start <= end <= 1'),
])
def test_bad_values_are_refused_in_one_line_before_anything_is_written(scene_cache, tmp_path, key, value, expected):
  config = _config(scene_cache)
  group, name = key.rsplit('.', 1)
  target = config
  for part in group.split('.'):
    target = target[part]
  target[name] = value
  with pytest.raises(ConfigError, match=f'config.{key}') as raised:
    trainer.train_and_evaluate(config, tmp_path / 'run')
  assert expected in str(raised.value) and '\n' not in str(raised.value)
  assert not (tmp_path / 'run').exists()
  with pytest.raises(ConfigError):
    config_checks.check_values(config)


@pytest.fixture(scope='module')
def refined_run(tmp_path_factory, scene_cache):
  """The tiny hash-grid scene trained on its true poses; then, its scene held fixed (a learning rate of 1e-9),
  its cameras refined from poses perturbed by 3 degrees and 3%: (config, workdir, summary, the perturbed
  poses' errors, the clean run's val PSNR)."""
  clean_dir = tmp_path_factory.mktemp('clean')
  # (Saved at the end only: 20 checkpoints a run, each with its probe step, changed nothing but the time.)
  clean = tiny_config(scene_cache, num_steps=200, batch_size=256, checkpoint_every=1000)
  clean.eval.update(final_num_images=2, video_frames=0, lpips=())
  clean_psnr = trainer.train_and_evaluate(clean, clean_dir)['val_psnr']
  config = tiny_config(scene_cache, num_steps=200, batch_size=256, checkpoint_every=1000, init_from=str(clean_dir))
  config.eval.update(final_num_images=2, video_frames=0, lpips=())
  config.optim.update(lr_init=1e-9, lr_final=1e-9)
  config.camera_optimizer.update(mode='SE3', lr_init=3e-3, lr_final=3e-4)
  config.pose_noise.update(rotation_degrees=3.0, translation_fraction=0.03, seed=1)
  workdir = tmp_path_factory.mktemp('refined')
  summary = trainer.train_and_evaluate(config, workdir)
  given = camera_alignment.RefinedFrame(config, None, datasets.load_split(config, 'train')).pose_errors(
      config.scene_box)
  return config, workdir, summary, given, clean_psnr


def test_refinement_recovers_perturbed_poses_and_the_held_out_views(refined_run):
  _, _, refined, given, clean_psnr = refined_run
  assert 2.5 < given['camera_rotation_error_deg'] < 3.0  # (Aligned: a little under the 3 degrees.)
  assert refined['camera_rotation_error_deg'] < 0.4 * given['camera_rotation_error_deg']
  assert refined['camera_translation_error'] < 0.7 * given['camera_translation_error']
  # Held-out views, placed by the similarity of the refined cameras, score as the clean run's; and again
  # after each is fitted to its pixels (BARF's protocol), reported beside.
  assert refined['val_psnr'] > clean_psnr - 0.5
  assert refined['val_registered_psnr'] > refined['val_psnr'] - 0.2
  assert 0 < refined['val_pose_fit_rotation_deg'] < 1.0


def test_registration_fits_a_held_out_view_moved_off_its_pose_to_its_pixels(refined_run):
  """camera_alignment.register_views, the trained model held fixed: a val view turned by 2 degrees and moved by
  2% of its distance is fitted to its pixels, which it then renders at least as well as at its given pose;
  views not asked for keep their poses.

  (Not how close it comes to the given pose: on this 24-pixel scene trained for 200 steps, poses 0.5-3.7
  degrees from a val view's dataset pose render the view better than that pose does (fits of both val views,
  3 pixel draws, 60-150 steps: PSNR 21.9-22.0 against 21.8, and 20.2-20.4 against 20.1; 21.1 and 20.0 at the
  poses the similarity gives), so the angle the fit ends at depends on the pixels it draws and the summation
  order of the trained scene. That the fit finds the true pose where the scene has one is the test below.)"""
  _, workdir, _, _, _ = refined_run
  config, experiment, state = experiment_lib.restore_model(workdir)
  frame = camera_alignment.RefinedFrame(config, state.group_params, datasets.load_split(config, 'train'))
  val = frame.held_out(datasets.load_split(config, 'val'))
  noise = ml_collections.ConfigDict(dict(rotation_degrees=2.0, translation_fraction=0.02, seed=3))
  moved = pose_noise.perturbed(val, noise, config.scene_box)
  with config.unlocked():
    config.eval.update(pose_fit_steps=60, pose_fit_rays=256)
  fitted, moved_by = camera_alignment.register_views(config, experiment.model, state.variables,
                                                     jnp.full(3, experiment.background, jnp.float32), moved, [0])
  assert rigid.rotation_errors_deg(moved.camtoworlds[0], val.camtoworlds[0]) == pytest.approx(2.0, abs=1e-3)
  psnr = {name: evaluation.evaluate(experiment.steps, state.variables, split, [0], config.eval.chunk_size)[0][0]['psnr']
          for name, split in (('moved', moved), ('fitted', fitted), ('given', val))}
  assert psnr['fitted'] > psnr['moved'] + 2.0 and psnr['fitted'] > psnr['given'] - 0.2, psnr
  assert moved_by['pose_fit_rotation_deg'] > 1.0 and moved_by['pose_fit_failed_views'] == 0
  np.testing.assert_array_equal(fitted.camtoworlds[1:], moved.camtoworlds[1:])


class _TexturedSphere:
  """A scene register_views can fit exactly: a unit sphere at the origin whose colour varies smoothly over its
  surface, on a black background, rendered in closed form (its edge softened so that the silhouette has a
  gradient), so each view's pixels are rendered exactly at its true pose alone."""

  FREQUENCIES = np.array([[2.0, -1.0, 1.5], [1.0, 2.5, -2.0], [-1.5, 1.0, 2.0]], np.float32)

  def apply(self, variables, rng, rays, background):
    del rng
    origins, directions = rays.origins, rays.viewdirs
    half_b = jnp.sum(origins * directions, -1, keepdims=True)
    discriminant = half_b**2 - (jnp.sum(origins**2, -1, keepdims=True) - variables['radius']**2)
    t = -half_b - jnp.sqrt(jnp.maximum(discriminant, 1e-6))
    colour = 0.5 + 0.5 * jnp.sin((origins + t * directions) @ self.FREQUENCIES)
    alpha = jax.nn.sigmoid(discriminant / 0.05)
    rgb = alpha * colour + (1.0 - alpha) * background
    return [compositing.RenderedRays(rgb=rgb, depth=t[..., 0], acc=alpha[..., 0], w=alpha)]


@pytest.mark.parametrize('noise_seed', [3, 4])
def test_registration_turns_views_back_onto_their_poses_where_the_scene_is_exact(scene_cache, noise_seed):
  """register_views on a scene rendered exactly (_TexturedSphere, seen by the tiny scene's 24-pixel val
  cameras): both val views, turned by 2 degrees and moved by 2% of their distance, end within 0.2 degrees and
  1% of the distance of their true poses (measured: 0.04 degrees and 0.07% at most). The fit's rate is the
  test's: at the default (2e-3 over 100 steps) the views stay 1.0-2.3 degrees off, here with 256 rays a step or
  the default 64, and this test fails there; the default stays, since at 1e-2 and 64 rays a step the trained
  tiny scene's registered views scored 0.4 dB below their unfitted placement
  (test_refinement_recovers_perturbed_poses_and_the_held_out_views)."""
  config = _config(scene_cache)
  config = parameter_groups.with_training_split(config, datasets.load_split(config, 'train'))
  config.eval.update(pose_fit_steps=100, pose_fit_rays=256, pose_fit_learning_rate=1e-2)
  sphere, variables, background = _TexturedSphere(), {'radius': jnp.float32(1.0)}, jnp.zeros(3)
  val = datasets.load_split(config, 'val')
  images = [sphere.apply(variables, None, jax.tree.map(jnp.asarray, val.rays_of_image(i)), background)[-1].rgb
            for i in range(len(val.camtoworlds))]
  val = dataclasses.replace(val, images=np.stack([np.asarray(image) for image in images]))
  assert 0.3 < np.mean(val.images.sum(-1) > 0.05) < 0.7  # The sphere fills part of each view.
  noise = ml_collections.ConfigDict(dict(rotation_degrees=2.0, translation_fraction=0.02, seed=noise_seed))
  moved = pose_noise.perturbed(val, noise, config.scene_box)
  fitted, moved_by = camera_alignment.register_views(config, sphere, variables, background, moved, [0, 1])
  distance = np.linalg.norm(val.camtoworlds[:, :, 3], axis=-1)
  np.testing.assert_allclose(rigid.rotation_errors_deg(moved.camtoworlds, val.camtoworlds), 2.0, atol=1e-3)
  assert np.all(rigid.rotation_errors_deg(fitted.camtoworlds, val.camtoworlds) < 0.2)
  assert np.all(rigid.centre_errors(fitted.camtoworlds, val.camtoworlds) < 0.01 * distance)
  assert moved_by['pose_fit_failed_views'] == 0


def test_render_scores_the_held_out_views_placed_by_the_similarity_and_registered(refined_run):
  _, workdir, summary, _, _ = refined_run
  scores = render.render_split(workdir, 'val', limit=2)
  assert scores['mean']['psnr'] == pytest.approx(summary['val_psnr'], abs=1e-3)
  assert scores['registered']['psnr'] == pytest.approx(summary['val_registered_psnr'], abs=0.05)
  assert scores['registered']['pose_fit_rotation_deg'] > 0


def test_the_refined_cameras_are_exported_beside_the_given_ones(refined_run, tmp_path):
  config, workdir, summary, _, _ = refined_run
  report = cameras_export.export_cameras(workdir, tmp_path / 'cameras.json')
  written = json.loads((tmp_path / 'cameras.json').read_text())
  assert report['refined'] and written['refined'] and len(written['frames']) == config.procedural.num_train
  assert report['step'] == summary['step']
  assert written['camera_rotation_error_deg'] == pytest.approx(summary['camera_rotation_error_deg'], rel=1e-4)
  given = datasets.load_split(config, 'train').camtoworlds
  frame = written['frames'][0]
  np.testing.assert_allclose(np.asarray(frame['given_transform_matrix'])[:3], given[0], atol=1e-6)
  assert not np.allclose(np.asarray(frame['transform_matrix'])[:3], given[0], atol=1e-4)
  with pytest.raises(Exception, match='--out'):  # Never over an earlier export.
    cameras_export.export_cameras(workdir, tmp_path / 'cameras.json')
