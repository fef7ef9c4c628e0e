"""The training loop: `train_and_evaluate(config, workdir)`.

One loop serves every model: it draws ray batches, runs the compiled step, logs, validates, checkpoints and
resumes. Re-running with the same workdir continues from its newest intact checkpoint, with the same
batches, random draws and learning rates as a run that never stopped.

Time: training time excludes compilation, validation and checkpointing, and adds up over every run of a
workdir (checkpoints keep it). With config.train.max_seconds > 0 it is a budget: training stops when it is
spent, and the learning-rate schedule is laid over the steps it is expected to allow (pacing.TimeBudget).
"""

import json
import pathlib
import time
from typing import Dict, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxnerf import console
from jaxnerf import datasets
from jaxnerf.datasets import batching
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.errors import NonFiniteLossError
from jaxnerf import models
from jaxnerf.outputs import evaluation
from jaxnerf.outputs import reporting
from jaxnerf.outputs import viewer as viewer_lib
from jaxnerf import parallel
from jaxnerf.training import camera_alignment
from jaxnerf.training import checkpoints
from jaxnerf.training import config_checks
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import guarded_saves
from jaxnerf.training import interrupts
from jaxnerf.training import pacing
from jaxnerf.training import parameter_groups
from jaxnerf.training.train_state import TrainState
from jaxnerf import workdirs

VIDEOS_DIR = 'videos'  # In the workdir: config.eval.video_every's videos.


def _mean_metrics(fetched_history):
  """Means of the steps' metrics over the steps that were applied (a skipped float16 overflow's loss is
  inf or NaN), and the number of skipped steps."""
  applied = [m for m in fetched_history if m['finite']] or fetched_history
  means = {k: float(np.mean([m[k] for m in applied])) for k in applied[0] if k not in ('finite', 'failed')}
  return {**means, 'skipped_steps': len(fetched_history) - sum(bool(m['finite']) for m in fetched_history)}


def _replicated_int(value: int, sharding):
  return parallel.shard_replicated_data(np.asarray(value, np.int32), sharding)


def _validate(experiment, state, train_split, val_split, config, writer, step, progress, train_seconds):
  frame = camera_alignment.RefinedFrame(config, state.group_params, train_split)
  val_split = frame.held_out(val_split)
  indices = range(min(config.eval.num_images, val_split.num_images))
  start = time.perf_counter()
  per_image, renderings = evaluation.evaluate(experiment.steps, state.variables, val_split, indices,
                                              config.eval.chunk_size, description=f'validating step {step}',
                                              lpips_nets=config.eval.lpips)
  mean = evaluation.mean_metrics(per_image)
  writer.write_scalars(step, 'val', {**mean, 'train_seconds': train_seconds, 'num_images': len(indices),
                                     'eval_seconds': time.perf_counter() - start,
                                     **frame.pose_errors(config.scene_box)})
  for i, rendering in enumerate(renderings[:3]):
    pictures = evaluation.visualize(rendering, val_split, experiment.background)
    writer.write_images(step, 'val', {f'{kind}_{i}': picture for kind, picture in pictures.items()})
  progress.write(f"step {step}: val PSNR {mean['psnr']:.2f} dB, SSIM {mean['ssim']:.4f}")
  return mean


def _path_video(experiment, state, train_split, config, out_dir, step: Optional[int] = None):
  """The camera path config.eval.path of config.eval.video_frames frames, rendered (by every process) and
  written by process 0 as out_dir/<path>.gif and <path>_<picture>.gif of config.eval.video_pictures
  (<path>_<step>... when `step` is given).

  Returns:
    (the path's name, the colour GIF or None on other processes, [width, height] of the frames)."""
  train_split = camera_alignment.RefinedFrame(config, state.group_params, train_split).training()
  name, poses = evaluation.camera_path(train_split, config.eval.path, config.eval.video_frames)
  frames = evaluation.render_path(experiment.steps, state.variables, train_split, poses, config.eval.chunk_size,
                                  experiment.background, config.eval.video_min_size,
                                  f'rendering the {name}' + ('' if step is None else f' at step {step}'))
  gif = None
  if jax.process_index() == 0:
    gif = evaluation.write_video(out_dir, name if step is None else f'{name}_{step}', frames,
                                 config.eval.video_fps, formats=('gif',), pictures_wanted=config.eval.video_pictures)[0]
  return name, gif, list(frames[0]['rgb'].shape[1::-1])


