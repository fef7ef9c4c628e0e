"""Training and rendering throughput (rays/s) of a config on the local devices, as one JSON line.

  python benchmarks/throughput.py --config=configs/chair.py
  python benchmarks/throughput.py --config=configs/demo.py --config.train.batch_size=1024 --repeats=5
  python benchmarks/throughput.py --workdir=runs/lego_ngp --repeats=3    # A trained model on its own data.

With --config it needs no dataset: rays come from cameras on a sphere around the origin looking at the scene
(as the Blender scenes' cameras do), with random target colours, so the figures measure the model, sampling
and optimizer of an untrained model; for models that skip empty space (model.name='occupancy_grid') these
are worst cases (an untrained grid marks every cell occupied).

With --workdir it measures the trained model of that workdir (its newest checkpoint and saved config) on
its scene: training steps on batches of its training rays (from a copy of the trained state, which is not
saved), and rendering of its first --views val views (default: all, up to 100) as render.py renders them
(render rays/s counts every pixel, and `render_to_train` is the ratio of the two).

Reports medians over timed calls after a compile call, the peak memory of a training step (the device's, or
on the CPU the process's resident memory above its level before the step), and the process's peak resident
memory. Gradient checkpointing's trade:

  python benchmarks/throughput.py --config=configs/chair.py --config.model.remat=True
"""

import json
import os
import resource
import sys
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, '.')  # So that config files can import configs.default when run from the repo root.

from jaxnerf import cli  # pylint: disable=g-import-not-at-top
from jaxnerf import datasets
from jaxnerf.datasets import batching
from jaxnerf import models
from jaxnerf import parallel
from jaxnerf.ops import camera
from jaxnerf.outputs import chunked
from jaxnerf.outputs import evaluation
from jaxnerf.training import checkpoints
from jaxnerf.training import config_checks
from jaxnerf.training import experiment as experiment_lib


_SYNTHETIC_CAMERAS = 64


def synthetic_rays(num_rays: int, near: float, far: float, seed: int = 0) -> camera.Rays:
  """Rays from random cameras at radius 4 through random points of the central [-1, 1]^3 box."""
  rng = np.random.default_rng(seed)
  azimuth = rng.uniform(0, 360, _SYNTHETIC_CAMERAS)  # The cameras, for any num_rays.
  elevation = rng.uniform(10, 70, _SYNTHETIC_CAMERAS)
  poses = np.stack([camera.spherical_pose(a, e, 4.0) for a, e in zip(azimuth, elevation)])
  camera_index = rng.integers(0, _SYNTHETIC_CAMERAS, num_rays)
  pose = poses[camera_index]
  target = rng.uniform(-1, 1, (num_rays, 3))
  direction = target - pose[:, :, 3]
  direction /= -np.sum(direction * pose[:, :, 2], axis=-1, keepdims=True)  # Unit length along the view axis.
  viewdirs = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
  ones = np.ones((num_rays, 1), np.float32)
  return camera.Rays(pose[:, :, 3].astype(np.float32), direction.astype(np.float32),
                     viewdirs.astype(np.float32), near * ones, far * ones, 1e-3 * ones,
                     camera_index.astype(np.int32)[:, None])


