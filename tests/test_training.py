"""Training: the compiled step (data parallelism, no retracing, non-finite guard), checkpoints and resumption,
and short end-to-end runs on a tiny procedural scene (each method's config: test_method_configs.py; time
limits and the schedule they pace: test_pacing.py)."""

import os
import pathlib
import signal
import time

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxnerf.commands import render
from jaxnerf import datasets
from jaxnerf.datasets import batching
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.errors import NonFiniteLossError
from jaxnerf import losses
from jaxnerf.models import fields
from jaxnerf.outputs import reporting
from jaxnerf.outputs import viewer as viewer_lib
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import interrupts
from jaxnerf.training import pacing
from jaxnerf.training import steps as steps_lib
from jaxnerf.training import trainer
from jaxnerf import workdirs
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import TINY_SCENE
from tests.tiny_configs import tiny_config
from tests.tiny_configs import tiny_method_config
from tests.tiny_configs import tiny_ngp_config
from tests.tiny_configs import use_small_mlp_field


def _batch(config, step=0):
  split = datasets.load_split(config, 'train')
  return batching.RayBatcher(split, config.train.batch_size, seed=config.seed).batch(step)


def _train_step(experiment, state, batch, config):
  """The experiment's train step on `batch` (host arrays), with the training split's cameras."""
  cameras = datasets.load_split(config, 'train').camera_table().as_arrays()
  batch = jax.tree.map(lambda x: jax.device_put(x, experiment.steps.batch_sharding), batch)
  return experiment.steps.train_step(state, batch, jax.device_put(cameras, experiment.steps.replicated))


def _run_steps(experiment, state, config, num_steps):
  for step in range(num_steps):
    state, _ = _train_step(experiment, state, _batch(config, step), config)
  return state


# (The hash grid field would take the same path through both renderers as the MLP field, and BitNeRF's
# ternary layers quantise per ray and per replicated weight matrix: nothing a batch split can change.)
@pytest.mark.device
@pytest.mark.parametrize('model', ['nerf', 'occupancy_grid'])
def test_two_devices_match_one(scene_cache, model, monkeypatch):
  if jax.device_count() < 2:
    assert jax.default_backend() != 'cpu', 'conftest.py should fake two CPU devices'
    pytest.skip('one accelerator: no batch to split (pytest -m device on a one-GPU machine)')
  if model == 'occupancy_grid':  # Buffers large enough for every ray: packing per device changes nothing.
    config = tiny_ngp_config(scene_cache)
    config.model.occupancy_grid.update(march_samples_per_ray=200.0, render_samples_per_ray=200.0)
  else:
    config = tiny_config(scene_cache)
    # Also gradient checkpointing, whose loop over chunks of samples must keep the rays' split: 128 rays of
    # 16 samples in chunks of 4 samples of every ray.
    config.model.remat = True
    monkeypatch.setattr(fields.MLPField, 'REMAT_CHUNK', 512)
  use_small_mlp_field(config)  # What a batch split could change is the same for any field.
  one = experiment_lib.build_experiment(config, devices=jax.devices()[:1])
  two = experiment_lib.build_experiment(config, devices=jax.devices()[:2])
  state_one = _run_steps(one, experiment_lib.init_state(one, seed=0), config, 3)
  state_two = _run_steps(two, experiment_lib.init_state(two, seed=0), config, 3)
  assert jax.tree.leaves(state_two.params)[0].sharding.mesh.size == 2
  # Adam normalises each update, so a gradient entry that is a near-cancelling sum (summed in another order
  # over two devices) can move by a few 1e-6; a wrong batch split moves entries by the learning rate, 1e-2.
  chex.assert_trees_all_close(jax.device_get(state_one.params), jax.device_get(state_two.params),
                              rtol=1e-4, atol=2e-5)
  chex.assert_trees_all_equal(jax.device_get(state_one.model_state), jax.device_get(state_two.model_state))
  assert int(state_two.step) == 3


@pytest.mark.device
def test_train_step_compiles_once(scene_cache, monkeypatch):
  make_train_step = steps_lib.make_train_step
  monkeypatch.setattr(steps_lib, 'make_train_step',
                      lambda *args: chex.assert_max_traces(make_train_step(*args), n=1))
  config = tiny_config(scene_cache)
  experiment = experiment_lib.build_experiment(config)
  _run_steps(experiment, experiment_lib.init_state(experiment, seed=0), config, 4)  # Raises on a retrace.