def _write_progress_video(experiment, state, train_split, config, writer, video_dir, step, progress):
  """`_path_video` at this step in video_dir, and the colour one to TensorBoard/W&B as 'video/<path>'."""
  start = time.perf_counter()
  name, gif, _ = _path_video(experiment, state, train_split, config, video_dir, step)
  if gif is not None:
    writer.write_video(step, 'video', name, gif, config.eval.video_fps)
    progress.write(f'step {step}: wrote {gif} ({time.perf_counter() - start:.1f} s)')


def _open_viewer(config, experiment, train_split, workdir):
  """The live viewer of config.train.viewer_port (None where 0), on this process."""
  if not config.train.viewer_port:
    return None
  viewer = viewer_lib.Viewer(experiment.steps, train_split, experiment.background, config.eval.chunk_size,
                             host=config.train.viewer_host, port=config.train.viewer_port,
                             out_dir=workdir / 'render' / 'viewer',
                             appearances=bool(models.conditioning.enabled(config.model)),
                             video_pictures=config.eval.video_pictures)
  console.message(f'Viewer at {viewer.url}: it shows the newest parameters while training goes on.')
  return viewer


def _with_cameras(compiled_step, cameras):
  """The compiled train step with the training cameras bound: (state, batch) -> (state, metrics)."""
  return lambda state, batch: compiled_step(state, batch, cameras)


def _train(experiment, state, config, train_split, val_split, manager, writer, budget, workdir, viewer=None,
           best_manager=None):
  """Runs the steps from state.step to the end of training; returns (state, summary entries). With
  `best_manager`, each validation that beats the best so far saves its state there."""
  num_steps = config.train.num_steps
  step = start_step = int(jax.device_get(state.step))
  summary = {'compile_seconds': 0.0}
  if step >= num_steps or budget.out_of_time():
    return state, summary
  replicated = experiment.steps.replicated
  schedule_steps = int(jax.device_get(state.schedule_steps))
  if schedule_steps != (new := budget.schedule_steps(step, schedule_steps)):
    schedule_steps, state = new, state.replace(schedule_steps=_replicated_int(new, replicated))
  progress = console.ProgressBar(start_step, schedule_steps, config.train.batch_size)
  stall_watch = pacing.StallWatch(config.train.stall_warning_steps, config.optim.lr_init, progress)
  batcher = batching.RayBatcher(train_split, config.train.batch_size, config.batching.mode,
                                config.batching.precrop_steps, config.batching.precrop_fraction, config.seed,
                                jax.process_index(), jax.process_count())
  prefetcher = pacing.BatchPrefetcher(batcher, start_step, num_steps, experiment.steps.batch_sharding)
  # The training cameras, on every device: the step makes each batch's rays from its pixel indices.
  cameras = parallel.shard_replicated_data(train_split.camera_table().as_arrays(), replicated)
  history, last_saved, train_step, batch = [], start_step, None, None  # (A stop may come before the compile.)
  eval_times = [t for t in sorted(config.eval.at_train_seconds) if t >= budget.seconds]  # Still to come.
  try:
    # Compiled ahead of the loop, so that training time (max_seconds, at_train_seconds) excludes it.
    compile_start = time.perf_counter()
    batch = prefetcher.next()
    train_step = _with_cameras(experiment.steps.train_step.lower(state, batch, cameras).compile(), cameras)
    # A first agreement compiles its collective, and waits for every process to finish compiling.
    parallel.agree(np.array([False, False]))
    summary['compile_seconds'] = time.perf_counter() - compile_start
    progress.start(step, budget.seconds)
    budget.start()
    while step < num_steps:
      if viewer is not None and viewer.wants_parameters():
        # A copy: the next step donates the state's buffers.
        viewer.publish(jax.tree.map(jnp.copy, state.variables), step)
      with interrupts.held():  # Not between donating the state and returning the new one.
        state, step_metrics = train_step(state, batch)
        step += 1
      batch = prefetcher.next() if step < num_steps else batch  # (The last one: for `_save_checked`.)
      progress.advance()
      history.append(step_metrics)
      # Checking the previous step keeps one step in flight while we wait.
      if len(history) > 1 and bool(history[-2]['failed']):
        raise guarded_saves.NonFiniteStep(step - 1)
      out_of_time, eval_due = parallel.agree(
          np.array([budget.out_of_time(), bool(eval_times) and budget.seconds >= eval_times[0]]))
      at_log = step % config.train.log_every == 0 or step == num_steps or out_of_time
      at_checkpoint = step % config.train.checkpoint_every == 0
      at_eval = (config.eval.every_steps > 0 and step % config.eval.every_steps == 0) or eval_due
      at_video = config.eval.video_every > 0 and step % config.eval.video_every == 0
      if not (at_log or at_checkpoint or at_eval or at_video):
        continue
      if bool(history[-1]['failed']):
        raise guarded_saves.NonFiniteStep(step)
      budget.pause()
      if at_log:
        fetched = jax.device_get(history)
        scalars = _mean_metrics(fetched)
        summary['skipped_steps'] = summary.get('skipped_steps', 0) + scalars['skipped_steps']
        stall_watch.observe(step - len(fetched), [float(m['grad_norm']) for m in fetched])
        new = int(parallel.agree(np.array(budget.schedule_steps(step, schedule_steps))))
        if new != schedule_steps:
          schedule_steps, state = new, state.replace(schedule_steps=_replicated_int(new, replicated))
          progress.set_total(schedule_steps)
        rays_per_second = progress.update(step, scalars, budget.seconds,
                                          budget.seconds_left(step, schedule_steps))
        if rays_per_second is not None:
          scalars['rays_per_second'] = rays_per_second
        writer.write_scalars(step, 'train', {**scalars, 'train_seconds': budget.seconds,
                                             'schedule_steps': schedule_steps})
        history = []
      if at_checkpoint:
        with interrupts.held():
          guarded_saves.save_checked(manager, state, budget.seconds, train_step, batch)
          last_saved = step
      if at_eval:
        mean = _validate(experiment, state, train_split, val_split, config, writer, step, progress, budget.seconds)
        if best_manager is not None and checkpoints.save_if_best(best_manager, state, budget.seconds, mean['psnr']):
          progress.write(f'step {step}: the best validation so far; kept in {checkpoints.BEST_DIR}/')
        eval_times = [t for t in eval_times if t > budget.seconds]
      if at_video:
        _write_progress_video(experiment, state, train_split, config, writer, workdir / VIDEOS_DIR, step, progress)
      if out_of_time:
        progress.write(f'Stopping at step {step}: config.train.max_seconds={config.train.max_seconds} reached.')
        break
      budget.start()
    budget.pause()
    if step > last_saved:
      with interrupts.held():
        guarded_saves.save_checked(manager, state, budget.seconds, train_step, batch)
        last_saved = step
  except guarded_saves.NonFiniteStep as failure:
    prefetcher.close()
    progress.close()  # The error's line starts below the bar, not on it.
    manager.wait_until_finished()
    raise NonFiniteLossError(guarded_saves.failure_message(failure, state, manager)) from None
  except KeyboardInterrupt:
    interrupts.handled()
    with interrupts.held(raise_after=False):  # A second Ctrl-C or SIGTERM does not cut the save short.
      prefetcher.close()
      guarded_saves.save_interrupted(manager, state, budget, step, last_saved, train_step, batch, progress)
    raise
  prefetcher.close()
  progress.close()
  if stall_watch.warning:
    summary['warnings'] = [stall_watch.warning]
  return state, summary


