"""Parameter groups: trained arrays beside the model's, each with its own optimiser settings.

A component that trains arrays of its own (a correction per training camera, ...) registers a
`ParameterGroup`: its config group `config.<name>` (each key's Setting), whether a config turns it on, its
initial arrays, its learning-rate settings, the values only the training split knows (filled in when training
starts and saved with the run's config, as conditioning components' are), and what it changes in a step (the
training cameras). The training state, the step, the loss and the checkpoints read this registry, so a
component names itself in no other library file.

Naming conventions:
- `params`: the model's parameters (TrainState.params, what model.apply reads).
- `group_params`: {group name: its arrays} of the groups a config turns on (TrainState.group_params); None
  when it turns none on, so that such a run's state, optimiser and checkpoints are laid out as before groups
  existed (its old checkpoints resume).
- `trainable`: what the optimiser updates: `params` alone without groups, else {'model': params, **group_params}
  (TrainState.trainable); optax.multi_transform gives each top-level entry its own Adam and schedule.
"""

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.training import train_state

MODEL = train_state.MODEL  # The label of the model's parameters in TrainState.trainable and the optimiser.

# The learning-rate keys a group's config may set; the others (Adam's moments, clipping) are config.optim's.
SCHEDULE_KEYS = ('lr_init', 'lr_final', 'lr_decay_start', 'lr_delay_steps', 'lr_delay_mult')


@dataclasses.dataclass(frozen=True)
class ParameterGroup:
  """A registered parameter group.

  Attributes:
    name: the group's config group (config.<name>), its key in TrainState.group_params and its optimiser's
      label.
    settings: {key: config_groups.Setting} of config.<name>; it holds the SCHEDULE_KEYS it sets.
    enabled: (group config) -> whether the config turns the group on.
    init: (group config, key) -> its initial arrays (a pytree).
    complete: (group config, training split) -> {key: value} the training split fixes (e.g. the number of
      training cameras), or None.
    split_keys: the keys `complete` sets (a resume is checked without them before the data loads).
    state_keys: the keys that fix the group's arrays and what they mean (a run resumes only with the same
      values); the split keys among them.
    adjust_cameras: (group config, arrays, training cameras camera.CameraTable, progress) -> the cameras the
      step makes its rays with, differentiably in the arrays; None: the group leaves them alone.
    small: {key: value} of the group at the test suite's size.
  """

  name: str
  settings: Dict[str, Setting]
  enabled: Callable[[Any], bool]
  init: Callable[[Any, jax.Array], Any]
  complete: Optional[Callable[[Any, Any], Dict[str, Any]]] = None
  split_keys: tuple = ()
  state_keys: tuple = ()
  adjust_cameras: Optional[Callable] = None
  small: Optional[Mapping[str, Any]] = None


PARAMETER_GROUPS: Dict[str, ParameterGroup] = {}


def register(group: ParameterGroup, checks=()) -> ParameterGroup:
  """Adds `group` to PARAMETER_GROUPS (its name must be new and not MODEL) and its settings, with `checks`
  of the whole config, to the config registry."""
  if group.name in PARAMETER_GROUPS or group.name == MODEL:
    raise ValueError(f'A parameter group {group.name!r} is registered already (or is reserved).')
  config_groups.register(group.name, group.settings, owner=group.init.__module__, small=group.small,
                         checks=checks)
  PARAMETER_GROUPS[group.name] = group
  return group


def enabled(config) -> List[ParameterGroup]:
  """The registered groups that `config` turns on, in registration order."""
  return [g for g in PARAMETER_GROUPS.values() if g.name in config and g.enabled(config[g.name])]


def split_keys() -> frozenset:
  """'<group>.<key>' of every value a group takes from the training split."""
  return frozenset(f'{g.name}.{key}' for g in PARAMETER_GROUPS.values() for key in g.split_keys)


