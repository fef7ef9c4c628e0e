"""Training state, learning-rate schedule and optimizer.

The learning rate is a function of training progress, step / schedule_steps in [0, 1]: an optax schedule
built over that unit interval. The state's `schedule_steps` says over how many steps the run lays it:
config.train.num_steps, unless a time budget (config.train.max_seconds) is expected to end the run sooner, in
which case the trainer measures the step time and shortens it so that the rate still reaches its final value
(pacing.TimeBudget). Past the end the rate stays at lr_final. (The compiled step does not depend on the
run's length, so runs of any length share it.)
"""

from typing import Any, Optional, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training.dynamic_scale import DynamicScale

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
from jaxnerf.training import pruning
from jaxnerf import values

LOSS_SCALE_MODES = ('auto', 'dynamic', 'none')

_IN_0_1 = (values.is_probability, 'a number in [0, 1)')
config_groups.register('optim', owner=__name__, settings=dict(
    lr_init=Setting(5e-4, 'Learning rate at the start of training (held for lr_decay_start of the run, then '
                    'decayed to lr_final).', values.POSITIVE),
    lr_final=Setting(5e-6, 'Learning rate at the end: log-linear decay from lr_init over train.num_steps (or the '
                     'steps a train.max_seconds budget is expected to allow); held after it.', values.POSITIVE),
    lr_decay_start=Setting(0.0, 'Fraction of the run for which lr_init is held before the decay (0: decay from '
                           'the start).', (values.is_probability, 'a fraction of the run in [0, 1)')),
    lr_delay_steps=Setting(0, "JaxNeRF's warm-up: the rate is scaled by lr_delay_mult rising to 1 (a quarter sine) "
                           'over these first steps (0: none).', values.NON_NEGATIVE_INT),
    lr_delay_mult=Setting(1.0, "The warm-up's scale of the rate at step 0 (lr_delay_steps).", values.POSITIVE),
    adam_b1=Setting(0.9, "Adam's decay rate of the gradients' first moment.", _IN_0_1),
    adam_b2=Setting(0.999, "Adam's decay rate of the gradients' second moment.", _IN_0_1),
    adam_eps=Setting(1e-8, "Adam's epsilon, added to the root of the second moment.", values.NON_NEGATIVE),
    grad_clip_norm=Setting(0.0, 'Clip gradients to this global norm (0: no clipping).', values.NON_NEGATIVE),
))
# Dynamic loss scaling (flax's DynamicScale), so that float16 gradients neither underflow nor abort the run.
config_groups.register('optim.loss_scale', owner=__name__, settings=dict(
    mode=Setting('auto', "Dynamic loss scaling for float16 gradients: 'auto' (on for model.dtype='float16'), "
                 "'dynamic' or 'none'. The scale is kept in the checkpoints.",
                 values.one_of(LOSS_SCALE_MODES, ordered=True)),
    initial=Setting(2.0**15, 'The first loss scale: the loss is multiplied by it; a step whose gradients overflow '
                    'is skipped and halves it.', values.POSITIVE),
    growth_interval=Setting(2000, 'Finite steps in a row after which the scale doubles.', values.POSITIVE_INT),
    minimum=Setting(1.0, 'The smallest scale: a step that overflows at it stops the run.', values.POSITIVE),
))


class TrainState(flax.struct.PyTreeNode):
  """Everything a training step reads and writes; checkpoints hold exactly this.

  `rng` is the run's base key: each step derives its own by folding in `step`, so the random draws of a
  step do not depend on how the run was interrupted and resumed.
  """

  step: jax.Array  # int32 scalar: the number of updates applied.
  params: Any
  opt_state: Any
  rng: jax.Array  # Raw uint32[2] key data, which checkpoints store as a plain array.
  # The model's variables that are not trained by gradients, by collection (e.g. {'occupancy': ...} for
  # models.OccupancyGridNeRF); {} for most models.
  model_state: Any
  schedule_steps: jax.Array  # int32 scalar: the step at which the learning-rate schedule ends.
  # Dynamic loss scaling for float16 compute (`make_loss_scale`); None without it.
  dynamic_scale: Optional[DynamicScale] = None
  # {group name: arrays} of the parameter groups the config turns on (training/parameter_groups.py), trained
  # beside `params` by their own Adam; None without groups (the state is then laid out as before they existed).
  group_params: Optional[Any] = None

  @property
  def variables(self):
    """Everything model.apply needs: {'params': ..., and the model_state collections}."""
    return {'params': self.params, **self.model_state}

  @property
  def trainable(self):
    """What the optimizer updates: `params` alone without parameter groups, else {'model': params,
    **group_params} (optax.multi_transform labels each top-level entry)."""
    return trainable(self.params, self.group_params)

  def with_trainable(self, tree) -> 'TrainState':
    """The state with `params` and `group_params` from `tree`, laid out as `trainable`."""
    params, group_params = split_trainable(tree, None if self.group_params is None else tuple(self.group_params))
    return self.replace(params=params, group_params=group_params)


MODEL = 'model'  # The label of the model's parameters in TrainState.trainable and in the optimizer.


def trainable(params, group_params):
  """TrainState.trainable of these."""
  return params if group_params is None else {MODEL: params, **group_params}


def split_trainable(tree, group_names):
  """(params, group_params) of a `trainable` tree whose groups are `group_names` (None: it has none)."""
  if group_names is None:
    return tree, None
  return tree[MODEL], {name: tree[name] for name in group_names}


