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
train_and_evaluate in <workdir>/<index> for --seconds of training time (config.train.max_seconds, so the
learning rate anneals within it), with no orbit video; its result is printed and appended to
<workdir>/results.jsonl, and <workdir>/results.md holds the table so far.
"""

import ast
import copy
import itertools
import json
import pathlib
import sys
import time
from typing import Dict, List, Sequence

import numpy as np
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, '.')  # So that config files can import configs.default when run from the repo root.

from jaxnerf import cli  # pylint: disable=g-import-not-at-top
from jaxnerf import errors
from jaxnerf import trainer


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # A bare string, e.g. mlp or bfloat16.


def _split_spec(spec: str, flag: str):
  key, sep, values = spec.partition('=')
  if not sep or not key or not values:
    raise errors.ConfigError(f'--{flag}={spec!r}: expected KEY=VALUES, e.g. optim.lr_init=1e-3,1e-2.')
  return key, values


def grid_overrides(specs: Sequence[str]) -> List[Dict]:
  """Every combination of the values of --grid specs KEY=V1,V2,..."""
  axes = [(key, [_literal(v) for v in values.split(',')])
          for key, values in (_split_spec(s, 'grid') for s in specs)]
  return [dict(zip([k for k, _ in axes], combination))
          for combination in itertools.product(*[values for _, values in axes])]


def random_overrides(specs: Sequence[str], count: int, seed: int) -> List[Dict]:
  """`count` draws from the --space specs: KEY=V1,V2 (choice), KEY=log:LO:HI or KEY=uniform:LO:HI."""
  rng = np.random.default_rng(seed)
  draws = [{} for _ in range(count)]
  for spec in specs:
    key, values = _split_spec(spec, 'space')
    kind, _, bounds = values.partition(':')
    if kind in ('log', 'uniform'):
      try:
        low, high = (float(v) for v in bounds.split(':'))
      except ValueError:
        raise errors.ConfigError(f'--space={spec!r}: expected {kind}:LOW:HIGH with two numbers.') from None
      if kind == 'log' and not 0 < low <= high:
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
  for key, value in overrides.items():
    *parents, name = key.split('.')
    node = config
    try:
      for parent in parents:
        node = node[parent]
      node[name] = value
    except (KeyError, AttributeError):
      raise errors.ConfigError(f'sweep override {key}={value!r}: the config has no key {key!r}.') from None
    except TypeError as e:
      raise errors.ConfigError(f'sweep override {key}={value!r}: {e}') from None
  return config


def markdown_table(results: List[Dict], keys: Sequence[str]) -> str:
  """One row per run: its overrides, then val PSNR/SSIM, steps and training seconds (or its error)."""
  header = ['run', *keys, 'val PSNR', 'val SSIM', 'steps', 'train s']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for r in results:
    cells = [str(r['run']), *(str(r['overrides'].get(k, '')) for k in keys)]
    if 'error' in r:
      cells += [f"error: {r['error']}", '', '', '']
    else:
      cells += [f"{r['val_psnr']:.2f}", f"{r['val_ssim']:.4f}", str(r['step']), f"{r['train_seconds']:.0f}"]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def run_sweep(config, overrides_list: List[Dict], seconds: float, root) -> List[Dict]:
  """Trains one run per overrides, each for `seconds` of training time; returns the records."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  keys = sorted({k for overrides in overrides_list for k in overrides})
  results = []
  for index, overrides in enumerate(overrides_list):
    record = {'run': index, 'overrides': overrides}
    start = time.perf_counter()
    try:
      run_config = apply_overrides(config, overrides)
      run_config.train.max_seconds = seconds
      run_config.eval.video_frames = 0
      summary = trainer.train_and_evaluate(run_config, root / str(index))
      record.update({k: summary[k] for k in ('val_psnr', 'val_ssim', 'step', 'train_seconds') if k in summary})
    except errors.USER_ERRORS as e:
      record['error'] = str(e).splitlines()[0]
    record['wall_seconds'] = time.perf_counter() - start
    results.append(record)
    print(json.dumps(record), flush=True)
    with open(root / 'results.jsonl', 'a') as f:
      f.write(json.dumps(record) + '\n')
    (root / 'results.md').write_text(markdown_table(results, keys))
  return results


def main(argv):
  del argv
  if bool(_GRID.value) == bool(_RANDOM.value):
    cli.exit_with_usage_error('give --grid specs, or --random=N with --space specs (not both).')
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


if __name__ == '__main__':
  with cli.flag_errors():
    _CONFIG = config_flags.DEFINE_config_file('config', 'configs/lego_ngp.py', 'Base configuration file.',
                                              lock_config=True)
  _GRID = flags.DEFINE_multi_string('grid', [], 'KEY=V1,V2,...: sweep every combination of these values.')
  _RANDOM = flags.DEFINE_integer('random', 0, 'Number of random draws from the --space specs.')
  _SPACE = flags.DEFINE_multi_string('space', [], 'KEY=V1,V2 | KEY=log:LO:HI | KEY=uniform:LO:HI.')
  _SEED = flags.DEFINE_integer('seed', 0, 'Seed of the random draws.')
  _SECONDS = flags.DEFINE_float('seconds', 60.0, 'Training seconds per run (config.train.max_seconds).')
  _WORKDIR = flags.DEFINE_string('workdir', None, 'Root of the runs (default: runs/sweep-<time>).')
  cli.run(main, _CONFIG)