@pytest.mark.device
def test_non_finite_update_is_refused(scene_cache):
  config = tiny_config(scene_cache)
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state(experiment, seed=0)
  before = jax.device_get(state.params)
  batch = _batch(config)
  batch['rgb'] = np.full_like(batch['rgb'], np.nan)
  state, metrics = _train_step(experiment, state, batch, config)
  assert not bool(metrics['finite'])
  assert int(state.step) == 0
  chex.assert_trees_all_equal(jax.device_get(state.params), before)


def test_recomposite_moves_colours_to_another_background():
  rng = np.random.default_rng(0)
  colour, alpha = rng.random((5, 3)), rng.random((5, 1))
  old, new = rng.random(3), rng.random((5, 3))
  on_old = colour * alpha + old * (1 - alpha)
  np.testing.assert_allclose(steps_lib.recomposite(on_old, alpha, old, new), colour * alpha + new * (1 - alpha),
                             atol=1e-12)


def test_batches_carry_the_alpha_that_random_backgrounds_need(scene_cache):
  config = tiny_config(scene_cache)
  assert config.train.random_background  # The demo's setting, so the end-to-end tests exercise it.
  batch = _batch(config)
  assert batch['alpha'].shape == (128, 1) and 0 < batch['alpha'].mean() < 1


def test_checkpoint_round_trip(scene_cache, tmp_path):
  config = tiny_config(scene_cache)
  experiment = experiment_lib.build_experiment(config)
  state = _run_steps(experiment, experiment_lib.init_state(experiment, seed=0), config, 2)
  manager = checkpoints.make_manager(tmp_path, keep=2)
  checkpoints.save(manager, state, train_seconds=12.5)
  manager.wait_until_finished()
  restored = checkpoints.restore_newest_intact(manager, experiment_lib.abstract_state(experiment, seed=0))
  chex.assert_trees_all_equal(jax.device_get(restored.state), jax.device_get(state))
  assert restored.train_seconds == 12.5
  assert restored.state.params['coarse_field']['table_0'].sharding == experiment.steps.replicated


def test_resuming_with_another_model_is_refused(scene_cache, tmp_path):
  config = small_mlp_config(scene_cache, num_steps=5)
  config.eval.final_num_images = 0  # (What is checked is the resume; rendering would compile the renderer.)
  trainer.train_and_evaluate(config, tmp_path)
  before = _files_and_contents(tmp_path)
  config.model.mlp.width = 16
  with pytest.raises(ConfigError, match=r'different model or scene \(config.model.mlp.width differ'):
    trainer.train_and_evaluate(config, tmp_path)
  assert _files_and_contents(tmp_path) == before
  # Without config.json to compare, the restore finds the other model; the failed resume writes nothing.
  (tmp_path / checkpoints.CONFIG_FILE).unlink()
  before = _files_and_contents(tmp_path)
  with pytest.raises(CheckpointError, match=r'hold another model than this config describes'):
    trainer.train_and_evaluate(config, tmp_path)
  assert _files_and_contents(tmp_path) == before


def _files_and_contents(directory: pathlib.Path):
  """{relative path: bytes} of every file under `directory` but the lock (which names the last holder)."""
  return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob('*'))
          if p.is_file() and p.name != workdirs.LOCK_FILE}


def test_non_finite_loss_stops_and_keeps_last_checkpoint(scene_cache, tmp_path, monkeypatch):
  config = tiny_config(scene_cache)
  original = batching.RayBatcher.batch

  def batch_with_nans_from_step_13(self, step):
    batch = original(self, step)
    if step >= 13:  # The batch of step 13 produces the state of step 14.
      batch['rgb'] = np.full_like(batch['rgb'], np.nan)
    return batch

  monkeypatch.setattr(batching.RayBatcher, 'batch', batch_with_nans_from_step_13)
  with pytest.raises(NonFiniteLossError, match=r'non-finite at step 14.*checkpoint \(step 10\)'):
    trainer.train_and_evaluate(config, tmp_path)
  _, _, state = experiment_lib.restore_model(tmp_path)
  assert int(state.step) == 10
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_interrupt_saves_a_checkpoint(scene_cache, tmp_path, monkeypatch):
  config = tiny_config(scene_cache)
  original = pacing.BatchPrefetcher.next
  calls = []

  def interrupt_at_seventh_batch(self):
    calls.append(1)
    if len(calls) == 7:
      raise KeyboardInterrupt
    return original(self)

  monkeypatch.setattr(pacing.BatchPrefetcher, 'next', interrupt_at_seventh_batch)
  with pytest.raises(KeyboardInterrupt):
    trainer.train_and_evaluate(config, tmp_path)
  _, _, state = experiment_lib.restore_model(tmp_path)
  assert int(state.step) == 6


