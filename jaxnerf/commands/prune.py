"""Pruning a trained model (what prune.py runs): restore, prune the chosen levels' MLPs by magnitude, score,
fine-tune in a new workdir with the pruned weights held at zero, and score again.

The fine-tuning workdir starts from a checkpoint of the pruned state (parameters and optimiser state, at
the trained step) and trains `finetune_steps` more steps where the run's learning-rate schedule left off
(at its final rate, for a run that finished its schedule). Its config is the trained one with
optim.pruned_levels set. Running prune.py again with the same output workdir resumes an interrupted
fine-tune instead of pruning again; the figures measured before fine-tuning are kept in <out>/pruning.json.
"""

import json
import pathlib
from typing import Dict, Optional

import jax

from jaxnerf import console
from jaxnerf import datasets
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import evaluation
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import pruning
from jaxnerf.training import trainer
from jaxnerf import workdirs

REPORT_FILE = 'pruning.json'


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


def _prune(workdir, out: pathlib.Path, levels: str, sparsity: float, eval_images: Optional[int]) -> Dict:
  """Prunes the newest checkpoint of `workdir` into a checkpoint of `out`; returns the figures so far."""
  config, experiment, state = experiment_lib.restore_model(workdir)
  fields = experiment_lib.pruned_fields(experiment.model, levels)
  step = int(jax.device_get(state.step))
  val_split = datasets.load_split(config, 'val')
  num_images = val_split.num_images if eval_images is None or eval_images < 0 else min(eval_images,
                                                                                        val_split.num_images)
  psnr_before = _val_psnr(experiment, state.variables, val_split, num_images, config.eval.chunk_size,
                          'scoring the trained model')
  params = jax.device_put(pruning.prune_by_magnitude(jax.device_get(state.params), fields, sparsity),
                          experiment.steps.replicated)
  state = state.replace(params=params)
  psnr_pruned = _val_psnr(experiment, state.variables, val_split, num_images, config.eval.chunk_size,
                          'scoring the pruned model')
  finetune_config = _finetune_config(config, levels, num_images)
  checkpoints.save_config(out, finetune_config)
  manager = checkpoints.make_manager(out, finetune_config.train.keep_checkpoints)
  try:
    checkpoints.save(manager, state, 0.0)
    manager.wait_until_finished()
  finally:
    manager.close()
  zeros, total = pruning.kernel_sparsity(jax.device_get(params), fields)
  report = {'source_workdir': str(workdir), 'levels': levels, 'fields': list(fields), 'trained_step': step,
            'target_sparsity': sparsity, 'pruned_weights': zeros, 'kernel_weights': total,
            'val_images': num_images, 'psnr_before': psnr_before, 'psnr_pruned': psnr_pruned}
  workdirs.write_text_atomically(out / REPORT_FILE, json.dumps(report, indent=2))
  return report


def prune_workdir(workdir, levels: str, sparsity: float = 0.5, finetune_steps: int = 500, out=None,
                  eval_images: Optional[int] = None) -> Dict:
  """Prunes the MLP kernels of `levels` ('coarse', 'fine' or 'both') of the model trained in `workdir` to
  `sparsity` per layer, fine-tunes it `finetune_steps` steps in `out` (default: <workdir>-pruned-<levels>-
  <percent>), and scores the first `eval_images` val views (default: all) before pruning, after pruning
  and after fine-tuning.

  Returns:
    {'levels', 'fields', 'target_sparsity', 'sparsity' (after fine-tuning), 'pruned_weights',
    'kernel_weights', 'psnr_before', 'psnr_pruned', 'psnr_after', 'finetune_steps', 'out', ...}, also
    written to <out>/pruning.json.
  """
  if not 0 <= sparsity < 1:
    raise ConfigError(f'--sparsity={sparsity}: expected a fraction in [0, 1).')
  if finetune_steps < 0:
    raise ConfigError(f'--finetune_steps={finetune_steps}: expected a number of steps >= 0.')
  checkpoints.load_config(workdir)  # A wrong --workdir is refused before --out is made.
  out = pathlib.Path(out) if out else default_out(workdir, levels, sparsity)
  with workdirs.owned(out, '--out'):  # The fine-tune's workdir: one prune.py at a time.
    if (out / REPORT_FILE).is_file():  # An interrupted fine-tune: resume it.
      report = json.loads((out / REPORT_FILE).read_text())
      if (report['levels'], report['target_sparsity']) != (levels, sparsity):
        raise ConfigError(f'{out} holds a model pruned with --prune={report["levels"]} '
                          f'--sparsity={report["target_sparsity"]}: use another --out.')
      console.message(f'Resuming the fine-tuning in {out}.')
    else:
      report = _prune(workdir, out, levels, sparsity, eval_images)
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
