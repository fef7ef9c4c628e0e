"""The training loop: `train_and_evaluate(config, workdir)`, and `restore_model` for rendering.

One loop serves every model: it draws ray batches, runs the compiled step, logs, validates, checkpoints and
resumes. Re-running with the same workdir continues from the newest checkpoint.
"""

import dataclasses
import json
import pathlib
import queue
import threading
import time
from typing import Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnerf import camera
from jaxnerf import checkpoints
from jaxnerf import datasets
from jaxnerf import evaluation
from jaxnerf import models
from jaxnerf import parallel
from jaxnerf import reporting
from jaxnerf import steps as steps_lib
from jaxnerf import train_state as train_state_lib
from jaxnerf.datasets import batching
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.errors import NonFiniteLossError


@dataclasses.dataclass
class Experiment:
  """The model and everything compiled for it, built from a config."""

  model: models.NeRF
  optimizer: object
  schedule: object  # step -> learning rate.
  mesh: jax.sharding.Mesh
  steps: steps_lib.CompiledSteps
  background: float  # Grey level behind the scene (1 white, 0 black).


def check_config(config: ml_collections.ConfigDict):
  """Raises ConfigError naming the config key whose value cannot work."""
  if config.train.num_steps <= 0:
    raise ConfigError(f'config.train.num_steps must be positive, got {config.train.num_steps}.')
  parallel.check_divisible(config.train.batch_size, 'config.train.batch_size')
  parallel.check_divisible(config.eval.chunk_size, 'config.eval.chunk_size')
  if config.train.batch_size % jax.process_count():
    raise ConfigError(f'config.train.batch_size={config.train.batch_size} must be divisible by the number '
                     f'of processes ({jax.process_count()}).')
  for key in ('log_every', 'checkpoint_every'):
    if config.train[key] <= 0:
      raise ConfigError(f'config.train.{key} must be positive, got {config.train[key]}.')


def build_experiment(config: ml_collections.ConfigDict, devices=None) -> Experiment:
  """Model, optimizer and compiled steps of `config`, data-parallel over `devices` (default: all)."""
  model = models.make_model(config.model, config.scene_box)
  schedule = train_state_lib.make_schedule(config.optim, config.train.num_steps)
  optimizer = train_state_lib.make_optimizer(config.optim, schedule)
  mesh = parallel.make_mesh(devices)
  background = 1.0 if config.white_background else 0.0
  steps = steps_lib.compile_steps(model, optimizer, mesh, jnp.full(3, background),
                                  config.optim.coarse_loss_weight, config.train.random_background)
  return Experiment(model, optimizer, schedule, mesh, steps, background)


def _example_rays(batch_size: int = 1) -> camera.Rays:
  ones = jnp.ones((batch_size, 3), jnp.float32)
  return camera.Rays(ones, ones, ones / jnp.sqrt(3.0), ones[:, :1], 2 * ones[:, :1])


def _initializer(experiment: Experiment, seed: int):
  return lambda: train_state_lib.init_train_state(experiment.model, experiment.optimizer, seed,
                                                  _example_rays(), jnp.ones(3))


def init_state(experiment: Experiment, seed: int) -> train_state_lib.TrainState:
  """Fresh training state, replicated over the mesh (initialised by one compiled call)."""
  return jax.jit(_initializer(experiment, seed), out_shardings=experiment.steps.replicated)()


def abstract_state(experiment: Experiment, seed: int):
  """Shapes, dtypes and shardings of the training state, for restoring checkpoints."""
  shapes = jax.eval_shape(_initializer(experiment, seed))
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=experiment.steps.replicated), shapes)


def restore_model(workdir, config: Optional[ml_collections.ConfigDict] = None):
  """The experiment and newest training state of `workdir` (its saved config unless `config` is given)."""
  config = config or checkpoints.load_config(workdir)
  experiment = build_experiment(config)
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  state = checkpoints.restore_latest(manager, abstract_state(experiment, config.seed))
  manager.close()
  if state is None:
    raise CheckpointError(f'No checkpoint in {workdir}/checkpoints: train there first.')
  return config, experiment, state


def _check_resumable(config, workdir):
  """Refuses to resume a workdir whose checkpoints were trained with a different model."""
  try:
    saved = checkpoints.load_config(workdir)
  except CheckpointError:
    return
  def model_fields(c):  # What fixes the parameters' shapes and meaning, flattened to 'model.mlp.width'.
    return _flatten({'model': c.model.to_dict(), 'scene_box': list(c.scene_box)})

  saved_fields, fields = model_fields(saved), model_fields(config)
  differing = sorted(k for k in saved_fields.keys() | fields.keys() if saved_fields.get(k) != fields.get(k))
  if differing:
    raise ConfigError(f'{workdir} holds checkpoints of a different model (config.'
                      f'{", config.".join(differing)} differ); use a new --workdir or the same model.')