def test_a_signal_in_a_held_block_is_raised_when_the_block_ends():
  previous = signal.signal(signal.SIGTERM, interrupts.stop)  # As cli.initialize sets it.
  try:
    finished = []
    with pytest.raises(KeyboardInterrupt):
      with interrupts.held():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # Delivered by now: held.
        finished.append('the block')
    assert finished == ['the block']
    with interrupts.held(raise_after=False):  # Already stopping: the signal is dropped.
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is interrupts.stop
    try:  # Python drops a KeyboardInterrupt raised in a garbage-collection callback...
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.05)
    except KeyboardInterrupt:
      pass
    with pytest.raises(KeyboardInterrupt):  # ...the next held block raises it again.
      with interrupts.held():
        pass
    with interrupts.held():  # Once.
      pass
  finally:
    signal.signal(signal.SIGTERM, previous)
    interrupts.handled()


def test_a_model_that_cannot_be_built_is_refused_before_the_data_loads(tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, 'load_split', lambda *args: pytest.fail('the data was loaded'))
  config = tiny_config()
  config.model.remat = True  # The hash grid has no MLP trunk to recompute.
  with pytest.raises(ConfigError, match='config.model.remat=True recomputes the trunk activations'):
    trainer.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run').exists()


def test_batch_not_divisible_by_devices_is_a_config_error(scene_cache, tmp_path):
  config = tiny_config(scene_cache, batch_size=127)
  with pytest.raises(ConfigError, match=r'config.train.batch_size=127 must be divisible by the number of '
                                        r'devices \(2\)'):
    trainer.train_and_evaluate(config, tmp_path)


def test_training_raises_psnr_well_above_its_start(scene_cache, tmp_path):
  # (Batches of the other tests' size, whose compiled step the suite's cache holds.)
  config = tiny_config(scene_cache, num_steps=300, log_every=10, checkpoint_every=1000)
  config.eval.update(final_num_images=2, video_frames=3, video_every=150,
                     lpips=('vgg',))  # AlexNet needs 31 pixels, VGG 16.
  summary = trainer.train_and_evaluate(config, tmp_path)
  assert 0.0 < summary['val_lpips_vgg'] < 1.0
  # The orbit every 150 steps, on disk and in TensorBoard's image tab (which plays GIFs).
  videos = sorted(p.name for p in (tmp_path / trainer.VIDEOS_DIR).iterdir())
  assert videos == ['orbit_150.gif', 'orbit_150_depth.gif', 'orbit_300.gif', 'orbit_300_depth.gif']
  assert Image.open(tmp_path / trainer.VIDEOS_DIR / 'orbit_300.gif').n_frames == 3
  events = b''.join(p.read_bytes() for p in (tmp_path / 'tensorboard').iterdir())
  assert events.count(b'video/orbit') == 2 and events.count(b'GIF89a') == 2
  first = next(r for r in reporting.read_metrics(tmp_path) if r['split'] == 'train')
  assert summary['val_psnr'] > first['psnr'] + 6, (first['psnr'], summary['val_psnr'])
  assert (tmp_path / 'final' / 'orbit.gif').exists()

  # render.py's library functions, from the workdir alone, agree with the final evaluation.
  rendered = render.render_split(tmp_path, 'val')
  assert rendered['num_images'] == TINY_SCENE.num_val
  assert rendered['mean']['psnr'] == pytest.approx(summary['val_psnr'], abs=1e-3)
  assert rendered['mean']['lpips_vgg'] == pytest.approx(summary['val_lpips_vgg'], abs=1e-4)
  assert 'lpips_alex' not in rendered['mean']
  out_dir = pathlib.Path(rendered['out_dir'])
  assert {p.name for p in out_dir.iterdir()} == {'metrics.json'} | {
      f'r_{i}{suffix}' for i in (0, 1) for suffix in ('.png', '_depth.png', '_median_depth.png', '_acc.png',
                                                      '_depth.npy')}
  np.testing.assert_array_equal(np.load(out_dir / 'r_0_depth.npy').shape, (TINY_SCENE.resolution,) * 2)
  orbit = render.render_path_video(tmp_path, 'orbit', num_frames=4, fps=4)
  assert sorted(pathlib.Path(f).name for f in orbit['files']) == [
      'orbit.gif', 'orbit.mp4', 'orbit_depth.gif', 'orbit_depth.mp4']
  assert all(pathlib.Path(f).stat().st_size > 0 for f in orbit['files'])
  # Other pictures on request (those the model renders: this one has no normals), in a new folder.
  orbit = render.render_path_video(tmp_path, 'orbit', num_frames=2, fps=4, pictures=['acc', 'normals'])
  assert sorted(pathlib.Path(f).name for f in orbit['files']) == ['orbit.gif', 'orbit.mp4', 'orbit_acc.gif',
                                                                   'orbit_acc.mp4']
  with pytest.raises(ConfigError, match=r"--pictures=rgb,shiny: expected distinct names from \['acc', "):
    render.render_path_video(tmp_path, 'orbit', num_frames=2, fps=4, pictures=['rgb', 'shiny'])


