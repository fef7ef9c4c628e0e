"""Quality against training time: val PSNR, SSIM and LPIPS after fixed amounts of training, as JSON lines.

  python benchmarks/quality_vs_time.py --config=configs/lego_ngp.py:cpu \
      --config.data_dir=../shared/data/nerf_synthetic/lego

Trains the config with `train_and_evaluate` for the largest of --seconds of training time, validating
whenever the training time passes one of --seconds. Training time excludes compilation and evaluation (as
instant-ngp's figures do). Intermediate points score the first --eval_images val views; the last point
scores config.eval.final_num_images views (all by default in the *_ngp configs). Prints one JSON line per
point: training time, step, val PSNR/SSIM/LPIPS (config.eval.lpips), training rays/s (rays that reached the
loss, from the start to that point), compile time, the training cameras' errors where their true poses are
known (config.pose_noise), the final scores of held-out views registered to the model where the run refined
its cameras (val_registered_psnr, ...), and the run's peak memory (host RSS, and device memory where the
backend reports it). A --workdir must hold no run yet (by default the run writes to a temporary directory).
"""

import json
import math
import pathlib
import resource
import sys
import tempfile
from typing import List, Sequence, Union

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, '.')  # So that config files can import configs.default when run from the repo root.

from jaxnerf import cli  # pylint: disable=g-import-not-at-top
from jaxnerf import errors
from jaxnerf import metrics
from jaxnerf.outputs import reporting
from jaxnerf.training import trainer
from jaxnerf import workdirs


def parse_seconds(argument: Union[str, Sequence]) -> List[float]:
  """The training times of --seconds ('15,30,60', or a list of them), sorted; a ValueError says what is
  expected (absl reports it as `flag --seconds=...: <it>`)."""
  items = argument.split(',') if isinstance(argument, str) else list(argument)
  seconds = []
  for item in items:
    try:
      value = float(item)
    except (TypeError, ValueError):
      value = math.nan
    if not (math.isfinite(value) and value > 0):
      raise ValueError(f'{str(item).strip()!r} is not a positive number of seconds; expected positive numbers '
                       'of seconds separated by commas, e.g. --seconds=15,30,60.')
    seconds.append(value)
  return sorted(set(seconds))


class _SecondsParser(flags.ArgumentParser):
  """--seconds: positive numbers of seconds separated by commas."""

  def parse(self, argument):
    return parse_seconds(argument)

  def flag_type(self):
    return 'list of seconds'


def prepare_workdir(workdir) -> pathlib.Path:
  """Checks that the run can write in --workdir (or create it) and that it holds no run yet (its points
  would mix two runs' training); a ConfigError names --workdir."""
  workdir = workdirs.check_writable(workdir, '--workdir')
  if reporting.read_metrics(workdir):
    raise errors.ConfigError(f'--workdir={workdir} already holds a run; the benchmark needs a fresh --workdir.')
  return workdir