def _flatten(tree, prefix=''):
  if not isinstance(tree, dict):
    return {prefix[:-1]: tree}
  return {k: v for key, value in tree.items() for k, v in _flatten(value, f'{prefix}{key}.').items()}


class _Prefetcher:
  """Prepares the batches of the coming steps on a background thread, placed on the devices."""

  def __init__(self, batcher: batching.RayBatcher, first_step: int, last_step: int, sharding, depth: int = 2):
    self._queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()

    def put(item) -> bool:  # False once the consumer has stopped: never block on a full queue then.
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          return True
        except queue.Full:
          pass
      return False

    def produce():
      try:
        for step in range(first_step, last_step):
          if not put(parallel.shard_local_batch(batcher.batch(step), sharding)):
            return
      except Exception as e:  # Re-raised in the training thread.
        put(e)

    self._thread = threading.Thread(target=produce, daemon=True)
    self._thread.start()

  def next(self):
    item = self._queue.get()
    if isinstance(item, Exception):
      raise item
    return item

  def close(self):
    self._stop.set()
    self._thread.join()


def _mean_metrics(history):
  fetched = jax.device_get(history)
  return {k: float(np.mean([m[k] for m in fetched])) for k in fetched[0] if k != 'finite'}


def _validate(experiment, state, val_split, config, writer, step, progress, train_seconds):
  indices = range(min(config.eval.num_images, val_split.num_images))
  start = time.perf_counter()
  per_image, renderings = evaluation.evaluate(experiment.steps, state.variables, val_split, indices,
                                              config.eval.chunk_size)
  mean = evaluation.mean_metrics(per_image)
  writer.write_scalars(step, 'val', {**mean, 'train_seconds': train_seconds, 'num_images': len(indices),
                                     'eval_seconds': time.perf_counter() - start})
  for i, rendering in enumerate(renderings[:3]):
    pictures = evaluation.visualize(rendering, val_split, experiment.background)
    writer.write_images(step, 'val', {f'rgb_{i}': pictures['rgb'], f'depth_{i}': pictures['depth']})
  progress.write(f"step {step}: val PSNR {mean['psnr']:.2f} dB, SSIM {mean['ssim']:.4f}")
  return mean


