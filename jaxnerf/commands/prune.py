"""Pruning a trained model (what prune.py runs): restore, prune the chosen levels' MLPs by magnitude, score,
fine-tune in a new workdir with the pruned weights held at zero, and score again.

The fine-tuning workdir starts from a checkpoint of the pruned state (parameters and optimiser state, at
the trained step) and trains `finetune_steps` more steps where the run's learning-rate schedule left off
(at its final rate, for a run that finished its schedule). Its config is the trained one with
optim.pruned_levels set. Running prune.py again with the same output workdir and flags resumes an
interrupted fine-tune instead of pruning again (saying what it resumes); the figures measured before
fine-tuning are kept in <out>/pruning.json. The source workdir is only read, so it may still be training; an
--out that holds another run, or a prune of another source or with other flags, is refused.
"""

import json
import pathlib
from typing import Dict, Optional

import jax

from jaxnerf import console
from jaxnerf import datasets
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.outputs import evaluation
from jaxnerf.training import camera_alignment
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import interrupts
from jaxnerf.training import pruning
from jaxnerf.training import trainer
from jaxnerf import workdirs

REPORT_FILE = 'pruning.json'
_FLAG_NAMES = {'source_workdir': '--workdir', 'levels': '--prune', 'target_sparsity': '--sparsity',
               'eval_images': '--eval_images'}  # prune.py's flags, by the report's keys.


def default_out(workdir, levels: str, sparsity: float) -> pathlib.Path:
  workdir = pathlib.Path(workdir)
  return workdir.with_name(f'{workdir.name}-pruned-{levels}-{round(100 * sparsity)}')


def _val_psnr(experiment, variables, val_split, num_images: int, chunk_size: int, description: str) -> float:
  per_image, _ = evaluation.evaluate(experiment.steps, variables, val_split, range(num_images), chunk_size,
                                     description=description)
  return evaluation.mean_metrics(per_image)['psnr']


def _finetune_config(config, levels: str, num_images: int):
  """The trained config with the pruned levels, no time budget and the scoring of `num_images` val views
  (prune_workdir sets the number of steps)."""
  config = config.copy_and_resolve_references()
  config.unlock()
  config.optim.pruned_levels = levels
  config.train.max_seconds = 0.0
  config.eval.update(final_num_images=num_images, every_steps=0, at_train_seconds=(), video_frames=0)
  config.lock()
  return config


def _prune(workdir, out: pathlib.Path, flags: Dict) -> Dict:
  """Prunes the newest intact checkpoint of `workdir` into a checkpoint of `out`; returns the figures so far.

  The report (with `flags`) is written first, so that a prune.py stopped at any moment leaves a folder that
  its rerun recognises as its own (and prunes again, if no checkpoint was saved yet)."""
  levels, sparsity = flags['levels'], flags['target_sparsity']
  config, experiment, state = experiment_lib.restore_model(workdir)
  fields = experiment_lib.pruned_fields(experiment.model, levels)
  step = int(jax.device_get(state.step))
  val_split = camera_alignment.held_out_split(config, state.group_params, datasets.load_split(config, 'val'))
  eval_images = flags['eval_images']
  num_images = val_split.num_images if eval_images < 0 else min(eval_images, val_split.num_images)
  psnr_before = _val_psnr(experiment, state.variables, val_split, num_images, config.eval.chunk_size,
                          'scoring the trained model')
  params = jax.device_put(pruning.prune_by_magnitude(jax.device_get(state.params), fields, sparsity),
                          experiment.steps.replicated)
  state = state.replace(params=params)
  psnr_pruned = _val_psnr(experiment, state.variables, val_split, num_images, config.eval.chunk_size,
                          'scoring the pruned model')
  zeros, total = pruning.kernel_sparsity(jax.device_get(params), fields)
  report = {**flags, 'fields': list(fields), 'trained_step': step,
            'pruned_weights': zeros, 'kernel_weights': total, 'val_images': num_images,
            'psnr_before': psnr_before, 'psnr_pruned': psnr_pruned}
  workdirs.write_text_atomically(out / REPORT_FILE, json.dumps(report, indent=2))
  finetune_config = _finetune_config(config, levels, num_images)
  checkpoints.save_config(out, finetune_config)
  manager = checkpoints.make_manager(out, finetune_config.train.keep_checkpoints)
  try:
    with interrupts.held():  # A save cut in the middle would leave Orbax writing while the process exits.
      checkpoints.save(manager, state, 0.0)
      manager.wait_until_finished()
  finally:
    manager.close()
  return report


