"""benchmarks/sweep.py: grids and random draws of overrides, applied with type checks, each run under a
time budget, with one JSON line and one table row per run."""

import importlib.util
import json
import pathlib

import pytest

from jaxnerf.errors import ConfigError
from tests.conftest import REPO
from tests.tiny_configs import tiny_config

_SPEC = importlib.util.spec_from_file_location('sweep', pathlib.Path(REPO) / 'benchmarks' / 'sweep.py')
sweep = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sweep)


def test_grid_is_every_combination():
  grid = sweep.grid_overrides(['optim.lr_init=1e-2,3e-3', 'model.field=mlp,hash_grid', 'factor=2'])
  assert grid == [{'optim.lr_init': a, 'model.field': b, 'factor': 2}
                  for a in (1e-2, 3e-3) for b in ('mlp', 'hash_grid')]
  with pytest.raises(ConfigError, match="--grid='lr': expected KEY=VALUES"):
    sweep.grid_overrides(['lr'])


def test_random_draws_stay_in_their_space_and_repeat_with_the_seed():
  space = ['optim.lr_init=log:1e-3:1e-1', 'train.batch_size=1024,2048', 'optim.adam_b1=uniform:0.8:0.95']
  draws = sweep.random_overrides(space, 200, seed=3)
  assert draws == sweep.random_overrides(space, 200, seed=3)
  lr = [d['optim.lr_init'] for d in draws]
  assert min(lr) >= 1e-3 and max(lr) <= 1e-1
  assert sum(v < 1e-2 for v in lr) == pytest.approx(100, abs=25)  # Log-uniform: half below the midpoint.
  assert {d['train.batch_size'] for d in draws} == {1024, 2048}
  assert all(0.8 <= d['optim.adam_b1'] <= 0.95 for d in draws)
  with pytest.raises(ConfigError, match='log needs 0 < LOW <= HIGH'):
    sweep.random_overrides(['optim.lr_init=log:0:1'], 2, 0)


def test_overrides_are_checked_against_the_config():
  config = tiny_config()
  config.lock()
  changed = sweep.apply_overrides(config, {'optim.lr_init': 3e-3, 'model.hash_grid.log2_table_size': 10})
  assert changed.optim.lr_init == 3e-3 and config.optim.lr_init != 3e-3
  with pytest.raises(ConfigError, match="the config has no key 'optim.lr'"):
    sweep.apply_overrides(config, {'optim.lr': 1.0})
  with pytest.raises(ConfigError, match='train.num_steps=.many.'):
    sweep.apply_overrides(config, {'train.num_steps': 'many'})


def test_sweep_writes_a_json_line_and_a_table_row_per_run(scene_cache, tmp_path, capsys):
  config = tiny_config(scene_cache, num_steps=1000)
  config.lock()
  results = sweep.run_sweep(config, [{'optim.lr_init': 1e-2}, {'optim.lr_init': -1.0}], seconds=0.5,
                            root=tmp_path)
  lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert lines == json.loads(json.dumps(results))
  assert [r['overrides'] for r in results] == [{'optim.lr_init': 1e-2}, {'optim.lr_init': -1.0}]
  assert results[0]['train_seconds'] >= 0.5 and 0 < results[0]['step'] < 1000 and results[0]['val_psnr'] > 0
  assert 'config.optim.lr_init=-1.0: expected a finite number > 0' in results[1]['error']
  table = (tmp_path / 'results.md').read_text().splitlines()
  assert table[0] == '| run | optim.lr_init | val PSNR | val SSIM | steps | train s |' and len(table) == 4
  assert table[3].startswith('| 1 | -1.0 | error: ')
  assert len((tmp_path / 'results.jsonl').read_text().splitlines()) == 2