def _finish(experiment, state, train_split, val_split, config, workdir, writer, step, summary):
  """Final evaluation and orbit video, written to workdir/final/. The orbit follows the training
  cameras, as render.py's does."""
  out_dir = workdir / 'final'
  num = val_split.num_images if config.eval.final_num_images < 0 else min(config.eval.final_num_images,
                                                                           val_split.num_images)
  if num > 0:
    start = time.perf_counter()
    per_image, renderings = evaluation.evaluate(experiment.steps, state.variables, val_split, range(num),
                                                config.eval.chunk_size)
    result = evaluation.write_split(out_dir / 'val', val_split, per_image, renderings,
                                    experiment.background, extra={'step': step, 'split': 'val'})
    writer.write_scalars(step, 'final_val', result['mean'])
    summary.update(val_psnr=result['mean']['psnr'], val_ssim=result['mean']['ssim'], val_images=num,
                   eval_seconds=time.perf_counter() - start)
  if config.eval.orbit_frames > 0:
    start = time.perf_counter()
    frames = evaluation.render_orbit(experiment.steps, state.variables, train_split,
                                     config.eval.orbit_frames, config.eval.chunk_size, experiment.background)
    if jax.process_index() == 0:
      paths = evaluation.write_orbit(out_dir, frames, config.eval.orbit_fps, formats=('gif',))
      summary['orbit'] = str(paths[0])
    summary['orbit_seconds'] = time.perf_counter() - start


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> Dict:
  """Trains `config` in `workdir` (resuming from its newest checkpoint), then evaluates and renders.

  Returns:
    A summary: {'step', 'train_seconds', 'val_psnr', 'val_ssim', 'orbit', ...}, also written to
    workdir/final/summary.json.
  """
  workdir = pathlib.Path(workdir)
  check_config(config)
  _check_resumable(config, workdir)
  train_split = datasets.load_split(config, 'train')
  val_split = datasets.load_split(config, 'val')
  experiment = build_experiment(config)
  if jax.process_index() == 0:
    checkpoints.save_config(workdir, config)

  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  state = checkpoints.restore_latest(manager, abstract_state(experiment, config.seed))
  resumed = state is not None
  state = state if resumed else init_state(experiment, config.seed)
  start_step = int(jax.device_get(state.step))
  num_steps = config.train.num_steps
  writer = reporting.MetricsWriter(workdir)
  progress = reporting.ProgressBar(start_step, num_steps, config.train.batch_size)
  if resumed:
    progress.write(f'Resuming from the checkpoint of step {start_step} in {workdir}.')

  batcher = batching.RayBatcher(train_split, parallel.local_batch_size(config.train.batch_size),
                                config.batching.mode, config.batching.precrop_steps,
                                config.batching.precrop_fraction, config.seed, jax.process_index())
  prefetcher = _Prefetcher(batcher, start_step, num_steps, experiment.steps.batch_sharding)
  train_seconds, history, last_saved = 0.0, [], start_step
  step = start_step
  eval_times = sorted(config.eval.at_train_seconds)  # Validation times still to come.
  try:
    # Compiled ahead of the loop, so that training time (max_seconds, at_train_seconds) excludes it.
    compile_start = time.perf_counter()
    batch = prefetcher.next() if step < num_steps else None
    train_step = experiment.steps.train_step.lower(state, batch).compile() if batch is not None else None
    compile_seconds = time.perf_counter() - compile_start
    interval_start = time.perf_counter()
    while step < num_steps:
      state, step_metrics = train_step(state, batch)
      step += 1
      batch = prefetcher.next() if step < num_steps else None
      progress.advance()
      history.append(step_metrics)
      # Checking the previous step keeps one step in flight while we wait.
      if len(history) > 1 and not bool(history[-2]['finite']):
        raise NonFiniteLossError(step - 1)
      elapsed = train_seconds + time.perf_counter() - interval_start
      out_of_time = config.train.max_seconds > 0 and elapsed >= config.train.max_seconds
      at_log = step % config.train.log_every == 0 or step == num_steps or out_of_time
      at_checkpoint = step % config.train.checkpoint_every == 0
      at_eval = (config.eval.every_steps > 0 and step % config.eval.every_steps == 0) or (
          bool(eval_times) and elapsed >= eval_times[0])
      if not (at_log or at_checkpoint or at_eval):
        continue
      if not bool(history[-1]['finite']):
        raise NonFiniteLossError(step)
      train_seconds += time.perf_counter() - interval_start
      if at_log:
        scalars = _mean_metrics(history)
        scalars['rays_per_second'] = progress.update(step, scalars)
        scalars['learning_rate'] = float(experiment.schedule(step))
        scalars['train_seconds'] = train_seconds
        writer.write_scalars(step, 'train', scalars)
        history = []
      if at_checkpoint:
        checkpoints.save(manager, state)
        last_saved = step
      if at_eval:
        _validate(experiment, state, val_split, config, writer, step, progress, train_seconds)
        eval_times = [t for t in eval_times if t > train_seconds]
      if out_of_time:
        progress.write(f'Stopping at step {step}: config.train.max_seconds={config.train.max_seconds} reached.')
        break
      interval_start = time.perf_counter()
  except NonFiniteLossError as e:
    prefetcher.close()
    manager.wait_until_finished()
    raise NonFiniteLossError(
        f'The loss or its gradient became non-finite at step {e.args[0]}; training stopped. The newest '
        f'checkpoint ({manager.latest_step()}) in {workdir} is intact. Try a lower config.optim.lr_init or '
        'config.optim.grad_clip_norm > 0.') from None
  except KeyboardInterrupt:
    # Keep the finished work: the state is always finite (the step refuses non-finite updates).
    prefetcher.close()
    if step > last_saved:
      checkpoints.save(manager, state)
    manager.wait_until_finished()
    progress.close()
    print(f'\nInterrupted at step {step}; saved a checkpoint. Run the same command to resume.')
    raise
  prefetcher.close()
  if step > last_saved:
    checkpoints.save(manager, state)
  progress.close()

  summary = {'step': step, 'train_seconds': train_seconds, 'compile_seconds': compile_seconds,
             'resumed_from': start_step if resumed else None}
  _finish(experiment, state, train_split, val_split, config, workdir, writer, step, summary)
  manager.wait_until_finished()
  manager.close()
  writer.close()
  if jax.process_index() == 0:
    (workdir / 'final').mkdir(parents=True, exist_ok=True)
    (workdir / 'final' / 'summary.json').write_text(json.dumps(summary, indent=2))
  return summary
