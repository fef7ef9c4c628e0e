"""The learning-rate schedule (optax), laid over a shorter run by schedule_steps, and the optimizer whose
rate the step sets."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxnerf.training import train_state
def optim_config(**overrides):
  config = ml_collections.ConfigDict(dict(lr_init=5e-4, lr_final=5e-6, lr_decay_start=0.0, lr_delay_steps=0,
                                          lr_delay_mult=1.0, adam_b1=0.9, adam_b2=0.999, adam_eps=1e-8,
                                          grad_clip_norm=0.0))
  config.update(overrides)
  return config


def log_linear_reference(step, lr_init, lr_final, num_steps, delay_steps=0, delay_mult=1.0):
  """NeRF's (and JaxNeRF's) schedule, written out in float64: exp-interpolation from lr_init to lr_final,
  times the quarter-sine warm-up."""
  progress = np.clip(step / num_steps, 0, 1)
  lr = np.exp(np.log(lr_init) * (1 - progress) + np.log(lr_final) * progress)
  if delay_steps > 0:
    lr *= delay_mult + (1 - delay_mult) * np.sin(0.5 * np.pi * np.clip(step / delay_steps, 0, 1))
  return lr


@pytest.mark.parametrize('delay_steps, delay_mult', [(0, 1.0), (2500, 0.01), (100, 0.5)])
def test_schedule_is_nerfs_log_linear_decay_with_jaxnerfs_warm_up(delay_steps, delay_mult):
  config = optim_config(lr_delay_steps=delay_steps, lr_delay_mult=delay_mult)
  schedule = train_state.make_schedule(config, 250_000)
  steps = np.array([0, 1, 50, 99, 100, 2499, 2500, 60_000, 125_000, 249_999, 250_000, 400_000])
  expected = log_linear_reference(steps, 5e-4, 5e-6, 250_000, delay_steps, delay_mult)
  np.testing.assert_allclose(jax.vmap(schedule)(jnp.asarray(steps) / 250_000), expected, rtol=2e-5)


def test_schedule_laid_over_fewer_steps_reaches_the_final_rate_there():
  config = optim_config(lr_init=1e-2, lr_final=1e-3)
  schedule = train_state.make_schedule(config, 20_000)
  rate = lambda step, schedule_steps: float(train_state.scheduled_learning_rate(schedule, step, schedule_steps))
  assert rate(0, 900) == pytest.approx(1e-2, rel=1e-6)
  assert rate(450, 900) == pytest.approx(np.sqrt(1e-2 * 1e-3), rel=1e-5)  # Half way: the geometric mean.
  assert rate(900, 900) == pytest.approx(1e-3, rel=1e-5)
  assert rate(5000, 900) == pytest.approx(1e-3, rel=1e-5)  # Held at lr_final after the end.
  for step in (0, 777, 19_999):  # Laid over its own length, it is NeRF's schedule.
    assert rate(step, 20_000) == pytest.approx(log_linear_reference(step, 1e-2, 1e-3, 20_000), rel=1e-5)
  # A warm-up keeps its fraction of the run.
  warm = train_state.make_schedule(optim_config(lr_delay_steps=2000, lr_delay_mult=0.1), 20_000)
  assert float(train_state.scheduled_learning_rate(warm, 50, 1000)) == pytest.approx(
      log_linear_reference(1000, 5e-4, 5e-6, 20_000, 2000, 0.1), rel=1e-5)


def test_schedule_can_hold_the_initial_rate_before_decaying():
  schedule = train_state.make_schedule(optim_config(lr_init=1e-2, lr_final=1e-3, lr_decay_start=0.6), 1000)
  progress = np.array([0.0, 0.3, 0.6, 0.7, 0.8, 1.0, 1.5])
  expected = np.where(progress <= 0.6, 1e-2, 1e-2 * 0.1 ** np.clip((progress - 0.6) / 0.4, 0, 1))
  np.testing.assert_allclose(jax.vmap(schedule)(jnp.asarray(progress)), expected, rtol=1e-5)


@pytest.mark.parametrize('grad_clip_norm', [0.0, 0.5])
def test_optimizer_updates_with_the_rate_the_step_sets(grad_clip_norm):
  optimizer = train_state.make_optimizer(optim_config(grad_clip_norm=grad_clip_norm))
  params = {'w': jnp.ones(4)}
  grads = {'w': jnp.array([1.0, -2.0, 0.5, 4.0])}
  state = optimizer.init(params)
  for lr in (1e-1, 3e-3):
    updates, _ = optimizer.update(grads, train_state.with_learning_rate(state, lr), params)
    # Adam's first update is -lr * g / (|g| + eps): -lr * sign(g), clipped or not.
    np.testing.assert_allclose(updates['w'], -lr * np.sign(grads['w']), rtol=1e-5)
  assert float(train_state.with_learning_rate(state, 7e-4).hyperparams['learning_rate']) == pytest.approx(7e-4)
  # The optimizer is optax's Adam with the rate injected: same updates over several steps.
  reference = optax.adam(1e-2, b1=0.9, b2=0.999, eps=1e-8)
  if grad_clip_norm:
    reference = optax.chain(optax.clip_by_global_norm(grad_clip_norm), reference)
  ours, theirs = state, reference.init(params)
  for i in range(3):
    g = jax.tree.map(lambda x: x * (i + 1), grads)
    u_ours, ours = optimizer.update(g, train_state.with_learning_rate(ours, 1e-2), params)
    u_theirs, theirs = reference.update(g, theirs, params)
    np.testing.assert_allclose(u_ours['w'], u_theirs['w'], rtol=1e-6)