def _peak_memory():
  memory = {'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    memory['peak_device_gib'] = stats['peak_bytes_in_use'] / 2**30
  return memory


def _camera_errors(record) -> dict:
  """The errors of the training cameras against their true poses, where the scene knows them
  (config.pose_noise; training/camera_alignment.py), and the final scores of held-out views registered to the
  model where the run refined its cameras (val_registered_*, val_pose_fit_*)."""
  return {k: v for k, v in record.items() if k.startswith(('camera_', 'val_registered_', 'val_pose_fit_'))}


def _ground_truth_scores(record, prefix: str = '') -> dict:
  """The scores that need the scene's ground-truth maps, where it has them (the procedural scenes): PSNR by
  region (psnr_shiny, ...), normal and depth errors; keyed 'val_...'. `prefix`: the record's own prefix of
  them ('val_' in the final summary, '' in a val record)."""
  kinds = tuple(f'{prefix}{kind}' for kind in ('psnr_', 'normal_mae_deg', 'normal_pred_mae_deg', 'depth_mae'))
  return {f'val_{k[len(prefix):]}': v for k, v in record.items() if k.startswith(kinds)}


def run(config, workdir, seconds: Sequence[float], eval_images: int, config_name: str = ''):
  """Trains in a fresh `workdir` for the largest of `seconds` of training time, validating on `eval_images`
  val views whenever it passes one of the others; returns the JSON records, one per training time."""
  if config.eval.final_num_images == 0:
    raise errors.ConfigError('config.eval.final_num_images=0: the benchmark scores the largest --seconds on '
                             'that many val views; expected -1 (all) or a positive number of views.')
  workdir = prepare_workdir(workdir)
  seconds = sorted(seconds)
  config.train.max_seconds = seconds[-1]
  config.eval.at_train_seconds = tuple(seconds[:-1])
  config.eval.num_images = eval_images
  config.eval.every_steps = 0
  config.eval.video_frames = 0
  summary = trainer.train_and_evaluate(config, workdir)
  records = reporting.read_metrics(workdir)
  common = {'config': config_name,
            'backend': jax.default_backend(), 'device_kind': jax.devices()[0].device_kind,
            'devices': jax.device_count(), 'batch_size': config.train.batch_size,
            'compile_seconds': round(summary['compile_seconds'], 2)}
  lpips_keys = metrics.lpips_metric_names(config.eval.lpips)
  points = [{'train_seconds': r['train_seconds'], 'step': r['step'], 'val_psnr': r['psnr'],
             'val_ssim': r['ssim'], **{f'val_{k}': r[k] for k in lpips_keys if k in r},
             'val_images': int(r['num_images']), **_ground_truth_scores(r), **_camera_errors(r)}
            for r in records if r['split'] == 'val']
  if 'val_psnr' in summary:
    points.append({'train_seconds': summary['train_seconds'], 'step': summary['step'],
                   'val_psnr': summary['val_psnr'], 'val_ssim': summary['val_ssim'],
                   **{f'val_{k}': summary[f'val_{k}'] for k in lpips_keys if f'val_{k}' in summary},
                   'val_images': summary['val_images'], **_ground_truth_scores(summary, 'val_'),
                   **_camera_errors(summary)})
  train_records = [r for r in records if r['split'] == 'train']
  for point in points:
    # Rays that reached the loss: packed models leave out those whose samples did not fit.
    complete = [r.get('complete_rays', 1.0) for r in train_records if r['step'] <= point['step']] or [1.0]
    point['train_rays_per_second'] = (point['step'] * config.train.batch_size * float(np.mean(complete))
                                      / point['train_seconds'])
  return [{**common, **{k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()},
           **_peak_memory()} for p in points]


def main(argv):
  del argv
  cli.initialize()
  config = _CONFIG.value
  config_name = config_flags.get_config_filename(flags.FLAGS['config'])
  with cli.friendly_errors():
    if _WORKDIR.value:
      records = run(config, _WORKDIR.value, _SECONDS.value, _EVAL_IMAGES.value, config_name)
    else:
      with tempfile.TemporaryDirectory() as workdir:
        records = run(config, workdir, _SECONDS.value, _EVAL_IMAGES.value, config_name)
  for record in records:
    print(json.dumps(record))


if __name__ == '__main__':
  with cli.flag_errors():
    _CONFIG = config_flags.DEFINE_config_file('config', 'configs/lego_ngp.py', 'Configuration file.',
                                              lock_config=True)
  _SECONDS = flags.DEFINE(_SecondsParser(), 'seconds', '15,30,60,120,300',
                          'Training times (s) at which to report quality; the largest is the budget.',
                          serializer=flags.CsvListSerializer(','))
  _EVAL_IMAGES = flags.DEFINE_integer('eval_images', 10, 'Val views scored at the intermediate points.',
                                      lower_bound=1)
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Where the run writes (default: a temporary directory).')
  cli.run(main, _CONFIG)