def _check_out(workdir, out: pathlib.Path, flags: Dict) -> Optional[Dict]:
  """The report of an earlier prune.py into `out` with the same source and `flags` (to resume), or None for a
  folder that holds nothing yet. Called before taking `out`'s lock (a refusal touches nothing there, not even
  the lock's record) and again holding it.

  Raises:
    WorkdirError: `out` is the source workdir or inside it, holds another run, or holds a prune of another
      source or with other flags (naming them).
  """
  source, target = pathlib.Path(workdir).resolve(), out.resolve()
  if target == source or source in target.parents:
    raise WorkdirError(f'--out={out} is inside --workdir={workdir}: the pruned model is trained in a workdir '
                       f'of its own (default {default_out(workdir, flags["levels"], flags["target_sparsity"])}).')
  report_path = out / REPORT_FILE
  if not out.is_dir():
    return None
  if not report_path.is_file():
    held = sorted(p.name for p in out.iterdir() if p.name != workdirs.LOCK_FILE)
    if held:
      raise WorkdirError(f'--out={out} holds another run or other files ({", ".join(held[:4])}): prune.py '
                         'writes a new workdir, or resumes one it wrote; choose another --out.')
    return None
  try:
    report = json.loads(report_path.read_text())
  except json.JSONDecodeError as e:
    raise WorkdirError(f'{report_path} is not valid JSON ({e}): it is not a report prune.py wrote; choose '
                       'another --out.') from None
  earlier = {**flags, **{k: report[k] for k in flags if k in report}}
  earlier['source_workdir'] = str(pathlib.Path(earlier['source_workdir']).resolve())
  differing = [k for k in flags if earlier[k] != flags[k]]
  if differing:
    said = lambda values: ' '.join(f'{_FLAG_NAMES[k]}={values[k]}' for k in differing)
    raise WorkdirError(f'--out={out} holds a prune with {said(earlier)}, where this command asks for '
                       f'{said(flags)}: choose another --out (or rerun with the same flags to resume it).')
  return report


def _newest_step(workdir) -> Optional[int]:
  return max(checkpoints.kept_steps(workdir), default=None)


def _say_what_is_resumed(workdir, out, report: Dict, target_step: int):
  console.message(f'Resuming in {out}: step {report["trained_step"]} of {workdir} pruned with --prune='
                  f'{report["levels"]} --sparsity={report["target_sparsity"]} (val PSNR {report["psnr_before"]:.2f} '
                  f'before, {report["psnr_pruned"]:.2f} pruned), fine-tuned to step {target_step}.')
  newest = _newest_step(workdir)
  if newest is not None and newest > report['trained_step']:
    console.message(f'note: {workdir} has trained on to step {newest} since; to prune that, use another --out.')


def prune_workdir(workdir, levels: str, sparsity: float = 0.5, finetune_steps: int = 500, out=None,
                  eval_images: Optional[int] = None) -> Dict:
  """Prunes the MLP kernels of `levels` ('coarse', 'fine' or 'both') of the model trained in `workdir` to
  `sparsity` per layer, fine-tunes it `finetune_steps` steps in `out` (default: <workdir>-pruned-<levels>-
  <percent>), and scores the first `eval_images` val views (default: all) before pruning, after pruning
  and after fine-tuning.

  `workdir` is only read (it may be training: its newest intact checkpoint is pruned, and nothing in it is
  moved). `out` is a new folder, or one that an interrupted prune.py of the same source and flags left,
  which is resumed (a finished one is reported again); any other is refused.

  Returns:
    {'levels', 'fields', 'target_sparsity', 'sparsity' (after fine-tuning), 'pruned_weights',
    'kernel_weights', 'psnr_before', 'psnr_pruned', 'psnr_after', 'finetune_steps', 'out', ...}, also
    written to <out>/pruning.json.
  """
  if not 0 <= sparsity < 1:
    raise ConfigError(f'--sparsity={sparsity}: expected a fraction in [0, 1).')
  if finetune_steps < 0:
    raise ConfigError(f'--finetune_steps={finetune_steps}: expected a number of steps >= 0.')
  if eval_images is not None and (eval_images == 0 or eval_images < -1):
    raise ConfigError(f'--eval_images={eval_images}: expected a positive number of val views, or -1 for all.')
  checkpoints.load_config(workdir)  # A wrong --workdir is refused before --out is made.
  out = pathlib.Path(out) if out else default_out(workdir, levels, sparsity)
  flags = {'source_workdir': str(pathlib.Path(workdir).resolve()), 'levels': levels, 'target_sparsity': sparsity,
           'eval_images': -1 if eval_images is None else eval_images}
  _check_out(workdir, out, flags)
  with workdirs.owned(out, '--out'):  # The fine-tune's workdir: one prune.py at a time.
    report = _check_out(workdir, out, flags)
    if report is not None and checkpoints.kept_steps(out):  # Interrupted (or finished) earlier: resume it.
      target_step = report['trained_step'] + finetune_steps
      if _newest_step(out) > target_step:
        raise WorkdirError(f'{out} is fine-tuned to step {_newest_step(out)} already, beyond the step '
                           f'{target_step} that --finetune_steps={finetune_steps} asks for: use more steps, or '
                           'another --out.')
      if report.get('step') == target_step and 'psnr_after' in report:
        console.message(f'{out} holds this prune, fine-tuned to step {target_step} already: its report follows.')
        return report
      _say_what_is_resumed(workdir, out, report, target_step)
    else:
      holder = workdirs.in_use_by(workdir)
      if holder:
        console.message(f'note: {workdir} is in use by {holder}: pruning its newest intact checkpoint so far.')
      report = _prune(workdir, out, flags)
    finetune_config = checkpoints.load_config(out)
    finetune_config.unlock()
    finetune_config.train.num_steps = report['trained_step'] + finetune_steps
    finetune_config.lock()
    result = trainer.run_training(finetune_config, out)
    zeros, total = pruning.kernel_sparsity(jax.device_get(result.state.params), report['fields'])
    report.update(sparsity=zeros / max(total, 1), pruned_weights=zeros, finetune_steps=finetune_steps,
                  psnr_after=result.summary.get('val_psnr'), step=result.summary['step'], out=str(out))
    workdirs.write_text_atomically(out / REPORT_FILE, json.dumps(report, indent=2))
    return report
