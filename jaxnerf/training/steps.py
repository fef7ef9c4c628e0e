"""The compiled functions of training and rendering, and the one factory that compiles them.

Every jax.jit of the training loop is made in `compile_steps`, with its shardings and donated buffers: the
state is replicated, rays are split over the 'data' mesh axis, and XLA inserts the gradient all-reduce.
"""

import functools
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxnerf import losses
from jaxnerf import metrics
from jaxnerf.ops import camera
from jaxnerf.ops import compositing
from jaxnerf.outputs import memory
from jaxnerf import parallel
from jaxnerf.training import parameter_groups
from jaxnerf.training import train_state as train_state_lib
from jaxnerf.training.train_state import TrainState


def recomposite(rgb, alpha, old_background, new_background):
  """Moves colours [..., 3] composited on `old_background` with opacity alpha [..., 1] onto
  `new_background`: c * a + old * (1 - a) becomes c * a + new * (1 - a)."""
  return rgb + (new_background - old_background) * (1.0 - alpha)


def _split_groups(tree, num_groups: int):
  """[B, ...] arrays -> [num_groups, B / num_groups, ...]: one group of rays per device."""
  return jax.tree.map(lambda x: x.reshape((num_groups, -1) + x.shape[1:]), tree)


def _merge_groups(tree):
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


def batch_rays(batch, cameras: Optional[camera.CameraTable]):
  """`batch` with its 'rays' [B, C]: made here from its 'pixels' [B, 3] (image, row, column) and the training
  split's `cameras` (so that they are made on the device, differentiably in the poses), or given (cameras
  None: a batch of rays, as tests and benchmarks of a model make them). Training images' rays carry their
  image's index (Rays.cam_idx)."""
  if cameras is None:
    return batch
  image, row, col = (batch['pixels'][:, i] for i in range(3))
  return {**batch, 'rays': cameras.rays(image, row, col, cam_idx=image, xnp=jnp)}


