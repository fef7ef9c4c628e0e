"""An experiment: the model, optimizer and compiled steps a config describes, its training state, and the
trained state of a workdir (for rendering)."""

import dataclasses
import functools
import pathlib
from typing import Callable, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import ml_collections
from flax import linen as nn
from flax.training.dynamic_scale import DynamicScale

from jaxnerf import console
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf import losses
from jaxnerf import models
from jaxnerf.ops import camera
from jaxnerf.outputs import memory
from jaxnerf import parallel
from jaxnerf.training import checkpoints
from jaxnerf.training import parameter_groups
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
  # key -> {group name: initial arrays} of the parameter groups the config trains; None where it trains none.
  init_group_params: Optional[Callable] = None


def make_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The renderer of `config`, checked against its loss terms and pruned levels: quick (nothing is traced
  or compiled), so that a model that cannot be built is refused before the data loads."""
  model = models.make_model(config.model, config.scene_box)
  losses.check_terms(config.loss, models.model_provides(model, config.model), config.model.name)
  pruned_fields(model, config.optim.pruned_levels)
  return model


def build_experiment(config: ml_collections.ConfigDict, devices=None) -> Experiment:
  """Model, optimizer and compiled steps of `config`, data-parallel over `devices` (default: all)."""
  model = make_model(config)
  optimizer, schedules = parameter_groups.make_optimizer(config, pruned_fields(model, config.optim.pruned_levels))
  mesh = parallel.make_mesh(devices)
  background = 1.0 if config.white_background else 0.0
  adjust_cameras = functools.partial(parameter_groups.adjust_cameras, config) if (
      parameter_groups.adjusts_cameras(config)) else None
  steps = steps_lib.compile_steps(model, optimizer, schedules, mesh, jnp.full(3, background),
                                  config.loss, config.train.random_background, memory.budget_bytes(config),
                                  adjust_cameras)
  init_group_params = functools.partial(parameter_groups.init_group_params, config) if (
      parameter_groups.enabled(config)) else None
  return Experiment(model, optimizer, steps, background, config.train.num_steps,
                    train_state_lib.make_loss_scale(config.optim, config.model.dtype), init_group_params)


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
  return camera.Rays(ones, ones, ones / jnp.sqrt(3.0), ones[:, :1], 2 * ones[:, :1], 1e-3 * ones[:, :1],
                     jnp.zeros((batch_size, 1), jnp.int32))


def _initializer(experiment: Experiment):
  """(key, num_steps) -> a fresh training state. Both are arguments, not constants, so that one compiled
  program initialises every run of a model, whatever its seed and its number of steps."""
  return lambda key, num_steps: train_state_lib.init_train_state(
      experiment.model, experiment.optimizer, key, _example_rays(), jnp.ones(3), num_steps,
      experiment.dynamic_scale, experiment.init_group_params)


def _initializer_args(experiment: Experiment, seed: int):
  return jax.random.key(seed), jnp.asarray(experiment.num_steps, jnp.int32)


def init_state(experiment: Experiment, seed: int) -> train_state_lib.TrainState:
  """Fresh training state, replicated over the mesh (initialised by one compiled call)."""
  return jax.jit(_initializer(experiment), out_shardings=experiment.steps.replicated)(
      *_initializer_args(experiment, seed))


def abstract_state(experiment: Experiment, seed: int):
  """Shapes, dtypes and shardings of the training state, for restoring checkpoints."""
  shapes = jax.eval_shape(_initializer(experiment), *_initializer_args(experiment, seed))
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=experiment.steps.replicated), shapes)


def restore_model(workdir, config: Optional[ml_collections.ConfigDict] = None, step: Union[int, str, None] = None
                  ) -> Tuple[ml_collections.ConfigDict, Experiment, train_state_lib.TrainState]:
  """The experiment and a training state of `workdir` (its saved config unless `config`): with `step` None
  the newest intact checkpoint; an int, that step's; checkpoints.BEST, the best one (config.train.keep_best).
  A chosen checkpoint that is missing or damaged raises a CheckpointError naming it. The workdir is only
  read, never changed (it may belong to a run that is training): a damaged newest checkpoint is skipped with
  a warning, not moved aside."""
  config = config or checkpoints.load_config(workdir)
  folder = checkpoints.BEST_DIR if step == checkpoints.BEST else checkpoints.CHECKPOINTS_DIR
  none_kept = CheckpointError(
      f'{workdir} keeps no best checkpoint: train with config.train.keep_best=True (and validation, '
      'config.eval.every_steps) to keep one.' if step == checkpoints.BEST else
      f'No checkpoint in {workdir}/{checkpoints.CHECKPOINTS_DIR}: train there first.')
  if not checkpoints.kept_steps(workdir, folder):
    raise none_kept  # (Before a manager is made: nothing to read, nothing created.)
  experiment = build_experiment(config)
  abstract = abstract_state(experiment, config.seed)
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints, folder, read_only=True)
  try:
    if step is None:
      restored = checkpoints.restore_newest_intact(manager, abstract, move_damaged=False)
    elif step == checkpoints.BEST:
      best = checkpoints.best_so_far(manager)
      restored = best and checkpoints.restore_step(manager, best.step, abstract)
    else:
      restored = checkpoints.restore_step(manager, int(step), abstract)
  finally:
    manager.close()
  if restored is None:
    raise none_kept
  return config, experiment, restored.state


# Model settings that change how it computes, not its arrays or what they mean (the buffers of rendering
# images, gradient checkpointing): a run may resume with others.
COMPUTE_ONLY_MODEL_KEYS = frozenset({'procedural.num_val', 'procedural.num_test',
                                    'model.occupancy_grid.eval_march_samples_per_ray',
                                    'model.occupancy_grid.eval_render_samples_per_ray',
                                    'model.occupancy_grid.eval_steps_per_round', 'model.remat'})


def _differing_model_keys(config_a: ml_collections.ConfigDict, config_b: ml_collections.ConfigDict,
                          ignored=frozenset()) -> list:
  """The keys ('model.mlp.width', ...) of what fixes a training state's shapes and meaning that differ."""
  def model_fields(c):
    # The embedded scene is made by its config: another one is other training data (another model's).
    scene = {'dataset': c.dataset, 'procedural': c.procedural.to_dict()} if c.dataset == 'procedural' else {}
    fields = flatten_keys({'model': c.model.to_dict(), 'scene_box': list(c.scene_box),
                           'optim': {'loss_scale': {'mode': c.optim.loss_scale.mode}}, **scene})
    fields.update(parameter_groups.state_keys(c))
    skipped = COMPUTE_ONLY_MODEL_KEYS | models.conditioning.evaluation_keys() | ignored
    return {k: v for k, v in fields.items() if k not in skipped}

  fields_a, fields_b = model_fields(config_a), model_fields(config_b)
  return sorted(k for k in fields_a.keys() | fields_b.keys() if fields_a.get(k) != fields_b.get(k))


