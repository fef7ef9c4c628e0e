"""Config values that cannot work are refused before anything runs, in one line naming the key."""

import re

import pytest

from configs import default
from configs import demo
from jaxnerf.errors import ConfigError
from jaxnerf import losses
from jaxnerf.training import config_checks


@pytest.mark.parametrize('key, value, message', [
    ('train.num_steps', -5, 'config.train.num_steps=-5: expected a positive integer'),
    ('train.num_steps', 0, 'config.train.num_steps=0: expected a positive integer'),
    ('factor', 0, 'config.factor=0: expected a positive integer'),
    ('train.batch_size', 0, 'config.train.batch_size=0: expected a positive integer'),
    ('train.max_seconds', -1.0, 'config.train.max_seconds=-1.0: expected a finite number >= 0'),
    ('optim.lr_init', 0.0, 'config.optim.lr_init=0.0: expected a finite number > 0'),
    ('optim.lr_final', float('nan'), 'config.optim.lr_final=nan: expected a finite number > 0'),
    ('optim.adam_b2', 1.0, 'config.optim.adam_b2=1.0: expected a number in [0, 1)'),
    ('eval.chunk_size', -8, 'config.eval.chunk_size=-8: expected a positive integer'),
    ('eval.final_num_images', -2, 'config.eval.final_num_images=-2: expected an integer >= -1'),
    ('eval.at_train_seconds', (10.0, -1.0), 'config.eval.at_train_seconds=(10.0, -1.0): expected a list'),
    ('batching.precrop_fraction', 1.5, 'config.batching.precrop_fraction=1.5: expected a fraction in (0, 1]'),
    ('model.occupancy_grid.step_size', 0.0, 'config.model.occupancy_grid.step_size=0.0: expected a finite'),
    ('procedural.resolution', 4, 'config.procedural.resolution=4: expected an integer >= 8'),
    ('procedural.train_gain_range', (2.0, 0.5), 'config.procedural.train_gain_range=(2.0, 0.5): expected two finite'),
    ('procedural.train_white_balance', 1.0, 'config.procedural.train_white_balance=1.0: expected a finite number'),
    ('loss.data', 'l1', "config.loss.data='l1': expected one of ['charbonnier', 'mse']"),
    ('loss.coarse_weight', -0.1, 'config.loss.coarse_weight=-0.1: expected a finite number >= 0'),
    ('model.proposal.mlp.layers', 'binary', "config.model.proposal.mlp.layers='binary': expected one of"),
    ('model.hash_grid.activation_bits', 16, 'config.model.hash_grid.activation_bits=16: expected an integer'),
    ('optim.loss_scale.mode', 'always', "config.optim.loss_scale.mode='always': expected one of"),
    ('optim.loss_scale.minimum', 0.0, 'config.optim.loss_scale.minimum=0.0: expected a finite number > 0'),
    ('optim.pruned_levels', 'middle', "config.optim.pruned_levels='middle': expected one of"),
])
def test_out_of_range_values_name_the_key(key, value, message):
  config = demo.get_config()
  parent, _, name = key.rpartition('.')
  (config[parent] if parent else config)[name] = value
  with pytest.raises(ConfigError, match='^' + re.escape(message)):
    config_checks.check_values(config)


def test_relations_between_values():
  config = demo.get_config()
  config.near, config.far = 6.0, 2.0
  with pytest.raises(ConfigError, match=r'config.near=6.0 must be less than config.far=2.0'):
    config_checks.check_values(config)
  config = demo.get_config()
  config.scene_box = (-1, -1, -1, 1, -2, 1)
  with pytest.raises(ConfigError, match=r'config.scene_box=\(-1, -1, -1, 1, -2, 1\): expected \(\) or 6'):
    config_checks.check_values(config)
  config.scene_box = (0, 0, 0, 1, 1)
  with pytest.raises(ConfigError, match=r'config.scene_box'):
    config_checks.check_values(config)


def test_batch_must_split_over_the_devices():
  config = demo.get_config()
  config.train.batch_size = 127  # conftest.py fakes two devices.
  with pytest.raises(ConfigError, match=r'config.train.batch_size=127 must be divisible by the number of '
                                        r'devices \(2\)'):
    config_checks.check_training(config)


def test_every_rule_names_a_key_of_the_default_config():
  config = default.get_config()
  for key, _ in config_checks.rules():
    config_checks._lookup(config, key)  # pylint: disable=protected-access  # Raises KeyError if stale.
  config_checks.check_training(config)  # The defaults themselves pass.


