"""Training state, learning-rate schedule and optimizer."""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


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

  @property
  def variables(self):
    """Everything model.apply needs: {'params': ..., and the model_state collections}."""
    return {'params': self.params, **self.model_state}


def log_linear_schedule(lr_init: float, lr_final: float, num_steps: int, delay_steps: int = 0,
                        delay_mult: float = 1.0) -> optax.Schedule:
  """NeRF's learning rate: exp-interpolated from `lr_init` to `lr_final` over `num_steps` steps.

  With `delay_steps` > 0 it is also scaled by JaxNeRF's warm-up factor, which rises from `delay_mult` to 1
  along a quarter sine wave over the first `delay_steps` steps.
  """

  def schedule(step):
    progress = jnp.clip(step / max(num_steps, 1), 0.0, 1.0)
    lr = jnp.exp(jnp.log(lr_init) * (1 - progress) + jnp.log(lr_final) * progress)
    if delay_steps > 0:
      warmup = jnp.clip(step / delay_steps, 0.0, 1.0)
      lr *= delay_mult + (1 - delay_mult) * jnp.sin(0.5 * jnp.pi * warmup)
    return lr

  return schedule


def make_schedule(optim_config, num_steps: int) -> optax.Schedule:
  """The learning-rate schedule of `optim_config` over a run of `num_steps` steps."""
  return log_linear_schedule(optim_config.lr_init, optim_config.lr_final, num_steps,
                             optim_config.lr_delay_steps, optim_config.lr_delay_mult)


def make_optimizer(optim_config, schedule: optax.Schedule) -> optax.GradientTransformation:
  """Adam following `schedule`, after optional global-norm clipping."""
  adam = optax.adam(schedule, b1=optim_config.adam_b1, b2=optim_config.adam_b2, eps=optim_config.adam_eps)
  if optim_config.grad_clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(optim_config.grad_clip_norm), adam)
  return adam


def init_train_state(model, optimizer, seed: int, example_rays, background) -> TrainState:
  """Initialises parameters and optimizer state (call under jax.jit: eager init is slow)."""
  init_key, state_key = jax.random.split(jax.random.key(seed))
  variables = dict(model.init(init_key, None, example_rays, background))
  params = variables.pop('params')
  variables.pop('diagnostics', None)  # Values a model sows for logging, not state.
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                    rng=jax.random.key_data(state_key), model_state=variables)