def make_train_step(model, optimizer: optax.GradientTransformation, schedules, background, loss_config,
                    random_background: bool = False, num_groups: int = 1, adjust_cameras: Optional[Callable] = None):
  """A train step (state, batch, cameras) -> (state, metrics), to be compiled by `compile_steps`: the batch's
  rays are made from its pixel indices and the training cameras (`batch_rays`; cameras None: the batch holds
  rays), as `adjust_cameras` (group_params, cameras, progress) -> cameras makes them where the state trains
  parameter groups that change them (training/parameter_groups.py: a correction of each pose).

  The learning rate of each of the optimizer's labels ('model', and each parameter group's) is its schedule in
  `schedules` ({label: schedule}, or one schedule: the model's), a function of training progress, laid over the
  state's schedule_steps (train_state.scheduled_learning_rate). The loss is the sum of the terms `loss_config`
  (config.loss) names (losses.total_loss, which hands the terms that read them the trained arrays); each term
  is also reported, and MSE and PSNR per level are computed apart.

  The batch's rays are split into `num_groups` groups (one per device), which models render
  independently. Models with state (an occupancy grid) update it first (the renderer's `update_state`).
  The model is told the training progress, step / schedule_steps (mip-NeRF 360's annealing reads it).

  With `random_background`, every ray is composited on a random colour, in the target and in the rendering
  alike (instant-ngp's trick): a constant background would let the model paint it with density, leaving
  haze in empty space.

  A step whose loss or gradient is not finite leaves the parameters and optimizer state untouched
  (metrics['finite'] is False), so no checkpoint ever holds NaNs. Without loss scaling it leaves the whole
  state untouched and fails (metrics['failed']), so that the host stops the run. With loss scaling
  (state.dynamic_scale, for float16) it is an overflow: the step is skipped, the scale halved, and the run
  goes on to the next batch; it fails only when the scale is already at its minimum.
  """
  if callable(schedules):
    schedules = {train_state_lib.MODEL: schedules}

  def loss_fn(trainable, model_state, batch, cameras, rng, progress, group_names):
    params, group_params = train_state_lib.split_trainable(trainable, group_names)
    if adjust_cameras is not None:
      cameras = adjust_cameras(group_params, cameras, progress)
    batch = _split_groups(batch_rays(batch, cameras), num_groups)
    target, ray_background = batch['rgb'], background
    if random_background:
      rng, key = jax.random.split(rng)
      ray_background = jax.random.uniform(key, target.shape, target.dtype)
      target = recomposite(target, batch['alpha'], background, ray_background)
    renderings, sown = model.apply({'params': params, **model_state}, rng, batch['rays'], ray_background,
                                   progress, mutable=['diagnostics'])
    terms = losses.total_loss(renderings, {**batch, 'rgb': target}, loss_config,
                              {train_state_lib.MODEL: params, **(group_params or {})})
    diagnostics = {name: values[0] for name, values in sown.get('diagnostics', {}).items()}
    return terms['loss'], (terms, losses.level_mses(renderings, target), diagnostics)

  def train_step(state: TrainState, batch, cameras: Optional[camera.CameraTable] = None):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    rng, update_key = jax.random.split(rng)
    model_state = model.update_state(state.params, state.model_state, update_key, state.step)
    progress = train_state_lib.training_progress(state.step, state.schedule_steps)
    args = (state.trainable, model_state, batch, cameras, rng, progress)
    loss_of = functools.partial(loss_fn, group_names=None if state.group_params is None else tuple(
        state.group_params))
    if state.dynamic_scale is None:
      (loss, (terms, mses, diagnostics)), grads = jax.value_and_grad(loss_of, has_aux=True)(*args)
    else:  # Gradients of the scaled loss, divided by the scale in float32; the scale's next value.
      dynamic_scale, _, (loss, (terms, mses, diagnostics)), grads = state.dynamic_scale.value_and_grad(
          loss_of, has_aux=True)(*args)
    rates = {label: train_state_lib.scheduled_learning_rate(schedule, state.step, state.schedule_steps)
             for label, schedule in schedules.items()}
    opt_state = parameter_groups.with_learning_rates(state.opt_state, rates)
    updates, opt_state = optimizer.update(grads, opt_state, state.trainable)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updated = state.with_trainable(optax.apply_updates(state.trainable, updates)).replace(
        step=state.step + 1, opt_state=opt_state, model_state=model_state)
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), updated, state)
    step_metrics = {**terms, 'mse': mses[-1], 'psnr': metrics.mse_to_psnr(mses[-1]),
                    'psnr_coarse': metrics.mse_to_psnr(mses[0]), 'grad_norm': grad_norm,
                    **parameter_groups.learning_rate_metrics(rates), 'finite': finite, 'failed': ~finite,
                    **diagnostics}
    if state.dynamic_scale is not None:
      # An overflow skips the update, not the step: the next step draws the next batch at half the scale.
      new_state = new_state.replace(step=state.step + 1, dynamic_scale=dynamic_scale)
      step_metrics.update(loss_scale=state.dynamic_scale.scale,
                          failed=~finite & (state.dynamic_scale.scale <= state.dynamic_scale.minimum_scale))
    return new_state, step_metrics

  return train_step


def make_render_rays(model, background, num_groups: int = 1):
  """Deterministic rendering (variables, rays) -> {'rgb', 'depth', 'median_depth', 'acc', 'complete', ...}
  of the final level, for [B] rays split into `num_groups` groups, with the per-ray composites of whatever
  else its field outputs (compositing.RenderedRays.extras: 'normals', ...). `complete` is False for rays to
  render again (packed models can run out of slots; see outputs/chunked.py: render_image). `median_depth` is
  the expected depth where the renderer gives none."""

  def render_rays(variables, rays):
    final = model.apply(variables, None, _split_groups(rays, num_groups), background)[-1]
    complete = jnp.ones(final.acc.shape, bool) if final.complete is None else final.complete
    return _merge_groups({**(final.extras or {}), 'rgb': final.rgb, 'depth': final.depth,
                          'median_depth': compositing.median_depth(final), 'acc': final.acc,
                          'complete': complete})

  return render_rays


def make_probe_rays(model, background):
  """For models that march an occupancy grid (OccupancyGridNeRF.occupied_steps): (variables, rays) ->
  {'samples', 'empty', 'rgb', 'depth', 'median_depth', 'acc', ...} of [B] rays: the slots each ray takes in
  the renderer's buffer, whether it takes none, the next four as `render_rays` gives them for such empty
  rays (the background at the far depth), with no call of the field, and each ray's state before its first
  round of `render_round`."""

  def probe_rays(variables, rays):
    probed = model.apply(variables, rays, method=model.occupied_steps)
    samples, far = probed.pop('samples'), probed.pop('far')
    return {'samples': samples, 'empty': samples == 0, 'rgb': jnp.broadcast_to(background, rays.origins.shape),
            'depth': far, 'median_depth': far, 'acc': jnp.zeros_like(far), **probed}

  return probe_rays


