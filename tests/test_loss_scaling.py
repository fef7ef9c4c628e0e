"""float16 training with dynamic loss scaling, through the real train step: gradients that underflow without
it train with it; overflowing steps are skipped and halve the scale, finite ones regrow it; a run that fails
at the minimum scale stops; parameters whose forward pass overflows are never saved; the scale is
checkpointed."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxnerf.datasets import batching
from jaxnerf.errors import ConfigError
from jaxnerf.errors import NonFiniteLossError
from jaxnerf.models.intervals import StatelessRenderer
from jaxnerf.ops.camera import Rays
from jaxnerf.ops import compositing
from jaxnerf.outputs import reporting
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import steps as steps_lib
from jaxnerf.training import train_state
from jaxnerf.training import trainer
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import tiny_config

NUM_RAYS = 256
# Colour = 0.5 + OUTPUT_GAIN * (a float16 layer's output): the loss's gradient reaches that float16 output
# multiplied by OUTPUT_GAIN / NUM_RAYS, about 1e-9, below float16's smallest subnormal (6e-8).
OUTPUT_GAIN = 1e-4


class _LinearColour(StatelessRenderer):
  """A one-level 'renderer' whose colour is a linear layer of the ray origins, computed in `dtype`."""

  dtype: str = 'float16'

  @nn.compact
  def __call__(self, rng, rays, background, progress=1.0):
    y = nn.Dense(3, dtype=self.dtype, param_dtype=jnp.float32)(rays.origins)
    zeros = jnp.zeros(rays.origins.shape[:-1])
    return [compositing.RenderedRays(rgb=0.5 + OUTPUT_GAIN * y.astype(jnp.float32), depth=zeros, acc=zeros,
                                   w=zeros[..., None])]


def _optim_config(mode, initial=2.0**15, growth_interval=2000, minimum=1.0):
  return ml_collections.ConfigDict(dict(
      lr_init=3e-2, lr_final=3e-2, lr_decay_start=0.0, lr_delay_steps=0, lr_delay_mult=1.0, adam_b1=0.9,
      adam_b2=0.99, adam_eps=1e-15, grad_clip_norm=0.0,
      loss_scale=dict(mode=mode, initial=initial, growth_interval=growth_interval, minimum=minimum)))


def _batch(seed=0, target_offset=0.0):
  rng = np.random.default_rng(seed)
  origins = rng.normal(size=(NUM_RAYS, 3)).astype(np.float32)
  true_kernel = np.array([[1.0, -2.0, 0.5], [0.3, 1.0, -1.0], [-1.5, 0.2, 2.0]], np.float32)
  ones = np.ones((NUM_RAYS, 1), np.float32)
  rays = Rays(origins, origins, origins, ones, 2 * ones, 1e-3 * ones, np.zeros((NUM_RAYS, 1), np.int32))
  rgb = 0.5 + OUTPUT_GAIN * origins @ true_kernel + target_offset
  return {'rays': rays, 'rgb': rgb.astype(np.float32), 'alpha': ones}


def _train_step_and_state(optim_config, dtype='float16'):
  model = _LinearColour(dtype)
  schedule = train_state.make_schedule(optim_config, 1000)
  optimizer = train_state.make_optimizer(optim_config)
  loss_config = ml_collections.ConfigDict(dict(data='mse', charbonnier_eps=1e-3, coarse_weight=1.0,
                                               interlevel_weight=0.0, distortion_weight=0.0))
  step = jax.jit(steps_lib.make_train_step(model, optimizer, schedule, jnp.ones(3), loss_config))
  state = jax.jit(lambda: train_state.init_train_state(
      model, optimizer, jax.random.key(0), _batch()['rays'], jnp.ones(3), 1000,
      train_state.make_loss_scale(optim_config, dtype)))()
  return step, state


def test_loss_scaling_is_on_for_float16_only_by_default():
  assert train_state.make_loss_scale(_optim_config('auto'), 'float16') is not None
  assert train_state.make_loss_scale(_optim_config('auto'), 'bfloat16') is None
  assert train_state.make_loss_scale(_optim_config('auto'), 'float32') is None
  assert train_state.make_loss_scale(_optim_config('dynamic'), 'float32') is not None
  assert train_state.make_loss_scale(_optim_config('none'), 'float16') is None


@pytest.mark.device
def test_float16_gradients_that_underflow_train_with_loss_scaling():
  batch = _batch()
  losses = {}
  for mode in ('none', 'auto'):
    step, state = _train_step_and_state(_optim_config(mode))
    first_params = jax.device_get(state.params)
    history = []
    for _ in range(150):
      state, metrics = step(state, batch)
      history.append(jax.device_get(metrics))
    losses[mode] = [float(m['loss']) for m in history]
    if mode == 'none':  # Every gradient flushed to zero in float16: nothing moves.
      assert all(float(m['grad_norm']) == 0.0 for m in history)
      chex.assert_trees_all_equal(jax.device_get(state.params), first_params)
    else:
      assert all(bool(m['finite']) for m in history)
      assert all(float(m['loss_scale']) == 2.0**15 for m in history)
  assert losses['none'][-1] == pytest.approx(losses['none'][0])
  assert losses['auto'][-1] < 0.01 * losses['auto'][0]
  # The scaled float16 gradient is the float32 model's (the same initial parameters: same seed).
  step32, state32 = _train_step_and_state(_optim_config('none'), 'float32')
  _, metrics32 = step32(state32, batch)
  step16, state16 = _train_step_and_state(_optim_config('auto'))
  _, metrics16 = step16(state16, batch)
  assert float(metrics16['grad_norm']) == pytest.approx(float(metrics32['grad_norm']), rel=2e-2)


@pytest.mark.device
def test_overflowing_steps_halve_the_scale_and_finite_ones_regrow_it():
  """From a scale of 2^60, the scaled float16 gradient overflows: each such step is skipped (parameters
  kept, the step counted) and halves the scale, until the gradient fits; then every growth_interval + 1
  finite steps double it, until it overflows again."""
  step, state = _train_step_and_state(_optim_config('auto', initial=2.0**60, growth_interval=3))
  batch = _batch(target_offset=0.1)
  skipped = grown = 0
  for i in range(40):
    params, scale, fin_steps = jax.device_get((state.params, state.dynamic_scale.scale,
                                               state.dynamic_scale.fin_steps))
    state, metrics = step(state, batch)
    metrics, new_scale = jax.device_get((metrics, state.dynamic_scale.scale))
    assert int(state.step) == i + 1 and not bool(metrics['failed']) and float(metrics['loss_scale']) == scale
    params_kept = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params),
                                                         jax.tree.leaves(jax.device_get(state.params))))
    if not bool(metrics['finite']):
      skipped += 1
      assert params_kept and new_scale == scale / 2
    else:
      assert not params_kept
      grown += fin_steps == 3
      assert new_scale == (2 * scale if fin_steps == 3 else scale)
  assert skipped >= 10 and grown >= 1  # ~15 halvings from 2^60 before the gradient fits float16.


def test_non_finite_steps_at_the_minimum_scale_fail():
  step, state = _train_step_and_state(_optim_config('auto', initial=4.0, minimum=1.0))
  batch = _batch()
  batch['rgb'] = np.full_like(batch['rgb'], np.nan)
  failed = []
  for _ in range(3):
    state, metrics = step(state, batch)
    failed.append(bool(metrics['failed']))
  assert failed == [False, False, True]  # Scales 4 and 2 are skipped; at the minimum, 1, the run fails.


def test_a_float16_run_that_stays_non_finite_stops_and_keeps_its_checkpoint(scene_cache, tmp_path,
                                                                            monkeypatch):
  config = small_mlp_config(scene_cache)  # The loss scale's course is any model's.
  config.model.dtype = 'float16'
  config.optim.loss_scale.update(initial=4.0, minimum=1.0)
  original = batching.RayBatcher.batch

  def batch_with_nans_from_step_13(self, step):
    batch = original(self, step)
    if step >= 13:
      batch['rgb'] = np.full_like(batch['rgb'], np.nan)
    return batch

  monkeypatch.setattr(batching.RayBatcher, 'batch', batch_with_nans_from_step_13)
  # Steps 14 and 15 are skipped at scales 4 and 2; step 16 fails at the minimum.
  with pytest.raises(NonFiniteLossError, match=r'step 16 with the loss scale already at its minimum \(1\).*'
                                               r'checkpoint \(step 10\)'):
    trainer.train_and_evaluate(config, tmp_path)
  _, _, state = experiment_lib.restore_model(tmp_path)
  assert int(state.step) == 10 and float(state.dynamic_scale.scale) == 4.0
  # Steps 11-15 were logged: two skipped, the means over the three applied.
  record = next(r for r in reporting.read_metrics(tmp_path) if r['split'] == 'train' and r['step'] == 15)
  assert record['skipped_steps'] == 2 and np.isfinite(record['loss']) and record['loss_scale'] == 4.0


def test_float16_parameters_whose_forward_pass_overflows_are_never_saved(scene_cache, tmp_path, monkeypatch):
  """What an absurd learning rate (lr_init=1e3) leaves after one step: finite parameters, a thousand times
  too large, whose float16 forward pass overflows. Loss scaling skips each step (it cannot mend a forward
  overflow) until training ends; the final save keeps nothing, since its model would render NaN. (The
  config of the test above: its compiled step is reused.)"""
  config = small_mlp_config(scene_cache, num_steps=2)  # Steps 1 and 2 are skipped at scales 4 and 2.
  config.model.dtype = 'float16'
  config.optim.loss_scale.update(initial=4.0, minimum=1.0)
  init_state = experiment_lib.init_state
  monkeypatch.setattr(experiment_lib, 'init_state', lambda experiment, seed: (lambda state: state.replace(
      params=jax.tree.map(lambda p: 1e3 * p, state.params)))(init_state(experiment, seed)))
  with pytest.raises(NonFiniteLossError, match=r'The parameters of step 2 give a non-finite loss; they were not '
                                               r'saved, and training stopped\. No checkpoint was saved in .* before '
                                               r"it\. Try config.model.dtype='float32'"):
    trainer.train_and_evaluate(config, tmp_path)
  assert checkpoints.kept_steps(tmp_path) == []


def test_checkpoints_keep_the_loss_scale(tmp_path):
  step, state = _train_step_and_state(_optim_config('auto', initial=2.0**60, growth_interval=1))
  for _ in range(20):  # Overflows halve the scale, then finite steps double it: both counters move.
    state, _ = step(state, _batch(target_offset=0.1))
  assert float(state.dynamic_scale.scale) < 2.0**60 and int(state.step) == 20
  manager = checkpoints.make_manager(tmp_path, keep=2)
  checkpoints.save(manager, state, train_seconds=1.0)
  manager.wait_until_finished()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), state)
  restored = checkpoints.restore_newest_intact(manager, abstract)
  chex.assert_trees_all_equal(jax.device_get(restored.state), jax.device_get(state))
  assert restored.state.dynamic_scale.growth_interval == 1
  manager.close()


def test_resuming_with_loss_scaling_switched_is_refused(tmp_path):
  config = tiny_config()
  config.model.dtype = 'float16'
  checkpoints.save_config(tmp_path, config)  # What a float16 run with loss scaling leaves.
  config.optim.loss_scale.mode = 'none'  # Its state has no loss scale: its checkpoints would not restore.
  with pytest.raises(ConfigError, match=r'config.optim.loss_scale.mode differ'):
    experiment_lib.check_resumable(config, tmp_path)
