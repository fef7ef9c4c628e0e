"""Sweeps config overrides, each run under a wall-clock budget of training time: one JSON line per run, and
a Markdown table with one row per run.

  python benchmarks/sweep.py --config=configs/lego_ngp.py:cpu \
      --config.data_dir=../shared/data/nerf_synthetic/lego --seconds=60 \
      --grid=optim.lr_init=3e-3,1e-2,3e-2 --grid=train.batch_size=2048,4096

  python benchmarks/sweep.py --config=configs/lego_ngp.py:cpu \
      --config.data_dir=../shared/data/nerf_synthetic/lego --seconds=60 --random=8 --seed=0 \
      --space=optim.lr_init=log:1e-3:3e-2 --space=model.hash_grid.log2_table_size=14,15,16

--grid KEY=V1,V2,... runs every combination of the listed values; --random=N draws N combinations from
--space KEY=V1,V2,... (a choice), KEY=log:LO:HI (log-uniform) or KEY=uniform:LO:HI. Values are Python
literals (numbers, strings, tuples), checked against the type of the config field. Each run trains with
train_and_evaluate for --seconds of training time (config.train.max_seconds, so the learning rate anneals
within it), with no orbit video, and is scored on config.eval.final_num_images val views; its result is
printed and appended to <workdir>/results.jsonl, and <workdir>/results.md holds this sweep's table so far.
The exit status is 1 when any run failed (the last line on stderr says how many).

Runs are keyed by what they train, so that a result always belongs to the settings it is reported under:

- A run's directory is named after its overrides and --seconds (as config.train.max_seconds): the sorted
  KEY=VALUE pairs, made filesystem-safe and shortened, then a hash of their canonical JSON, e.g.
  <workdir>/optim.lr_init=0.01,train.batch_size=2048,train.max_seconds=60.0-1a2b3c4d. Running a sweep
  again resumes each run from its own checkpoints (after an interruption, or to re-score it: the record's
  'resumed_from' says so), and a run of other values or another budget starts afresh in a directory of its
  own. Each record names its directory ('workdir').
- The base config (--config and its --config.* flags) is recorded in <workdir>/sweep.json by the first
  sweep, and a sweep with another base config into the same --workdir is refused, naming the keys that
  differ. Keying directories by a hash of the base config instead would keep such runs apart too, but would
  let results.jsonl mix runs of different scenes or models with nothing to tell them apart; one base config
  per --workdir keeps every record of a --workdir comparable.

A sweep ranks its runs by their val PSNR and SSIM, so config.eval.final_num_images=0 (score nothing), in the
base config or as an override, is refused before anything trains, rather than after hours of training whose
results cannot be compared. A run that is scored on no views all the same (a scene without val views) shows
'-' in the table.
"""

import ast
import copy
import hashlib
import itertools
import json
import math
import pathlib
import re
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, '.')  # So that config files can import configs.default when run from the repo root.

from jaxnerf import cli  # pylint: disable=g-import-not-at-top
from jaxnerf import config_groups
from jaxnerf import errors
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import trainer
from jaxnerf import workdirs

SWEEP_FILE = 'sweep.json'
# Keys the sweep sets in every run itself: from --seconds, and no video.
_SWEEP_SET = {'train.max_seconds': 'it is --seconds', 'eval.video_frames': 'a sweep renders no video'}


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # A bare string, e.g. mlp or bfloat16.


def _split_spec(spec: str, flag: str, seen: set):
  key, sep, values = spec.partition('=')
  if not sep or not key or not values:
    raise errors.ConfigError(f'--{flag}={spec!r}: expected KEY=VALUES, e.g. optim.lr_init=1e-3,1e-2.')
  if key in seen:
    raise errors.ConfigError(f'--{flag}={spec!r}: {key} is given by another --{flag} too; list its values in '
                             'one spec.')
  seen.add(key)
  return key, values


def grid_overrides(specs: Sequence[str]) -> List[Dict]:
  """Every combination of the values of --grid specs KEY=V1,V2,..."""
  seen = set()
  axes = [(key, [_literal(v) for v in values.split(',')])
          for key, values in (_split_spec(s, 'grid', seen) for s in specs)]
  return [dict(zip([k for k, _ in axes], combination))
          for combination in itertools.product(*[values for _, values in axes])]


