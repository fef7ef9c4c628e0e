"""training/parameter_groups.py: a registered group trains beside the model with its own Adam and schedule,
loss terms read its arrays only where it trains, and a run without groups keeps the state, optimizer and
checkpoint layout it had before groups existed."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxnerf import losses
from jaxnerf.training import checkpoints
from jaxnerf.training import default_config
from jaxnerf.training import parameter_groups
from jaxnerf.training import train_state


@pytest.fixture
def toy_group(monkeypatch):
  """A group 'toy' of one vector, learning at 0.5 (the model at config.optim.lr_init), and a term reading it."""
  group = parameter_groups.ParameterGroup(
      name='toy', settings={}, enabled=lambda group_config: group_config.on,
      init=lambda group_config, key: {'vector': jnp.zeros(3)})
  monkeypatch.setitem(parameter_groups.PARAMETER_GROUPS, 'toy', group)
  monkeypatch.setitem(losses.LOSS_TERMS, 'toy_pull', losses.LossTerm(
      lambda history, batch, loss_config, arrays: jnp.sum((arrays['vector'] - 1.0)**2), frozenset(), 1.0, 'toy'))
  config = default_config.get_config()
  with config.unlocked():
    config.toy = ml_collections.ConfigDict({'on': True, 'lr_init': 0.5, 'lr_final': 0.5})
  return config


def test_a_group_trains_with_its_own_adam_and_schedule(toy_group):
  config = toy_group
  optimizer, schedules = parameter_groups.make_optimizer(config)
  assert set(schedules) == {'model', 'toy'}
  assert float(schedules['toy'](0.0)) == pytest.approx(0.5)
  assert float(schedules['model'](0.0)) == pytest.approx(config.optim.lr_init)
  trainable = train_state.trainable({'w': jnp.ones(2)}, parameter_groups.init_group_params(config, jax.random.key(0)))
  opt_state = optimizer.init(trainable)
  rates = {label: schedule(0.0) for label, schedule in schedules.items()}
  opt_state = parameter_groups.with_learning_rates(opt_state, rates)
  grads = {'model': {'w': jnp.ones(2)}, 'toy': {'vector': -jnp.ones(3)}}
  updates, _ = optimizer.update(grads, opt_state, trainable)
  new = optax.apply_updates(trainable, updates)
  np.testing.assert_allclose(new['toy']['vector'], 0.5, rtol=1e-5)  # Adam's first step: its rate.
  np.testing.assert_allclose(new['model']['w'], 1 - config.optim.lr_init, rtol=1e-5)


def test_terms_read_a_groups_arrays_only_where_it_trains(toy_group):
  loss_config = toy_group.loss
  history = ()
  with_group = losses.total_loss(history, {}, _no_data(loss_config), {'model': {}, 'toy': {'vector': jnp.zeros(3)}})
  assert float(with_group['loss_toy_pull']) == pytest.approx(3.0)
  without = losses.total_loss(history, {}, _no_data(loss_config), {'model': {}})
  assert 'loss_toy_pull' not in without and float(without['loss']) == 0.0


def _no_data(loss_config):
  """The loss config with only the toy term weighed (no renderer's history in these tests)."""
  config = loss_config.copy_and_resolve_references()
  config.data_weight = 0.0
  return config


def test_without_groups_the_optimizer_and_checkpoint_layout_are_the_old_ones():
  config = default_config.get_config()
  assert parameter_groups.init_group_params(config, jax.random.key(0)) is None
  optimizer, _ = parameter_groups.make_optimizer(config)
  state = optimizer.init({'w': jnp.ones(2)})
  assert not hasattr(state, 'inner_states')  # The model's Adam alone, as before.
  fields = checkpoints._as_saved(train_state.TrainState(jnp.int32(0), {}, state, jnp.zeros(2, jnp.uint32), {},
                                                        jnp.int32(1)))
  assert 'group_params' not in fields