def _finish(experiment, state, train_split, val_split, config, workdir, writer, step, summary):
  """Final evaluation and camera-path video (config.eval.path), written to workdir/final/, as render.py
  writes them."""
  out_dir = workdir / 'final'
  frame = camera_alignment.RefinedFrame(config, state.group_params, train_split)
  val_split = frame.held_out(val_split)
  summary.update(frame.pose_errors(config.scene_box))
  num = val_split.num_images if config.eval.final_num_images < 0 else min(config.eval.final_num_images,
                                                                           val_split.num_images)
  if num > 0:
    start = time.perf_counter()
    scorers = models.conditioning.held_out_scorers(experiment.model, config.model, experiment.background)
    per_image, renderings = evaluation.evaluate(experiment.steps, state.variables, val_split, range(num),
                                                config.eval.chunk_size, description='final evaluation',
                                                lpips_nets=config.eval.lpips, scorers=scorers)
    result = evaluation.split_summary(per_image, {'step': step, 'split': 'val'})
    if jax.process_index() == 0:
      evaluation.write_split(out_dir / 'val', val_split, result, renderings, experiment.background)
    writer.write_scalars(step, 'final_val', result['mean'])
    summary.update({f'val_{name}': value for name, value in result['mean'].items()}, val_images=num,
                   eval_seconds=time.perf_counter() - start)
    if frame.refined is not None:
      summary.update(_registered_scores(experiment, state, val_split, config, writer, step, num))
  if config.eval.video_frames > 0:
    start = time.perf_counter()
    _, gif, summary['video_size'] = _path_video(experiment, state, train_split, config, out_dir)
    if gif is not None:
      summary['video'] = str(gif)
    summary['video_seconds'] = time.perf_counter() - start