def check_resumable(config: ml_collections.ConfigDict, workdir, before_data: bool = False):
  """Refuses to resume a workdir whose checkpoints were trained with a different model (or on another
  embedded scene)."""
  try:
    saved = checkpoints.load_config(workdir)
  except CheckpointError:
    return

  # Before the data loads, the values the training split fixes are not known yet.
  differing = _differing_model_keys(saved, config, (models.conditioning.split_keys() | parameter_groups.split_keys())
                                    if before_data else frozenset())
  if differing:
    raise ConfigError(f'{workdir} holds checkpoints of a different model or scene (config.'
                      f'{", config.".join(differing)} differ); use a new --workdir or the same model and scene.')


def flatten_keys(tree, prefix=''):
  """{'model.mlp.width': value, ...} of a nested dict (a config's to_dict())."""
  if not isinstance(tree, dict):
    return {prefix[:-1]: tree}
  return {k: v for key, value in tree.items() for k, v in flatten_keys(value, f'{prefix}{key}.').items()}


def _arrays(tree) -> dict:
  return {jax.tree_util.keystr(path): (tuple(leaf.shape), str(leaf.dtype))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def init_state_from(experiment: Experiment, config: ml_collections.ConfigDict, source_workdir) -> \
    train_state_lib.TrainState:
  """A fresh training state (step 0, a new optimizer) holding the parameters and model state of a checkpoint
  of `source_workdir` (config.train.init_from), which is read and never changed: the checkpoint of
  config.train.init_from_step ('newest', 'best' or a step).

  Raises a ConfigError naming the first array of `config`'s model that the source lacks or holds with
  another shape; model settings that differ while the arrays agree (an activation, the scene box) are
  allowed, with a note naming them.
  """
  where = f'config.train.init_from={str(source_workdir)!r}'
  source = pathlib.Path(source_workdir)
  chosen = config.train.init_from_step
  step = checkpoints.BEST if chosen == checkpoints.BEST else None if chosen == 'newest' else int(chosen)
  if step is None:  # The newest, strictly: a damaged one is not moved aside in another run's workdir.
    steps = sorted(int(p.name) for p in (source / checkpoints.CHECKPOINTS_DIR).glob('*') if p.name.isdigit())
    if not steps and (source / checkpoints.CONFIG_FILE).is_file():
      raise ConfigError(f'{where}: {source / checkpoints.CHECKPOINTS_DIR} holds no checkpoint to start from.')
    step = steps[-1] if steps else 0
  try:
    source_config, _, source_state = restore_model(source, step=step)
  except CheckpointError as e:
    raise ConfigError(f'{where}: {e}') from None
  state = init_state(experiment, config.seed)
  differing = _differing_model_keys(source_config, config)
  for part in ('params', 'model_state'):
    ours, theirs = _arrays(getattr(state, part)), _arrays(getattr(source_state, part))
    for key in sorted(ours.keys() | theirs.keys()):
      if ours.get(key) != theirs.get(key):
        shown = lambda array: 'nothing' if array is None else f'shape {array[0]} {array[1]}'
        raise ConfigError(f'{where}: its model does not match this config\'s: {part}{key} is '
                          f'{shown(theirs.get(key))} there and {shown(ours.get(key))} here '
                          f'(differing settings: {", ".join(differing) or "none"}).')
  if differing:
    console.message(f'note: starting from {source} (step {int(source_state.step)}), whose config.'
                    f'{", config.".join(differing)} differ from this run\'s; their arrays agree.')
  return state.replace(params=source_state.params, model_state=source_state.model_state)