def state_keys(config) -> Dict[str, Any]:
  """{'<group>.<key>': value} of every registered group's state_keys in `config`: what fixes the shapes and
  meaning of the arrays of a training state (a run resumes only with the same)."""
  return {f'{g.name}.{key}': config[g.name].get(key) for g in PARAMETER_GROUPS.values() if g.name in config
          for key in g.state_keys}


def with_training_split(config: ml_collections.ConfigDict, train_split) -> ml_collections.ConfigDict:
  """A copy of `config` with the values the groups it turns on take from the training split."""
  completed = config.copy_and_resolve_references()
  for group in enabled(config):
    if group.complete is not None:
      completed[group.name].update(group.complete(config[group.name], train_split))
  return completed


def init_group_params(config, key: jax.Array) -> Optional[Dict[str, Any]]:
  """{name: initial arrays} of the groups `config` turns on; None where it turns on none."""
  groups = enabled(config)
  if not groups:
    return None
  keys = jax.random.split(key, len(groups))
  return {g.name: g.init(config[g.name], k) for g, k in zip(groups, keys)}


def optimizer_settings(config, name: str) -> ml_collections.ConfigDict:
  """config.optim with the SCHEDULE_KEYS that group `name`'s config sets: the settings of its Adam."""
  settings = config.optim.copy_and_resolve_references()
  with settings.unlocked():
    settings.update({key: config[name][key] for key in SCHEDULE_KEYS if key in config[name]})
  return settings


def make_optimizer(config, pruned_fields=()) -> Tuple[optax.GradientTransformation, Dict[str, optax.Schedule]]:
  """(optimizer, {label: schedule of training progress}) of `config`. Without groups: the model's Adam
  (train_state.make_optimizer) and schedule, labelled MODEL. With them: optax.multi_transform of the model's
  Adam and one per group (its `optimizer_settings`), labelled by the top-level keys of TrainState.trainable."""
  num_steps = config.train.num_steps
  transforms = {MODEL: train_state.make_optimizer(config.optim, pruned_fields)}
  schedules = {MODEL: train_state.make_schedule(config.optim, num_steps)}
  groups = enabled(config)
  if not groups:
    return transforms[MODEL], schedules
  for group in groups:
    settings = optimizer_settings(config, group.name)
    transforms[group.name] = train_state.make_optimizer(settings)
    schedules[group.name] = train_state.make_schedule(settings, num_steps)
  return optax.multi_transform(transforms, {label: label for label in transforms}), schedules


def with_learning_rates(opt_state, rates: Mapping[str, jax.Array]):
  """`opt_state` of `make_optimizer` whose next update uses rates[label] for each label."""
  if not hasattr(opt_state, 'inner_states'):  # Without groups: the model's Adam alone.
    return train_state.with_learning_rate(opt_state, rates[MODEL])
  inner = {label: masked._replace(inner_state=train_state.with_learning_rate(masked.inner_state, rates[label]))
           for label, masked in opt_state.inner_states.items()}
  return opt_state._replace(inner_states=inner)


def adjust_cameras(config, group_params, cameras, progress):
  """The training cameras as the groups in `group_params` make them (each group's adjust_cameras in turn)."""
  if group_params is None or cameras is None:
    return cameras
  for name, arrays in group_params.items():
    group = PARAMETER_GROUPS[name]
    if group.adjust_cameras is not None:
      cameras = group.adjust_cameras(config[name], arrays, cameras, progress)
  return cameras


def adjusts_cameras(config) -> bool:
  """Whether a group `config` turns on changes the training cameras (evaluation then aligns them)."""
  return any(g.adjust_cameras is not None for g in enabled(config))


def learning_rate_metrics(rates: Mapping[str, jax.Array]) -> Dict[str, jax.Array]:
  """The step's rates by metric name: 'learning_rate' (the model's) and 'learning_rate_<group>'."""
  return {('learning_rate' if label == MODEL else f'learning_rate_{label}'): jnp.asarray(rate)
          for label, rate in rates.items()}
