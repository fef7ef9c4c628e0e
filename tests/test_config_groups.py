"""jaxnerf/config_groups.py: config groups registered beside their components, and the library's registry
(every key of the default config registered once, with a meaning, a default its rule accepts, and test sizes
that pass the rules too)."""

import ml_collections
import pytest

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.training import config_checks
from jaxnerf.training import default_config
from jaxnerf import values


def _flat_keys(config, prefix=''):
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _flat_keys(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}'


def _lookup(config, key):
  for part in key.split('.'):
    config = config[part]
  return config


def _small_registry():
  registry = config_groups.ConfigRegistry()
  registry.register('', {'near': Setting(2.0, 'Near bound.', values.NON_NEGATIVE),
                         'seed': Setting(0, 'Seed.')})
  registry.register('model.grid', {'cells': Setting(64, 'Cells per side.', values.POSITIVE_INT)},
                    small={'cells': 8}, checks=(lambda c: 'too fine' if c.model.grid.cells > 512 else None,))
  registry.register('model', {'name': Setting('nerf', 'The renderer.', values.one_of(('nerf', 'grid')))})
  return registry


def test_a_registry_assembles_the_groups_of_all_its_components():
  config = _small_registry().default_config()
  assert config.to_dict() == {'near': 2.0, 'seed': 0, 'model': {'grid': {'cells': 64}, 'name': 'nerf'}}
  assert isinstance(config.near, float)
  assert [entry.key for entry in _small_registry().reference()] == ['near', 'seed', 'model.grid.cells', 'model.name']


def test_a_registry_refuses_a_key_twice_a_setting_without_meaning_and_sizes_of_unknown_keys():
  registry = _small_registry()
  with pytest.raises(ValueError, match=r'config.model.name is registered already'):
    registry.register('model', {'name': Setting('x', 'Again.')})
  with pytest.raises(ValueError, match=r'config.model.dtype: register a Setting.*with a meaning'):
    registry.register('model', {'dtype': Setting('float32', ' ')})
  with pytest.raises(ValueError, match=r"small sizes for keys not registered in config.model: \['width'\]"):
    registry.register('model', {'depth': Setting(8, 'Layers.')}, small={'width': 2})
  assert 'depth' not in registry.settings_of('model')  # Nothing of a refused registration stays.


def test_rules_checks_and_small_sizes_of_a_registry():
  registry = _small_registry()
  assert [key for key, _ in registry.rules()] == ['near', 'model.grid.cells', 'model.name']
  config = registry.default_config()
  config.model.grid.cells = 1024
  assert [check(config) for check in registry.checks()] == ['too fine']
  partial = ml_collections.ConfigDict({'model': {'name': 'grid'}})  # No grid group: nothing is added.
  assert registry.apply_small(partial).to_dict() == {'model': {'name': 'grid'}}
  assert registry.apply_small(registry.default_config()).model.grid.cells == 8


def test_one_of_lists_a_registry_as_it_is_when_the_error_is_written():
  options = {'mlp': 1}
  test, expected = values.one_of(options)
  options['hash_grid'] = 2
  assert test('hash_grid') and not test(['mlp']) and not test('grid')
  assert f'expected {expected}' == "expected one of ['hash_grid', 'mlp']"
  assert str(values.one_of(('b', 'a'), ordered=True)[1]) == "one of ['b', 'a']"


def test_every_key_of_the_default_config_is_registered_once_with_a_meaning():
  config = default_config.get_config()
  registered = [entry.key for entry in config_groups.reference()]
  assert len(registered) == len(set(registered))
  assert sorted(registered) == sorted(_flat_keys(config))
  for entry in config_groups.reference():
    assert entry.meaning.strip() and entry.owner.startswith('jaxnerf.'), entry


def test_every_rule_names_a_registered_key_and_accepts_its_default_and_its_test_size():
  config = default_config.get_config()
  small = config_groups.apply_small(default_config.get_config())
  for key, (test, expected) in config_checks.rules():
    assert test(_lookup(config, key)), f'default of config.{key}: expected {expected}'
    assert test(_lookup(small, key)), f'test size of config.{key}: expected {expected}'
  config_checks.check_values(config)
  config_checks.check_values(small)


def test_the_configuration_page_is_written_from_the_registry_and_up_to_date():
  from jaxnerf.commands import config_reference  # pylint: disable=import-outside-toplevel
  page = config_reference.markdown()
  assert config_reference.PAGE.read_text() == page, 'stale: run python -m jaxnerf.commands.config_reference'
  rows = [line for line in page.splitlines() if line.startswith('| `')]
  assert len(rows) == len(list(_flat_keys(default_config.get_config())))
  assert "| `num_levels` | `16` | int |" in page