def _registered_scores(experiment, state, val_split, config, writer, step, num) -> Dict[str, float]:
  """The final evaluation again after fitting each view's pose to its pixels (camera_alignment.register_views,
  BARF's protocol for a run that refined its cameras): {'val_registered_psnr', ..., 'val_pose_fit_rotation_deg',
  'val_pose_fit_translation', 'val_pose_fit_failed_views', 'registration_seconds'}; {} where
  config.eval.pose_fit_steps is 0."""
  start = time.perf_counter()
  scores = camera_alignment.registered_scores(config, experiment, state.variables, val_split, range(num),
                                              config.eval.chunk_size, config.eval.lpips)
  if not scores:
    return {}
  writer.write_scalars(step, 'final_val_registered', scores)
  return {**{(f'val_{name}' if name.startswith('pose_fit_') else f'val_registered_{name}'): value
             for name, value in scores.items()},
          'registration_seconds': time.perf_counter() - start}


def _check_resume_step(workdir: pathlib.Path, resume_step: Union[int, str, None]):
  """Refuses a `resume_step` whose checkpoint the workdir does not keep (before the data loads)."""
  if resume_step is None:
    return
  if resume_step != checkpoints.BEST:
    try:
      checkpoints.check_kept(workdir / checkpoints.CHECKPOINTS_DIR, resume_step, checkpoints.kept_steps(workdir))
    except CheckpointError as e:
      raise CheckpointError(f'--resume_step={resume_step}: {e}') from None
  elif not checkpoints.kept_steps(workdir, checkpoints.BEST_DIR):
    raise CheckpointError(f'--resume_step=best: {workdir} keeps no best checkpoint (train with '
                          'config.train.keep_best=True and validation, config.eval.every_steps > 0, to keep one).')


def _restore(experiment, config, manager, workdir, resume_step) -> Optional[checkpoints.Restored]:
  """The checkpoint of `resume_step` (checkpoints.BEST: the best one), or else the newest intact one (None
  where there is none)."""
  abstract = lambda: experiment_lib.abstract_state(experiment, config.seed)  # Tracing takes a while.
  if resume_step == checkpoints.BEST:
    best_manager = checkpoints.make_manager(workdir, 1, checkpoints.BEST_DIR)
    try:
      return checkpoints.restore_step(best_manager, checkpoints.best_so_far(best_manager).step, abstract())
    finally:
      best_manager.close()
  if resume_step is not None:
    return checkpoints.restore_step(manager, resume_step, abstract())
  return checkpoints.restore_newest_intact(manager, abstract()) if manager.all_steps() else None


def _initial_state(experiment, config) -> TrainState:
  """A new run's state: random, or config.train.init_from's parameters."""
  if config.train.init_from:
    state = experiment_lib.init_state_from(experiment, config, config.train.init_from)
    console.message(f'Starting from the parameters of {config.train.init_from}.')
    return state
  return experiment_lib.init_state(experiment, config.seed)


def _set_aside_newer(resume_step: int, manager, workdir):
  """Resuming from `resume_step`: the newer checkpoints (and a newer best one) go to superseded_checkpoints/."""
  moved = checkpoints.set_aside_newer(manager, resume_step)
  if (workdir / checkpoints.BEST_DIR).is_dir():
    best_manager = checkpoints.make_manager(workdir, 1, checkpoints.BEST_DIR)
    try:
      moved += checkpoints.set_aside_newer(best_manager, resume_step)
    finally:
      best_manager.close()
  if moved:
    console.message(f'Moved the checkpoints newer than step {resume_step} to '
                    f'{workdir / checkpoints.SUPERSEDED_DIR}/ ({", ".join(p.name for p in moved)}): this run '
                    'goes on from that step instead.')


class TrainingResult(NamedTuple):
  state: TrainState  # The final training state (this process's view of it).
  summary: Dict  # As train_and_evaluate returns it.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir, resume_step: Union[int, str, None] = None
                       ) -> Dict:
  """Trains `config` in `workdir` (resuming from its newest intact checkpoint, or from the checkpoint of
  `resume_step`, a step or checkpoints.BEST for the best one, whose newer ones are then moved to
  superseded_checkpoints/), then evaluates and renders.

  Returns:
    A summary: {'step', 'train_seconds', 'val_psnr', 'val_ssim', 'video', ...}, also written to
    workdir/final/summary.json.
  """
  return run_training(config, workdir, resume_step).summary


