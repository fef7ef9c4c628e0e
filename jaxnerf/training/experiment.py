"""An experiment: the model, optimizer and compiled steps a config describes, its training state, and the
trained state of a workdir (for rendering)."""

import dataclasses
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn
from flax.training.dynamic_scale import DynamicScale

from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf import losses
from jaxnerf import models
from jaxnerf.ops import camera
from jaxnerf import parallel
from jaxnerf.training import checkpoints
from jaxnerf.training import pruning
from jaxnerf.training import steps as steps_lib
from jaxnerf.training import train_state as train_state_lib


@dataclasses.dataclass
class Experiment:
  """The model and everything compiled for it, built from a config."""

  model: nn.Module  # A renderer of models.RENDERERS (the ray-history contract of models/__init__.py).
  optimizer: object
  steps: steps_lib.CompiledSteps
  background: float  # Grey level behind the scene (1 white, 0 black).
  num_steps: int  # The length of training that the learning-rate schedule is laid over at first.
  dynamic_scale: Optional[DynamicScale] = None  # The initial loss scale, for float16 compute.


def build_experiment(config: ml_collections.ConfigDict, devices=None) -> Experiment:
  """Model, optimizer and compiled steps of `config`, data-parallel over `devices` (default: all)."""
  model = models.make_model(config.model, config.scene_box)
  losses.check_terms(config.loss, models.model_provides(model, config.model), config.model.name)
  schedule = train_state_lib.make_schedule(config.optim, config.train.num_steps)
  optimizer = train_state_lib.make_optimizer(config.optim, pruned_fields(model, config.optim.pruned_levels))
  mesh = parallel.make_mesh(devices)
  background = 1.0 if config.white_background else 0.0
  steps = steps_lib.compile_steps(model, optimizer, schedule, mesh, jnp.full(3, background),
                                  config.loss, config.train.random_background)
  return Experiment(model, optimizer, steps, background, config.train.num_steps,
                    train_state_lib.make_loss_scale(config.optim, config.model.dtype))


def pruned_fields(model, levels: str) -> Tuple[str, ...]:
  """The fields of `model` that render `levels` (config.optim.pruned_levels: 'none', 'coarse', 'fine' or
  'both')."""
  if levels == 'none':
    return ()
  try:
    return pruning.fields_of_levels(type(model).LEVEL_FIELDS, levels)
  except ValueError as e:
    raise ConfigError(f'config.optim.pruned_levels={levels!r} (prune.py --prune): {e}') from None


def _example_rays(batch_size: int = 1) -> camera.Rays:
  ones = jnp.ones((batch_size, 3), jnp.float32)
  return camera.Rays(ones, ones, ones / jnp.sqrt(3.0), ones[:, :1], 2 * ones[:, :1], 1e-3 * ones[:, :1])


def _initializer(experiment: Experiment, seed: int):
  return lambda: train_state_lib.init_train_state(experiment.model, experiment.optimizer, seed,
                                                  _example_rays(), jnp.ones(3), experiment.num_steps,
                                                  experiment.dynamic_scale)


def init_state(experiment: Experiment, seed: int) -> train_state_lib.TrainState:
  """Fresh training state, replicated over the mesh (initialised by one compiled call)."""
  return jax.jit(_initializer(experiment, seed), out_shardings=experiment.steps.replicated)()


def abstract_state(experiment: Experiment, seed: int):
  """Shapes, dtypes and shardings of the training state, for restoring checkpoints."""
  shapes = jax.eval_shape(_initializer(experiment, seed))
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=experiment.steps.replicated), shapes)


def restore_model(workdir, config: Optional[ml_collections.ConfigDict] = None
                  ) -> Tuple[ml_collections.ConfigDict, Experiment, train_state_lib.TrainState]:
  """The experiment and newest intact training state of `workdir` (its saved config unless `config`)."""
  config = config or checkpoints.load_config(workdir)
  experiment = build_experiment(config)
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  try:
    restored = checkpoints.restore_newest_intact(manager, abstract_state(experiment, config.seed))
  finally:
    manager.close()
  if restored is None:
    raise CheckpointError(f'No checkpoint in {workdir}/{checkpoints.CHECKPOINTS_DIR}: train there first.')
  return config, experiment, restored.state


# Model settings that only size the buffers of rendering images: a run may resume with others.
RENDER_ONLY_MODEL_KEYS = frozenset({'model.occupancy_grid.eval_march_samples_per_ray',
                                    'model.occupancy_grid.eval_render_samples_per_ray',
                                    'model.occupancy_grid.eval_steps_per_round'})


def check_resumable(config: ml_collections.ConfigDict, workdir):
  """Refuses to resume a workdir whose checkpoints were trained with a different model."""
  try:
    saved = checkpoints.load_config(workdir)
  except CheckpointError:
    return

  def model_fields(c):  # What fixes the state's shapes and meaning, flattened to 'model.mlp.width'.
    fields = flatten_keys({'model': c.model.to_dict(), 'scene_box': list(c.scene_box),
                           'optim': {'loss_scale': {'mode': c.optim.loss_scale.mode}}})
    return {k: v for k, v in fields.items() if k not in RENDER_ONLY_MODEL_KEYS}

  saved_fields, fields = model_fields(saved), model_fields(config)
  differing = sorted(k for k in saved_fields.keys() | fields.keys() if saved_fields.get(k) != fields.get(k))
  if differing:
    raise ConfigError(f'{workdir} holds checkpoints of a different model (config.'
                      f'{", config.".join(differing)} differ); use a new --workdir or the same model.')


def flatten_keys(tree, prefix=''):
  """{'model.mlp.width': value, ...} of a nested dict (a config's to_dict())."""
  if not isinstance(tree, dict):
    return {prefix[:-1]: tree}
  return {k: v for key, value in tree.items() for k, v in flatten_keys(value, f'{prefix}{key}.').items()}