def random_overrides(specs: Sequence[str], count: int, seed: int) -> List[Dict]:
  """`count` draws from the --space specs: KEY=V1,V2 (choice), KEY=log:LO:HI or KEY=uniform:LO:HI."""
  rng = np.random.default_rng(seed)
  draws = [{} for _ in range(count)]
  seen = set()
  for spec in specs:
    key, values = _split_spec(spec, 'space', seen)
    kind, _, bounds = values.partition(':')
    if kind in ('log', 'uniform'):
      try:
        low, high = (float(v) for v in bounds.split(':'))
      except ValueError:
        raise errors.ConfigError(f'--space={spec!r}: expected {kind}:LOW:HIGH with two numbers.') from None
      if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise errors.ConfigError(f'--space={spec!r}: expected {kind}:LOW:HIGH with finite LOW <= HIGH.')
      if kind == 'log' and not 0 < low:
        raise errors.ConfigError(f'--space={spec!r}: log needs 0 < LOW <= HIGH.')
      samples = (np.exp(rng.uniform(np.log(low), np.log(high), count)) if kind == 'log'
                 else rng.uniform(low, high, count))
      values_drawn = [float(f'{v:.4g}') for v in samples]
    else:
      choices = [_literal(v) for v in values.split(',')]
      values_drawn = [choices[i] for i in rng.integers(0, len(choices), count)]
    for draw, value in zip(draws, values_drawn):
      draw[key] = value
  return draws


def apply_overrides(config, overrides: Dict):
  """A copy of the (locked) config with `overrides`; a ConfigError names a key it lacks or a bad type."""
  config = copy.deepcopy(config)
  config_groups.apply_overrides(config, overrides, 'sweep override')
  return config


def check_overrides(config, overrides_list: Sequence[Dict]):
  """Refuses, before anything trains, overrides that the sweep would silently replace, and runs that would
  be scored on no val views (config.eval.final_num_images=0, in the base config or an override)."""
  for overrides in overrides_list:
    for key, why in _SWEEP_SET.items():
      if key in overrides:
        raise errors.ConfigError(f'sweep override {key}={overrides[key]!r}: the sweep sets {key} itself '
                                 f'({why}); leave it out of --grid and --space.')
    final = overrides.get('eval.final_num_images', config.eval.final_num_images)
    if final == 0:
      where = ('sweep override eval.final_num_images=0' if 'eval.final_num_images' in overrides
               else 'config.eval.final_num_images=0')
      raise errors.ConfigError(f'{where}: a sweep compares its runs by their val PSNR and SSIM, so it needs '
                               'scored views; expected -1 (all val views) or a positive number of views.')


def _canonical_json(value) -> str:
  return json.dumps(value, sort_keys=True, separators=(',', ':'), default=repr)


def run_name(overrides: Dict, max_length: int = 120) -> str:
  """The directory name of a run: its sorted KEY=VALUE pairs, filesystem-safe and at most `max_length`
  characters, then 8 hex digits of a hash of their canonical JSON (which keeps apart the values that the
  readable part shortens or makes alike)."""
  pairs = ','.join(f'{k}={v if isinstance(v, str) else json.dumps(v, default=repr)}'
                   for k, v in sorted(overrides.items()))
  readable = re.sub(r'[^A-Za-z0-9._=,+-]', '_', pairs)[:max_length]
  digest = hashlib.sha256(_canonical_json(overrides).encode()).hexdigest()[:8]
  return f'{readable}-{digest}' if readable else digest


def claim_root(config, root: pathlib.Path):
  """Checks that `root` can be written (or created) and records the base config in root/sweep.json, or checks that the sweep already there
  has the same base config (but for the keys the sweep sets per run)."""
  workdirs.check_writable(root, '--workdir')
  base = json.loads(config.to_json())
  path = root / SWEEP_FILE
  if not path.exists() and (root / checkpoints.CONFIG_FILE).exists():
    raise errors.ConfigError(f'--workdir={root} is the workdir of a training run (it holds '
                             f'{checkpoints.CONFIG_FILE}): a sweep writes into a folder of its own.')
  if not path.exists():
    try:
      workdirs.write_text_atomically(path, json.dumps({'base_config': base}, indent=2) + '\n')
    except OSError as e:
      raise errors.ConfigError(f'--workdir={root}: cannot write {SWEEP_FILE} there ({e.strerror}).') from None
    return
  try:
    recorded = json.loads(path.read_text())['base_config']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.ConfigError(f'{path} cannot be read ({e}); give another --workdir.') from None
  mine, theirs = experiment_lib.flatten_keys(base), experiment_lib.flatten_keys(recorded)
  differing = sorted(k for k in mine.keys() | theirs.keys()
                     if k not in _SWEEP_SET and mine.get(k) != theirs.get(k))
  if differing:
    shown = ', '.join(f'config.{k}' for k in differing[:5]) + (f' and {len(differing) - 5} more'
                                                                if len(differing) > 5 else '')
    raise errors.ConfigError(f'--workdir={root} holds a sweep of another base config ({shown} '
                             f'{"differs" if len(differing) == 1 else "differ"} from {path}); give another '
                             '--workdir, or the same --config and --config.* flags.')


def _cell(record: Dict, key: str, fmt: str) -> str:
  return format(record[key], fmt) if record.get(key) is not None else '-'


