"""The compiled functions of training and rendering, and the one factory that compiles them.

Every jax.jit of the training loop is made in `compile_steps`, with its shardings and donated buffers: the
state is replicated, rays are split over the 'data' mesh axis, and XLA inserts the gradient all-reduce.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxnerf import metrics
from jaxnerf import parallel
from jaxnerf.train_state import TrainState


def reconstruction_loss(renderings, rgb, coarse_loss_weight: float):
  """NeRF's loss (paper, Eq. 6): squared error of the coarse and fine renderings, [B, 3] each.

  Returns:
    loss: scalar, coarse_loss_weight * mse_coarse + mse_fine (just the coarse MSE without a fine level).
    mses: [num_levels] the mean squared error of each level.
  """
  mses = jnp.stack([jnp.mean((r.rgb - rgb) ** 2) for r in renderings])
  weights = jnp.array([coarse_loss_weight] + [1.0] * (len(renderings) - 1)) if len(renderings) > 1 \
      else jnp.ones(1)
  return jnp.sum(weights * mses), mses


def make_train_step(model, optimizer: optax.GradientTransformation, background, coarse_loss_weight):
  """A train step (state, batch) -> (state, metrics), to be compiled by `compile_steps`.

  A step whose loss or gradient is not finite leaves the state untouched (metrics['finite'] is False), so the
  host can stop the run and no checkpoint ever holds NaNs.
  """

  def loss_fn(params, batch, rng):
    renderings = model.apply({'params': params}, rng, batch['rays'], background)
    loss, mses = reconstruction_loss(renderings, batch['rgb'], coarse_loss_weight)
    return loss, mses

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    (loss, mses), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, rng)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updated = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state)
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, state)
    step_metrics = {'loss': loss, 'mse': mses[-1], 'psnr': metrics.mse_to_psnr(mses[-1]),
                    'psnr_coarse': metrics.mse_to_psnr(mses[0]), 'grad_norm': grad_norm,
                    'finite': finite}
    return new_state, step_metrics

  return train_step


def make_render_rays(model, background):
  """Deterministic rendering (params, rays) -> {'rgb', 'depth', 'acc'} of the finest level, for [B] rays."""

  def render_rays(params, rays):
    final = model.apply({'params': params}, None, rays, background)[-1]
    return {'rgb': final.rgb, 'depth': final.depth, 'acc': final.acc}

  return render_rays


class CompiledSteps(NamedTuple):
  train_step: Callable  # (state, batch) -> (state, metrics); donates the state.
  render_rays: Callable  # (params, rays) -> {'rgb', 'depth', 'acc'}.
  batch_sharding: jax.sharding.NamedSharding
  replicated: jax.sharding.NamedSharding


def compile_steps(model, optimizer, mesh, background, coarse_loss_weight: float) -> CompiledSteps:
  """jax.jit's the train step and the renderer over `mesh`: state replicated, rays split over 'data'."""
  replicated = parallel.replicated(mesh)
  batch_sharding = parallel.batch_sharded(mesh)
  background = jnp.asarray(background, jnp.float32)
  train_step = jax.jit(make_train_step(model, optimizer, background, coarse_loss_weight),
                       in_shardings=(replicated, batch_sharding),
                       out_shardings=(replicated, replicated),
                       donate_argnums=(0,))
  render_rays = jax.jit(make_render_rays(model, background),
                        in_shardings=(replicated, batch_sharding), out_shardings=batch_sharding)
  return CompiledSteps(train_step, render_rays, batch_sharding, replicated)