@pytest.mark.device
@pytest.mark.parametrize('field', ['hash_grid', 'mlp'])
def test_mixed_precision_keeps_float32_parameters_and_finite_loss(scene_cache, field):
  config = tiny_config(scene_cache)
  config.model.update(field=field, dtype='bfloat16')
  config.model.mlp.update(depth=2, width=32, width_view=16)
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state(experiment, seed=0)
  batch = _batch(config)
  for _ in range(3):
    state, metrics = _train_step(experiment, state, batch, config)
  assert bool(metrics['finite']) and int(state.step) == 3
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype('float32')}


class _RecordingViewer:
  """Stands in for outputs/viewer.Viewer in the training loop: keeps the parameters it asks for."""
  instances = []

  def __init__(self, steps, split, background, chunk_size, host, port, out_dir, appearances, video_pictures):
    del steps, split, background, chunk_size, out_dir, appearances
    assert tuple(video_pictures) == ('rgb', 'depth', 'normals', 'normals_pred', 'diffuse', 'tint', 'specular',
                                     'roughness')  # The config's.
    self.url, self.published, self.closed, self.calls = f'http://{host}:{port}', [], False, 0
    _RecordingViewer.instances.append(self)

  def wants_parameters(self):  # The first three steps, then every 100th.
    self.calls += 1
    return self.calls <= 3 or self.calls % 100 == 0

  def publish(self, variables, step):
    self.published.append((step, variables))

  def close(self):
    self.closed = True


@pytest.mark.device
def test_occupancy_grid_training_end_to_end(scene_cache, tmp_path, monkeypatch):
  """instant-ngp's renderer learns the tiny scene, empties the grid where the scene is empty, checkpoints
  the grid with the parameters, and render.py's functions reproduce the final evaluation; a live viewer
  (config.train.viewer_port) gets copies of the newest parameters as it trains."""
  config = tiny_ngp_config(scene_cache, num_steps=300, log_every=10, checkpoint_every=1000, batch_size=256)
  # Validation after the first step gives the starting PSNR.
  config.eval.update(at_train_seconds=(0.0,), num_images=2, final_num_images=2, video_frames=0)
  config.train.viewer_port = 8125
  monkeypatch.setattr(viewer_lib, 'Viewer', _RecordingViewer)
  summary = trainer.train_and_evaluate(config, tmp_path)
  (viewer,) = _RecordingViewer.instances
  published_steps = [step for step, _ in viewer.published]
  assert viewer.closed and published_steps[:3] == [0, 1, 2] and published_steps[-1] > 200, published_steps
  # Copies: each is still readable after the steps that followed donated the state it came from, and the
  # parameters changed from one to the next.
  first, last = viewer.published[0][1], viewer.published[-1][1]
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(first) if x.dtype == np.float32)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(last)))

  first_val = next(r for r in reporting.read_metrics(tmp_path) if r['split'] == 'val')
  assert first_val['step'] == 1
  assert summary['val_psnr'] > first_val['psnr'] + 8, (first_val['psnr'], summary['val_psnr'])
  records = [r for r in reporting.read_metrics(tmp_path) if r['split'] == 'train']
  assert records[-1]['complete_rays'] == 1.0
  # Skipping sharpens as the grid learns where the scene is empty.
  assert records[-1]['marched_samples_per_ray'] < 0.7 * records[0]['marched_samples_per_ray'], records

  _, _, state = experiment_lib.restore_model(tmp_path)
  occupied = np.asarray(state.model_state['occupancy']['occupied'])
  assert 0.01 < occupied.mean() < 0.6, occupied.mean()  # Learnt: neither everything nor nothing.
  rendered = render.render_split(tmp_path, 'val')
  assert rendered['mean']['psnr'] == pytest.approx(summary['val_psnr'], abs=1e-3)


