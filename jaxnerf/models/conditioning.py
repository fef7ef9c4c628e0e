"""Per-image conditioning of colour networks: components registered with their config group beside them.

A conditioning component is an input of every colour network that depends on the training image a ray
comes from (camera.Rays.cam_idx), such as an appearance code per image (NeRF-W's embeddings). It
registers a `Conditioning`: its config group `config.model.<group>` (each key's default, meaning and rule,
which `register` hands to jaxnerf/config_groups.py like every other component's), whether a config turns it
on, how its module is built, the values only the training split knows (filled in when training starts, saved
with the run's config), and any scores of held-out views it adds. The model and the evaluation read this
registry, so a component names itself in no other library file.

The module a component builds is called as module(cam_idx [..., 1] int32) -> [..., D]; fields concatenate
the outputs of theirs to the colour network's view-dependent input (models/field_base.py: FieldBase.condition).
"""

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

import flax.linen as nn

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting

# What a held-out scorer returns: {metric name: value} of one view.
Scores = Dict[str, float]


@dataclasses.dataclass(frozen=True)
class Conditioning:
  """A registered conditioning component.

  Attributes:
    group: its config group, config.model.<group>.
    settings: {key: config_groups.Setting(default, meaning, rule)} of the group.
    enabled: (group config) -> whether the component is on.
    build: (group config, compute dtype) -> the module (called as above).
    complete: (group config, training split) -> {key: value} the training split fixes (e.g. the number of
      training images), or None.
    scorer: (model, group config, background) -> a scorer (render_view, variables, rays [H, W], truth image
      [H, W, 3], the view's rendering as its own camera) -> Scores of a held-out view, or None (no scorer, or
      none for this group config).
    split_keys: the keys `complete` sets (a resume is checked without them before the data loads).
    evaluation_keys: keys that change only how held-out views are scored, not the trained state (a run may
      resume with other values).
  """

  group: str
  settings: Dict[str, Setting]
  enabled: Callable[[Any], bool]
  build: Callable[[Any, Any], nn.Module]
  complete: Optional[Callable[[Any, Any], Dict[str, Any]]] = None
  scorer: Optional[Callable] = None
  split_keys: Tuple[str, ...] = ()
  evaluation_keys: Tuple[str, ...] = ()


CONDITIONINGS: Dict[str, Conditioning] = {}


def register(component: Conditioning) -> Conditioning:
  """Adds `component` to CONDITIONINGS (its group must be new) and its settings to the config registry."""
  if component.group in CONDITIONINGS:
    raise ValueError(f'A conditioning component of config.model.{component.group} is registered already.')
  config_groups.register(f'model.{component.group}', component.settings, owner=component.build.__module__)
  CONDITIONINGS[component.group] = component
  return component


def enabled(model_config):
  """The registered components that `model_config` (config.model) turns on, in registration order."""
  return [c for c in CONDITIONINGS.values() if c.group in model_config and c.enabled(model_config[c.group])]


def build_modules(model_config, dtype) -> tuple:
  """A fresh module of each component `model_config` turns on (each colour field gets its own)."""
  return tuple(c.build(model_config[c.group], dtype) for c in enabled(model_config))


def training_split_values(model_config, train_split) -> Dict[str, Dict[str, Any]]:
  """{group: {key: value}} that the components `model_config` turns on take from the training split."""
  return {c.group: c.complete(model_config[c.group], train_split) for c in enabled(model_config) if c.complete}


def held_out_scorers(model, model_config, background) -> list:
  """The held-out scorers of the components `model_config` turns on (see Conditioning.scorer)."""
  scorers = [c.scorer(model, model_config[c.group], background) for c in enabled(model_config) if c.scorer]
  return [scorer for scorer in scorers if scorer is not None]


def split_keys() -> frozenset:
  """'model.<group>.<key>' of every value a registered component takes from the training split."""
  return frozenset(f'model.{c.group}.{key}' for c in CONDITIONINGS.values() for key in c.split_keys)


def evaluation_keys() -> frozenset:
  """'model.<group>.<key>' of every registered component's keys that only change held-out scores."""
  return frozenset(f'model.{c.group}.{key}' for c in CONDITIONINGS.values() for key in c.evaluation_keys)