def markdown_table(results: List[Dict], keys: Sequence[str]) -> str:
  """One row per run: its overrides, then val PSNR/SSIM, steps and training seconds (or its error); '-'
  where a run has no such figure."""
  header = ['run', *keys, 'val PSNR', 'val SSIM', 'steps', 'train s']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for r in results:
    cells = [str(r['run']), *(str(r['overrides'].get(k, '')) for k in keys)]
    if 'error' in r:
      cells += [f"error: {r['error']}", '', '', '']
    else:
      cells += [_cell(r, 'val_psnr', '.2f'), _cell(r, 'val_ssim', '.4f'), _cell(r, 'step', 'd'),
                _cell(r, 'train_seconds', '.0f')]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def run_sweep(config, overrides_list: List[Dict], seconds: float, root) -> List[Dict]:
  """Trains one run per overrides, each for `seconds` of training time, in root/<run_name>; returns the
  records (a failed run's has 'error'). Raises ConfigError, before training, for a sweep that cannot work."""
  root = pathlib.Path(root)
  check_overrides(config, overrides_list)
  claim_root(config, root)
  keys = sorted({k for overrides in overrides_list for k in overrides})
  results = []
  for index, overrides in enumerate(overrides_list):
    workdir = root / run_name({**overrides, 'train.max_seconds': float(seconds)})
    record = {'run': index, 'overrides': overrides, 'workdir': str(workdir)}
    start = time.perf_counter()
    try:
      run_config = apply_overrides(config, overrides)
      run_config.train.max_seconds = seconds
      run_config.eval.video_frames = 0
      summary = trainer.train_and_evaluate(run_config, workdir)
      record.update({k: summary[k] for k in ('val_psnr', 'val_ssim', 'step', 'train_seconds', 'resumed_from')
                     if k in summary})
    except errors.USER_ERRORS as e:
      record['error'] = str(e).splitlines()[0]
    record['wall_seconds'] = time.perf_counter() - start
    results.append(record)
    print(json.dumps(record, default=repr), flush=True)
    with open(root / 'results.jsonl', 'a') as f:
      f.write(json.dumps(record, default=repr) + '\n')
    (root / 'results.md').write_text(markdown_table(results, keys))
  return results


def failure_line(results: Sequence[Dict], root) -> Optional[str]:
  """The last line of a sweep whose runs failed (None when none did)."""
  failed = sum('error' in r for r in results)
  if not failed:
    return None
  return f'error: {failed} of {len(results)} runs failed (their errors are in {pathlib.Path(root) / "results.md"}).'


def parse_seconds(argument) -> float:
  """--seconds: a positive number of seconds; a ValueError says what is expected (absl reports it as
  `flag --seconds=...: <it>`)."""
  try:
    seconds = float(argument)
  except (TypeError, ValueError):
    seconds = math.nan
  if not (math.isfinite(seconds) and seconds > 0):
    raise ValueError('expected a positive number of seconds (the training time of each run).')
  return seconds


class _SecondsParser(flags.ArgumentParser):
  """--seconds: a positive number of seconds."""

  def parse(self, argument):
    return parse_seconds(argument)

  def flag_type(self):
    return 'seconds'


def main(argv):
  del argv
  if bool(_GRID.value) == bool(_RANDOM.value):
    cli.exit_with_usage_error('give --grid specs, or --random=N with --space specs (not both).')
  if _SPACE.value and not _RANDOM.value:
    cli.exit_with_usage_error('--space specs are drawn from by --random=N; with --grid, list the values there.')
  with cli.friendly_errors():
    if _GRID.value:
      overrides_list = grid_overrides(_GRID.value)
    else:
      if not _SPACE.value:
        raise errors.ConfigError('--random needs at least one --space spec.')
      overrides_list = random_overrides(_SPACE.value, _RANDOM.value, _SEED.value)
    root = _WORKDIR.value or f'runs/sweep-{time.strftime("%Y%m%d-%H%M%S")}'
    cli.initialize()
    results = run_sweep(_CONFIG.value, overrides_list, _SECONDS.value, root)
  print(markdown_table(results, sorted({k for o in overrides_list for k in o})), file=sys.stderr)
  failed = failure_line(results, root)
  if failed:
    print(failed, file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  with cli.flag_errors():
    _CONFIG = config_flags.DEFINE_config_file('config', 'configs/lego_ngp.py', 'Base configuration file.',
                                              lock_config=True)
  _GRID = flags.DEFINE_multi_string('grid', [], 'KEY=V1,V2,...: sweep every combination of these values.')
  _RANDOM = flags.DEFINE_integer('random', 0, 'Number of random draws from the --space specs.', lower_bound=0)
  _SPACE = flags.DEFINE_multi_string('space', [], 'KEY=V1,V2 | KEY=log:LO:HI | KEY=uniform:LO:HI.')
  _SEED = flags.DEFINE_integer('seed', 0, 'Seed of the random draws.', lower_bound=0)
  _SECONDS = flags.DEFINE(_SecondsParser(), 'seconds', 60.0, 'Training seconds per run (config.train.max_seconds).')
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Root of the runs (default: runs/sweep-<time>).')
  cli.run(main, _CONFIG)