def run_training(config: ml_collections.ConfigDict, workdir, resume_step: Union[int, str, None] = None
                 ) -> TrainingResult:
  """`train_and_evaluate`, returning the final training state too.

  The workdir is owned by this run while it trains (`workdirs.owned_by_run`: a second run is refused), and
  nothing is written to it before the run is known to start: its data loaded, its camera path possible, and
  its newest checkpoint restored (a failed resume leaves the workdir as it found it).
  """
  workdir = pathlib.Path(workdir)
  # Refused before the data loads and the model compiles.
  if resume_step != checkpoints.BEST and resume_step is not None and resume_step < 0:
    raise ConfigError(f'--resume_step={resume_step}: expected the step of a kept checkpoint (>= 0) or best.')
  config_checks.check_training(config)
  experiment_lib.make_model(config)
  reporting.check_wandb_available(config.train.wandb_project)
  with workdirs.owned_by_run(workdir):
    return _run_training_in_owned_workdir(config, workdir, resume_step)


def _run_training_in_owned_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                                   resume_step: Union[int, str, None]) -> TrainingResult:
  experiment_lib.check_resumable(config, workdir, before_data=True)  # Refused before the data loads...
  _check_resume_step(workdir, resume_step)
  train_split = datasets.load_split(config, 'train')
  # What the run saves, resumes and renders with.
  config = parameter_groups.with_training_split(models.with_training_split(config, train_split), train_split)
  experiment_lib.check_resumable(config, workdir)  # ...and with what the training split fixes.
  val_split = datasets.load_split(config, 'val')
  if config.eval.video_frames > 0:  # Refused now, not after all the training.
    evaluation.camera_path(train_split, config.eval.path, 2)
  if config.train.viewer_port and jax.process_count() > 1:
    raise ConfigError(f'config.train.viewer_port={config.train.viewer_port}: the viewer renders in one process; '
                      'train on one machine to watch it, or open view.py on the workdir later.')
  if config.train.viewer_port:  # Refused now, not after the checkpoint's restore and the config's save.
    viewer_lib.check_servable(config.train.viewer_host, config.train.viewer_port)
  if config.eval.video_every > 0 and config.eval.video_frames == 0:
    raise ConfigError(f'config.eval.video_every={config.eval.video_every} writes videos of '
                      'config.eval.video_frames frames, which is 0: set both, or video_every=0.')
  if train_split.ndc is not None and config.model.normals != 'none':
    raise ConfigError(f'config.model.normals={config.model.normals!r}: this scene\'s rays are in NDC '
                      '(config.capture.forward_facing), where the density\'s gradient is not a world-space '
                      "normal; use 'none', or forward_facing=False.")
  experiment = experiment_lib.build_experiment(config)

  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  try:
    restored = _restore(experiment, config, manager, workdir, resume_step)
    state = restored.state if restored else _initial_state(experiment, config)
    if resume_step is not None:
      _set_aside_newer(int(jax.device_get(state.step)), manager, workdir)
  except BaseException:
    manager.close()
    raise
  best_manager = checkpoints.make_manager(workdir, 1, checkpoints.BEST_DIR) if config.train.keep_best else None
  if jax.process_index() == 0:
    checkpoints.save_config(workdir, config)
  start_step = int(jax.device_get(state.step))
  if restored:
    console.message(f'Resuming from the checkpoint of step {start_step} in {workdir}.')
  budget = pacing.TimeBudget(config.train.max_seconds, config.train.num_steps,
                      restored.train_seconds if restored else 0.0, start_step)
  writer = reporting.MetricsWriter(workdir, start_step, wandb_project=config.train.wandb_project,
                                   config=config)
  viewer = None
  try:
    viewer = _open_viewer(config, experiment, train_split, workdir)
    state, summary = _train(experiment, state, config, train_split, val_split, manager, writer, budget,
                            workdir, viewer, best_manager)
    step = int(jax.device_get(state.step))
    summary = {'step': step, 'train_seconds': budget.seconds, **summary,
               'resumed_from': start_step if restored else None}
    _finish(experiment, state, train_split, val_split, config, workdir, writer, step, summary)
  finally:
    with interrupts.held(raise_after=False):  # Saves still being written are finished, not cut short.
      if viewer is not None:
        viewer.close()
      for each in (manager, best_manager):
        if each is not None:
          each.wait_until_finished()
          each.close()
      writer.close()
  if jax.process_index() == 0:
    (workdir / 'final').mkdir(parents=True, exist_ok=True)
    workdirs.write_text_atomically(workdir / 'final' / 'summary.json', json.dumps(summary, indent=2))
  return TrainingResult(state, summary)