def _median_seconds(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _field_samples_per_ray(model_config):
  """Field evaluations per ray, over all levels (None for marching, which depends on what it skips)."""
  if model_config.name == 'nerf':
    coarse, fine = model_config.num_coarse_samples, model_config.num_fine_samples
    return coarse + (coarse + fine if fine else 0)
  if model_config.name == 'mipnerf':
    return model_config.mipnerf.num_samples * model_config.mipnerf.num_levels
  if model_config.name == 'proposal':
    return sum(model_config.proposal.num_proposal_samples) + model_config.proposal.num_nerf_samples
  return None


def _measure_trained(workdir: str):
  """Training and rendering rays/s of the trained model in `workdir`, on its own scene."""
  config = checkpoints.load_config(workdir)
  if _STEPS_PER_ROUND.value >= 0:  # Rendering settings leave the trained state as it is.
    config.model.occupancy_grid.eval_steps_per_round = _STEPS_PER_ROUND.value
  config, experiment, state = experiment_lib.restore_model(workdir, config)
  batch_size = config.train.batch_size
  train_split, val_split = datasets.load_split(config, 'train'), datasets.load_split(config, 'val')
  batcher = batching.RayBatcher(train_split, batch_size, config.batching.mode, 0, 1.0, config.seed)
  first = int(jax.device_get(state.step))
  batches = [parallel.shard_local_batch(batcher.batch(first + i), experiment.steps.batch_sharding)
             for i in range(_STEPS.value)]
  cameras = parallel.shard_replicated_data(train_split.camera_table().as_arrays(), experiment.steps.replicated)
  trained = state.variables  # Rendered below: the checkpoint's, not what the timed steps make of it.
  state = jax.tree.map(jnp.copy, state)  # The train step donates the state it is given.
  start = time.perf_counter()
  state, metrics = experiment.steps.train_step(state, batches[0], cameras)
  jax.block_until_ready(metrics)
  train_compile_seconds = time.perf_counter() - start
  complete = []

  def train():
    nonlocal state
    for batch in batches:
      state, step_metrics = experiment.steps.train_step(state, batch, cameras)
      complete.append(step_metrics.get('complete_rays', 1.0))
    jax.block_until_ready(step_metrics)

  train_seconds = _median_seconds(train, _REPEATS.value) / _STEPS.value
  views = range(min(_VIEWS.value, val_split.num_images))
  render = lambda: evaluation.render_views(experiment.steps, trained, val_split, views,
                                           config.eval.chunk_size, description='timing renders')
  start = time.perf_counter()
  render()
  render_compile_seconds = time.perf_counter() - start
  render_seconds = _median_seconds(render, _REPEATS.value)
  train_rays_per_second = batch_size / train_seconds
  render_rays_per_second = len(views) * val_split.height * val_split.width / render_seconds
  return config, {
      'workdir': workdir, 'step': first, 'batch_size': batch_size,
      'train_rays_per_second': train_rays_per_second,
      # Rays that reached the loss: packed models leave out those whose samples did not fit.
      'train_complete_rays': float(np.mean(jax.device_get(complete))),
      'train_step_seconds': train_seconds,
      'render_views': len(views), 'render_size': [val_split.width, val_split.height],
      'render_rays_per_second': render_rays_per_second,
      'render_seconds_per_view': render_seconds / len(views),
      'render_to_train': render_rays_per_second / train_rays_per_second,
      'train_compile_seconds': train_compile_seconds,
      'render_compile_seconds': render_compile_seconds,
  }


def main(argv):
  del argv
  cli.initialize()
  if _WORKDIR.value:
    with cli.friendly_errors():
      config, figures = _measure_trained(_WORKDIR.value)
    print(json.dumps({'backend': jax.default_backend(), 'devices': jax.device_count(),
                      'device_kind': jax.devices()[0].device_kind, 'dtype': config.model.dtype, **figures,
                      'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
    return
  config = _CONFIG.value
  with cli.friendly_errors():
    config_checks.check_training(config)
  # Per-image components (appearance codes) get a table for the synthetic rays' 64 cameras.
  config = models.with_training_split(config, types.SimpleNamespace(num_images=_SYNTHETIC_CAMERAS))
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state(experiment, config.seed)
  batch_size = config.train.batch_size
  batches = []
  for i in range(_STEPS.value):
    rays = synthetic_rays(batch_size, config.near, config.far, seed=i)
    rgb = np.random.default_rng(i).random((batch_size, 3), dtype=np.float32)
    alpha = np.ones((batch_size, 1), np.float32)
    batches.append(parallel.shard_local_batch({'rays': rays, 'rgb': rgb, 'alpha': alpha},
                                              experiment.steps.batch_sharding))

  start = time.perf_counter()
  train_step = experiment.steps.train_step.lower(state, batches[0], None).compile()  # Batches of rays.
  train_compile_seconds = time.perf_counter() - start
  with _PeakMemory() as step_memory:
    state, metrics = train_step(state, batches[0], None)
    jax.block_until_ready(metrics)

  def train():
    nonlocal state
    for batch in batches:
      state, step_metrics = train_step(state, batch, None)
    jax.block_until_ready(step_metrics)

  train_seconds = _median_seconds(train, _REPEATS.value) / _STEPS.value
  num_render_rays = _RENDER_CHUNKS.value * config.eval.chunk_size
  render_rays = synthetic_rays(num_render_rays, config.near, config.far, seed=_STEPS.value)
  render = lambda: chunked.render_image(experiment.steps, state.variables, render_rays,
                                                config.eval.chunk_size)
  start = time.perf_counter()
  render()
  render_compile_seconds = time.perf_counter() - start
  render_seconds = _median_seconds(render, _REPEATS.value)
  print(json.dumps({
      'config': config_flags.get_config_filename(flags.FLAGS['config']),
      'backend': jax.default_backend(), 'devices': jax.device_count(),
      'device_kind': jax.devices()[0].device_kind, 'dtype': config.model.dtype,
      'batch_size': batch_size,
      'field_samples_per_ray': _field_samples_per_ray(config.model),
      'train_rays_per_second': batch_size / train_seconds,
      'train_step_seconds': train_seconds,
      'render_rays_per_second': num_render_rays / render_seconds,
      'train_compile_seconds': train_compile_seconds,
      'render_compile_seconds': render_compile_seconds,
      'remat': config.model.remat,
      **_step_flops(train_step, train_seconds),
      **step_memory.figures,
      'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
  }))


def _step_flops(compiled, step_seconds: float) -> dict:
  """The floating-point operations of one training step on one device, as XLA's cost analysis counts them
  in the program it compiled for each device, and the rate achieved per device: what
  benchmarks/gpu_check.py divides by a device's peak. Empty where the backend does not count them."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  if not cost or not cost.get('flops'):
    return {}
  return {'train_step_flops_per_device': float(cost['flops']),
          'train_tflops_per_second_per_device': cost['flops'] / step_seconds / 1e12}


def _vm_kib(field: str) -> int:
  with open('/proc/self/status') as status:
    return int(next(line for line in status if line.startswith(field + ':')).split()[1])


class _PeakMemory:
  """The peak memory of what runs inside it, measured: on GPUs and TPUs the first device's allocator peak
  ('train_step_peak_device_gib', since the process started: the step's buffers dominate it); on the CPU
  the process's resident memory above its level on entry ('train_step_peak_host_gib': Linux's high-water
  mark, reset on entry through /proc/self/clear_refs). XLA's static buffer assignment (memory_analysis)
  is not used: on the CPU it did not see gradient checkpointing's saving that the resident memory shows."""

  def __enter__(self):
    self.figures, self._stats = {}, jax.local_devices()[0].memory_stats()
    if self._stats is None and os.path.exists('/proc/self/clear_refs'):
      self._base = _vm_kib('VmRSS')
      with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')
    return self

  def __exit__(self, *exc):
    if self._stats is not None:
      self.figures['train_step_peak_device_gib'] = jax.local_devices()[0].memory_stats().get(
          'peak_bytes_in_use', 0) / 2**30
    elif os.path.exists('/proc/self/clear_refs'):
      self.figures['train_step_peak_host_gib'] = (_vm_kib('VmHWM') - self._base) / 2**20


if __name__ == '__main__':
  with cli.flag_errors():
    _CONFIG = config_flags.DEFINE_config_file('config', 'configs/chair.py', 'Configuration file.',
                                              lock_config=True)
  _STEPS = flags.DEFINE_integer('steps', 10, 'Timed training steps per repeat.', lower_bound=1)
  _REPEATS = flags.DEFINE_integer('repeats', 3, 'Repeats; the median step and render times are reported.',
                                  lower_bound=1)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Measure the trained model of this workdir on its scene '
                                  'instead of an untrained --config.')
  _VIEWS = flags.DEFINE_integer('views', 100, 'With --workdir: val views rendered per repeat (at most all).',
                                lower_bound=1)
  _STEPS_PER_ROUND = flags.DEFINE_integer(
      'steps_per_round', -1, 'With --workdir: render with this model.occupancy_grid.eval_steps_per_round '
      '(0: one call per ray, the renderer before rounds) instead of the workdir\'s.', lower_bound=-1)
  _RENDER_CHUNKS = flags.DEFINE_integer('render_chunks', 2, 'Chunks of config.eval.chunk_size rays rendered '
                                        'for timing (whole chunks, so that no padding is counted as work).',
                                        lower_bound=1)
  cli.run(main, _CONFIG)