def make_render_round(model, background, num_groups: int = 1):
  """(variables, rays, state) -> {name: [B, ...]}: one round of OccupancyGridNeRF.render_round for [B] rays
  split into `num_groups` groups, with their state {name: [B]} (from the probe or the last round)."""

  def render_round(variables, rays, state):
    rays, state = _split_groups(rays, num_groups), _split_groups(state, num_groups)
    return _merge_groups(model.apply(variables, rays, **state, background=background,
                                     capacity=model.round_capacity(rays.origins.shape[1]),
                                     method=model.render_round))

  return render_round


class CompiledSteps(NamedTuple):
  # (state, batch, cameras) -> (state, metrics), cameras the training split's (SceneSplit.camera_table, as
  # arrays): the batch's rays are made from its pixel indices; donates the state.
  train_step: Callable
  render_rays: Callable  # (variables, rays) -> {'rgb', 'depth', 'median_depth', 'acc', 'complete'}.
  # (variables, rays) -> {'samples', 'empty', 'rgb', 'depth', 'median_depth', 'acc'}, for models that march an
  # occupancy grid; else None.
  probe_rays: Optional[Callable]
  batch_sharding: jax.sharding.NamedSharding
  replicated: jax.sharding.NamedSharding
  # For those models, the slots of render_rays' buffer per group of rays (one group per device), given the
  # rays per group: outputs/chunked.py fills chunks with rays whose probed samples fit.
  sample_capacity: Optional[Callable[[int], int]] = None
  # For those models, unless config.model.occupancy_grid.eval_steps_per_round is 0, rendering in rounds
  # (OccupancyGridNeRF.render_round, driven by outputs/chunked.py): (variables, rays, state) -> {...}; the
  # rays per group of its calls that stand in for a chunk of that many rays per group; their slots per group.
  render_round: Optional[Callable] = None
  round_rays: Optional[Callable[[int], int]] = None
  round_capacity: Optional[Callable[[int], int]] = None


def compile_steps(model, optimizer, schedules, mesh, background, loss_config,
                  random_background: bool = False, memory_budget: Optional[int] = None,
                  adjust_cameras: Optional[Callable] = None) -> CompiledSteps:
  """jax.jit's the train step (`make_train_step`, with `schedules` and `adjust_cameras`) and the renderer over
  `mesh`: state replicated, rays split over 'data'. With `memory_budget` (bytes), a render call that would take
  more is refused before it runs (memory.BudgetedCall; outputs/chunked.py then renders fewer rays a call)."""
  replicated = parallel.replicated(mesh)
  batch_sharding = parallel.batch_sharded(mesh)

  def jit(function, in_shardings):
    jitted = jax.jit(function, in_shardings=in_shardings, out_shardings=batch_sharding)
    return jitted if memory_budget is None else memory.BudgetedCall(jitted, memory_budget, batch_sharding)

  background = jnp.asarray(background, jnp.float32)
  train_step = jax.jit(make_train_step(model, optimizer, schedules, background, loss_config,
                                       random_background, mesh.size, adjust_cameras),
                       in_shardings=(replicated, batch_sharding, replicated),
                       out_shardings=(replicated, replicated),
                       donate_argnums=(0,))
  render_rays = jit(make_render_rays(model, background, mesh.size), (replicated, batch_sharding))
  if not hasattr(model, 'occupied_steps'):
    return CompiledSteps(train_step, render_rays, None, batch_sharding, replicated)
  probe_rays = jit(make_probe_rays(model, background), (replicated, batch_sharding))
  compiled = CompiledSteps(train_step, render_rays, probe_rays, batch_sharding, replicated,
                           model.eval_march_capacity)
  if not model.eval_steps_per_round:
    return compiled
  render_round = jit(make_render_round(model, background, mesh.size),
                     (replicated, batch_sharding, batch_sharding))
  return compiled._replace(render_round=render_round, round_rays=model.round_rays,
                           round_capacity=model.round_capacity)