def make_schedule(optim_config, num_steps: int) -> optax.Schedule:
  """NeRF's learning rate as a function of training progress p in [0, 1]: lr_init until p reaches
  lr_decay_start, then optax's exponential decay to lr_final at p = 1 (a straight line in log space), held at
  lr_final after it. With lr_decay_start = 0 (NeRF's), the decay spans the whole run.

  With lr_delay_steps > 0 it is also scaled by JaxNeRF's warm-up factor, which rises from lr_delay_mult to
  1 along a quarter sine wave over the first lr_delay_steps of `num_steps` steps (the same fraction of the
  run when it is laid over fewer steps).
  """
  decay_start = optim_config.lr_decay_start
  decay = optax.exponential_decay(init_value=optim_config.lr_init, transition_steps=1 - decay_start,
                                  decay_rate=optim_config.lr_final / optim_config.lr_init,
                                  transition_begin=decay_start, end_value=optim_config.lr_final)
  delay_fraction, delay_mult = optim_config.lr_delay_steps / max(num_steps, 1), optim_config.lr_delay_mult
  if delay_fraction <= 0:
    return decay

  def schedule(progress):
    warmup = jnp.clip(progress / delay_fraction, 0.0, 1.0)
    return decay(progress) * (delay_mult + (1 - delay_mult) * jnp.sin(0.5 * jnp.pi * warmup))

  return schedule


def training_progress(step, schedule_steps):
  """The fraction of a run of `schedule_steps` steps done at `step`, in [0, 1]."""
  return jnp.clip(step / jnp.maximum(schedule_steps, 1).astype(jnp.float32), 0.0, 1.0)


def scheduled_learning_rate(schedule: optax.Schedule, step, schedule_steps):
  """The learning rate at `step` of a run that lays `schedule` (of progress) over `schedule_steps` steps."""
  return schedule(step / jnp.maximum(schedule_steps, 1).astype(jnp.float32))


def make_optimizer(optim_config, pruned_fields: Sequence[str] = ()) -> optax.GradientTransformation:
  """Adam, after optional global-norm clipping, with the learning rate as a hyperparameter that the train
  step sets at every step (optax.inject_hyperparams; see `with_learning_rate`). The zero weights of the
  kernels of `pruned_fields` (a pruned model, being fine-tuned) stay zero (pruning.keep_pruned_at_zero;
  in the chain even when there are none, so that the optimizer state of a pruned model has the structure
  of the trained one it fine-tunes from)."""

  def adam(learning_rate):
    transform = optax.adam(learning_rate, b1=optim_config.adam_b1, b2=optim_config.adam_b2,
                           eps=optim_config.adam_eps)
    if optim_config.grad_clip_norm > 0:
      transform = optax.chain(optax.clip_by_global_norm(optim_config.grad_clip_norm), transform)
    return optax.chain(transform, pruning.keep_pruned_at_zero(pruned_fields))

  return optax.inject_hyperparams(adam)(learning_rate=optim_config.lr_init)


def with_learning_rate(opt_state, learning_rate):
  """`opt_state` of `make_optimizer` whose next update uses `learning_rate`."""
  return opt_state._replace(hyperparams={**opt_state.hyperparams, 'learning_rate': learning_rate})


def uses_loss_scaling(optim_config, dtype: str) -> bool:
  """Whether training scales the loss: config.optim.loss_scale.mode 'dynamic', or 'auto' with float16
  compute (bfloat16 has float32's exponent range and needs none)."""
  mode = optim_config.loss_scale.mode
  if mode not in LOSS_SCALE_MODES:
    raise ConfigError(f'config.optim.loss_scale.mode must be one of {list(LOSS_SCALE_MODES)}, got {mode!r}.')
  return mode == 'dynamic' or (mode == 'auto' and dtype == 'float16')


def make_loss_scale(optim_config, dtype: str) -> Optional[DynamicScale]:
  """The initial dynamic loss scale (flax's DynamicScale) of config.optim.loss_scale, or None when the run
  does not scale its loss (`uses_loss_scaling`).

  The loss is multiplied by the scale before differentiation and the gradients divided by it in float32,
  so that small gradients survive float16's range (smallest normal 6e-5). A step whose scaled gradients
  overflow is skipped and halves the scale; growth_interval finite steps in a row double it.
  """
  if not uses_loss_scaling(optim_config, dtype):
    return None
  config = optim_config.loss_scale
  return DynamicScale(growth_factor=2.0, backoff_factor=0.5, growth_interval=config.growth_interval,
                      fin_steps=jnp.zeros((), jnp.int32), scale=jnp.asarray(config.initial, jnp.float32),
                      minimum_scale=config.minimum)


def init_train_state(model, optimizer, key, example_rays, background, num_steps,
                     dynamic_scale: Optional[DynamicScale] = None, init_group_params=None) -> TrainState:
  """Initialises parameters and optimizer state from PRNG `key` (jax.random.key(seed); call under jax.jit:
  eager init is slow), with the schedule laid over `num_steps` steps (an int, or an int32 array), and the
  loss scale `dynamic_scale` (make_loss_scale).
  `init_group_params` (key -> {name: arrays} or None; parameter_groups.init_group_params) gives the arrays of
  the parameter groups, which `optimizer` then updates with the model's (parameter_groups.make_optimizer)."""
  init_key, state_key = jax.random.split(key)
  variables = dict(model.init(init_key, None, example_rays, background))
  params = variables.pop('params')
  variables.pop('diagnostics', None)  # Values a model sows for logging, not state.
  # (A key of its own, so that the model's arrays are those of a run without groups.)
  group_params = init_group_params and init_group_params(jax.random.fold_in(init_key, 1))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(trainable(params, group_params)),
                    rng=jax.random.key_data(state_key), model_state=variables,
                    schedule_steps=jnp.asarray(num_steps, jnp.int32), dynamic_scale=dynamic_scale,
                    group_params=group_params)