def test_refnerf_configs_build_and_feed_their_terms_and_the_glossy_twins_differ_only_in_appearance():
  from configs import demo_glossy
  from configs import demo_mirror
  from configs import refnerf
  from jaxnerf import models
  for config in (refnerf.get_config(), refnerf.get_config('cpu'), demo_glossy.get_config(),
                 demo_glossy.get_config('ref'), demo_mirror.get_config(), demo_mirror.get_config('ref')):
    config_checks.check_training(config)
    model = models.make_model(config.model, config.scene_box)
    losses.check_terms(config.loss, models.model_provides(model, config.model), config.model.name)
  for config_module in (demo_glossy, demo_mirror):
    twin, ref = config_module.get_config().to_dict(), config_module.get_config('ref').to_dict()
    differing = {f'{group}.{key}' for group in twin if isinstance(twin[group], dict)
                 for key in twin[group] if twin[group][key] != ref[group][key]}
    assert differing == {'model.appearance', 'model.tone_mapping', 'model.refnerf', 'loss.orientation_weight',
                         'loss.orientation_target'}, config_module.__name__
  # The mirror scene is the glossy demo's model on its own layout, at 128 px, for a fixed number of steps.
  mirror = demo_mirror.get_config('ref')
  assert (mirror.procedural.layout, mirror.procedural.resolution, mirror.train.num_steps) == ('mirror', 128, 2000)
  assert mirror.train.max_seconds == 0 and mirror.model.refnerf == demo_glossy.get_config('ref').model.refnerf


def test_the_demo_exposure_preset_drifts_the_training_photos_only_and_unknown_presets_are_refused():
  plain, exposure = demo.get_config().to_dict(), demo.get_config('exposure').to_dict()
  differing = {f'{group}.{key}' for group in plain if isinstance(plain[group], dict)
               for key in plain[group] if plain[group][key] != exposure[group][key]}
  assert differing == {'procedural.train_gain_range', 'procedural.train_white_balance'}
  assert exposure['procedural']['train_gain_range'] == (0.5, 2.0)
  assert exposure['procedural']['train_white_balance'] == 0.2
  config_checks.check_training(demo.get_config('exposure'))
  with pytest.raises(ValueError, match=r"Unknown preset 'exposures' for configs/demo.py: use '' or 'exposure'"):
    demo.get_config('exposures')


def test_reflecting_about_density_normals_that_are_not_computed_is_refused():
  config = demo.get_config()
  config.model.update(appearance='refnerf', tone_mapping='srgb')
  config.model.refnerf.reflect_about = 'density'
  with pytest.raises(ConfigError, match=r"reflect_about='density' .* config.model.normals='none' .* set "
                                        r"config.model.normals='density'"):
    config_checks.check_values(config)
  config.model.normals = 'density'
  config_checks.check_values(config)
  config.model.refnerf.reflect_about = 'normals'
  with pytest.raises(ConfigError, match=r"config.model.refnerf.reflect_about='normals': expected one of "
                                        r"\['predicted', 'density'\]"):
    config_checks.check_values(config)
  config.model.refnerf.reflect_about = 'density'
  config.loss.orientation_target = 'density'
  with pytest.raises(ConfigError, match=r"config.loss.orientation_target='density': expected one of "
                                        r"\['normals', 'normals_pred'\]"):
    config_checks.check_values(config)


def test_a_predicted_normal_head_without_its_tie_is_refused():
  config = demo.get_config()
  config.model.predicted_normals = True  # Nothing else would train it: its figures would mean nothing.
  with pytest.raises(ConfigError, match=r'config.model.predicted_normals=True: .*config.loss.predicted_normals_weight > 0'):
    config_checks.check_values(config)
  config.loss.predicted_normals_weight = 3e-4
  config_checks.check_values(config)


def test_a_normals_step_without_normals_or_below_zero_is_one_line():
  config = demo.get_config()
  config.model.normals_step = 0.01  # Would be ignored silently: the demo computes no normals.
  with pytest.raises(ConfigError, match=r"config.model.normals_step=0.01 .* config.model.normals='none' computes none"):
    config_checks.check_values(config)
  config.model.normals = 'density'
  config_checks.check_values(config)
  config.model.normals_step = -0.01
  with pytest.raises(ConfigError, match=r'normals_step'):
    config_checks.check_values(config)
