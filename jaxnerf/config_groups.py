"""Config groups registered beside the components that read them: one place for each key's default, meaning and
rule.

A component (a field, a renderer, an appearance, a loss term, a reader, the training loop, ...) registers the
keys it reads with `register(path, settings)` in its own module: `path` names the group ('model.hash_grid';
'' for top-level keys), `settings` maps each key to its `Setting` (default, one line of meaning, and the rule
its value must meet). Several components may add keys to one group ('model' holds the renderer's and the
fields' shared keys); a key is registered once. From the registry:
- `default_config()` assembles the library's default config (training/default_config.py);
- `rules()` and `checks()` are what training/config_checks.py tests a config against;
- `apply_small(config)` shrinks every group a config holds to the sizes its component registered as `small`
  (its networks and sample counts, for the tests' tiny configs);
- `reference()` lists every key with its default and meaning (for the configuration reference).

Naming conventions: a *rule* is (test, expected): `test(value)` says whether a value can work, `expected`
completes "config.<key>=<value>: expected ..." (jaxnerf/values.py has the common ones); a *check* is a
function of the whole config that returns an error message for values that cannot work together, or None.
"""

import dataclasses
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import ml_collections

from jaxnerf.errors import ConfigError

Rule = Tuple[Callable[[Any], bool], Any]
Check = Callable[[ml_collections.ConfigDict], Optional[str]]


@dataclasses.dataclass(frozen=True)
class Setting:
  """One key of a group: its `default`, one line of `meaning`, and the `rule` its value must meet (None: any
  value of the default's type)."""
  default: Any
  meaning: str
  rule: Optional[Rule] = None


@dataclasses.dataclass(frozen=True)
class ConfigGroup:
  """What one component registered: keys of group `path`, the `owner` module, test sizes, and checks."""
  path: str
  settings: Mapping[str, Setting]
  owner: str
  small: Mapping[str, Any]
  checks: Sequence[Check]


@dataclasses.dataclass(frozen=True)
class KeyReference:
  key: str  # From the config's root: 'model.hash_grid.num_levels'.
  default: Any
  meaning: str
  owner: str  # The module that registered it.


def _join(path: str, key: str) -> str:
  return f'{path}.{key}' if path else key


def _group_at(config: ml_collections.ConfigDict, path: str, create: bool = False):
  """config.<path> (None where it is missing), creating the missing groups along it when `create` is set."""
  for part in path.split('.') if path else ():
    if part not in config:
      if not create:
        return None
      config[part] = ml_collections.ConfigDict()
    config = config[part]
  return config


class ConfigRegistry:
  """Registered config groups, in registration order. The library's is `REGISTRY` (the module functions
  below); tests build their own."""

  def __init__(self):
    self._groups: List[ConfigGroup] = []

  def register(self, path: str, settings: Mapping[str, Setting], owner: str = '',
               small: Optional[Mapping[str, Any]] = None, checks: Sequence[Check] = ()) -> ConfigGroup:
    """Registers `settings` (key -> Setting) of group `path` ('model.hash_grid', '' for the top level), read
    by module `owner`, with `small` (key -> value: the test size) and `checks` of the whole config. Raises
    ValueError for a key registered already, a setting without meaning, or a small value of an unknown key."""
    taken = set(self.settings_of(path))
    for key, setting in settings.items():
      if key in taken:
        raise ValueError(f'config.{_join(path, key)} is registered already.')
      if not isinstance(setting, Setting) or not setting.meaning.strip():
        raise ValueError(f'config.{_join(path, key)}: register a Setting(default, meaning, rule) with a meaning.')
    unknown = set(small or {}) - set(settings)
    if unknown:
      raise ValueError(f'small sizes for keys not registered in config.{path}: {sorted(unknown)}.')
    group = ConfigGroup(path, dict(settings), owner, dict(small or {}), tuple(checks))
    self._groups.append(group)
    return group

  def groups(self) -> Tuple[ConfigGroup, ...]:
    return tuple(self._groups)

  def settings_of(self, path: str) -> Dict[str, Setting]:
    """{key: Setting} registered for group `path`, by all its components."""
    return {key: s for g in self._groups if g.path == path for key, s in g.settings.items()}

  def default_config(self) -> ml_collections.ConfigDict:
    """The config of every registered key at its default."""
    config = ml_collections.ConfigDict()
    self._fill(config, self._groups)
    return config

  @staticmethod
  def _fill(config: ml_collections.ConfigDict, groups: Sequence[ConfigGroup]):
    """Adds to `config` the default of every key of `groups` that it lacks."""
    for group in groups:
      target = _group_at(config, group.path, create=True)
      for key, setting in group.settings.items():
        if key not in target:
          target[key] = setting.default

  def rules(self) -> List[Tuple[str, Rule]]:
    """(key from the config's root, rule) of every registered setting that has one."""
    return [(_join(g.path, key), s.rule) for g in self._groups for key, s in g.settings.items() if s.rule]

  def checks(self) -> List[Check]:
    """Every registered check of values that must agree."""
    return [check for group in self._groups for check in group.checks]

  def apply_small(self, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Sets, in place, every registered test size of the keys `config` holds; returns `config`."""
    for group in self._groups:
      target = _group_at(config, group.path)
      if target is not None:
        target.update({key: value for key, value in group.small.items() if key in target})
    return config

  def reference(self) -> Iterator[KeyReference]:
    """Every registered key with its default, meaning and owner, grouped by path in registration order."""
    for path in dict.fromkeys(g.path for g in self._groups):
      for group in self._groups:
        if group.path == path:
          for key, setting in group.settings.items():
            yield KeyReference(_join(path, key), setting.default, setting.meaning, group.owner)


REGISTRY = ConfigRegistry()
register = REGISTRY.register
groups = REGISTRY.groups
settings_of = REGISTRY.settings_of
default_config = REGISTRY.default_config
rules = REGISTRY.rules
checks = REGISTRY.checks
apply_small = REGISTRY.apply_small
reference = REGISTRY.reference


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], source: str = 'override'):
  """Sets each dotted key of `overrides` ({'optim.lr_init': 1e-3, ...}) in `config`, in place: a key the config
  lacks, or a value of the wrong type, is a ConfigError naming it ('<source> <key>=<value>: ...')."""
  for key, value in overrides.items():
    *parents, name = key.split('.')
    node = config
    for parent in parents:
      node = node.get(parent) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise ConfigError(f'{source} {key}={value!r}: the config has no key {key!r} (docs/configuration.md lists '
                        'them).')
    try:
      node[name] = value
    except TypeError as e:
      raise ConfigError(f'{source} {key}={value!r}: {e}') from None