def test_mipnerf_config_takes_finite_steps(scene_cache):
  """configs/mipnerf.py (shrunk) takes finite training steps. (The proposal sampler over hash grids of
  configs/lego_proposal.py and demo360.py trains end to end in test_method_configs.py.)"""
  config = tiny_method_config('mipnerf', scene_cache)
  experiment = experiment_lib.build_experiment(config)
  state = _run_steps(experiment, experiment_lib.init_state(experiment, seed=0), config, 2)
  assert int(state.step) == 2
  chex.assert_tree_all_finite(jax.device_get(state.params))


def test_a_loss_term_registered_outside_the_library_reaches_the_training_metrics(scene_cache, tmp_path,
                                                                                 monkeypatch):
  # A toy term, as a new method would register it: the mean final opacity, weighted by config.loss.toy_weight.
  monkeypatch.setitem(losses.LOSS_TERMS, 'toy', losses.LossTerm(
      lambda history, batch, loss_config: jnp.mean(history[-1].acc) * jnp.mean(batch['rgb'] >= 0),
      frozenset({'intervals'}), 0.0))
  config = small_mlp_config(scene_cache, num_steps=5)
  config.eval.final_num_images = 0
  config.loss.unlock()
  config.loss.toy_weight = 0.25
  trainer.train_and_evaluate(config, tmp_path)
  train_records = [r for r in reporting.read_metrics(tmp_path) if r['split'] == 'train']
  assert all(0 < r['loss_toy'] <= 0.25 for r in train_records)
  np.testing.assert_allclose([r['loss'] for r in train_records],
                             [r['loss_data'] + r['loss_toy'] for r in train_records], rtol=1e-5)
  # A term the renderer cannot feed is refused when the model is built, before anything compiles.
  ngp = tiny_ngp_config(scene_cache)
  ngp.loss.unlock()
  ngp.loss.toy_weight = 0.25
  with pytest.raises(ConfigError, match='config.loss.toy_weight=0.25 needs interval edges'):
    experiment_lib.build_experiment(ngp)


def test_progress_videos_without_frames_are_refused_before_training(scene_cache, tmp_path):
  config = tiny_config(scene_cache)
  config.eval.update(video_every=10, video_frames=0)
  with pytest.raises(ConfigError, match=r'config.eval.video_every=10 writes videos of config.eval.video_frames '
                     'frames, which is 0'):
    trainer.train_and_evaluate(config, tmp_path / 'run')
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_a_run_resumes_with_other_render_buffers_but_not_another_model(tmp_path):
  # Buffer sizes of rendering images fix nothing of the trained state (experiment.COMPUTE_ONLY_MODEL_KEYS).
  config = tiny_ngp_config()
  checkpoints.save_config(tmp_path, config)
  config.model.occupancy_grid.update(eval_march_samples_per_ray=7.0, eval_render_samples_per_ray=5.0)
  experiment_lib.check_resumable(config, tmp_path)
  config.model.occupancy_grid.grid_resolution = 8
  with pytest.raises(ConfigError, match=r'\(config.model.occupancy_grid.grid_resolution differ'):
    experiment_lib.check_resumable(config, tmp_path)
  # The embedded scene is made by its config: training photos that drift are other data (its val views aren't).
  config.model.occupancy_grid.grid_resolution = tiny_ngp_config().model.occupancy_grid.grid_resolution
  config.procedural.num_val = 5
  experiment_lib.check_resumable(config, tmp_path)
  config.procedural.train_gain_range = (0.5, 2.0)
  with pytest.raises(ConfigError, match=r'different model or scene \(config.procedural.train_gain_range differ'):
    experiment_lib.check_resumable(config, tmp_path)
