"""Checks of a config's values before anything runs: each failure is one ConfigError naming the key, its
value and what was expected.

The rules and the checks of values that must agree are registered beside the components that read the keys
(jaxnerf/config_groups.py); training/default_config.py imports every component, so all are registered here.
"""

from typing import List, Tuple

import jax
import ml_collections

from jaxnerf import config_groups
from jaxnerf.errors import ConfigError
from jaxnerf.training import default_config  # noqa: F401  (Registers every component's config group.)


def rules() -> List[Tuple[str, config_groups.Rule]]:
  """(key, (test, what is expected)) of every registered key that has a rule. Keys missing from a config are
  skipped (a config of an older version, a test's partial config)."""
  return config_groups.rules()


def _lookup(config, key: str):
  value = config
  for part in key.split('.'):
    if part not in value:
      raise KeyError(key)
    value = value[part]
  return value


def check_values(config: ml_collections.ConfigDict):
  """Raises ConfigError for the first value that breaks its rule, then for the first registered check of
  values that cannot work together."""
  for key, (test, expected) in rules():
    try:
      value = _lookup(config, key)
    except KeyError:
      continue
    if not test(value):
      raise ConfigError(f'config.{key}={value!r}: expected {expected}.')
  for check in config_groups.checks():
    message = check(config)
    if message:
      raise ConfigError(message)


def check_divisible(size: int, key: str):
  """Raises if `size` rows cannot be split evenly over all devices."""
  count = jax.device_count()
  if size % count:
    raise ConfigError(f'{key}={size} must be divisible by the number of devices ({count}).')


def check_training(config: ml_collections.ConfigDict):
  """`check_values`, and that batches split evenly over the devices and processes of this run."""
  check_values(config)
  check_divisible(config.train.batch_size, 'config.train.batch_size')
  check_divisible(config.eval.chunk_size, 'config.eval.chunk_size')
  if config.train.batch_size % jax.process_count():
    raise ConfigError(f'config.train.batch_size={config.train.batch_size} must be divisible by the number '
                      f'of processes ({jax.process_count()}).')
