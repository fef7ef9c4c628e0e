"""benchmarks/sweep.py: grids and random draws of overrides, applied with type checks, each run under a
time budget, with one JSON line and one table row per run."""

import importlib.util
import json
import pathlib
import re

import pytest

from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.training import checkpoints
from tests.conftest import REPO
from tests.tiny_configs import small_mlp_config
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
  config = small_mlp_config(scene_cache, num_steps=1000)
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


def test_run_names_are_readable_safe_and_keyed_by_every_value():
  name = sweep.run_name({'train.batch_size': 2048, 'optim.lr_init': 0.01})
  assert re.fullmatch(r'optim\.lr_init=0\.01,train\.batch_size=2048-[0-9a-f]{8}', name)
  assert name == sweep.run_name({'optim.lr_init': 0.01, 'train.batch_size': 2048})  # Order does not matter.
  assert name != sweep.run_name({'train.batch_size': 2048, 'optim.lr_init': 0.03})
  # Values that the readable part makes alike, or cuts off, still get directories of their own.
  assert sweep.run_name({'data_dir': 'a/b'}) != sweep.run_name({'data_dir': 'a_b'})
  assert sweep.run_name({'data_dir': 'a/b'}).startswith('data_dir=a_b-')
  long = [sweep.run_name({'data_dir': 'x' * 300 + end}) for end in 'yz']
  assert long[0] != long[1] and all(len(n) <= 130 and '/' not in n for n in long)


def test_sweeps_into_one_root_keep_their_runs_apart(scene_cache, tmp_path, capsys):
  config = small_mlp_config(scene_cache, num_steps=4)  # The budget is ample: each run stops at step 4.
  config.lock()
  # Grids of a key that leaves the compiled steps alone, so that the runs compile once.
  first = sweep.run_sweep(config, [{'train.log_every': 2}], seconds=60, root=tmp_path)[0]
  other = sweep.run_sweep(config, [{'train.log_every': 4}], seconds=60, root=tmp_path)[0]
  again = sweep.run_sweep(config, [{'train.log_every': 2}], seconds=60, root=tmp_path)[0]
  capsys.readouterr()
  assert first['resumed_from'] is None and first['step'] == 4
  # Other overrides train afresh in a directory of their own.
  assert other['resumed_from'] is None and other['step'] == 4 and other['workdir'] != first['workdir']
  assert pathlib.Path(other['workdir']).parent == tmp_path and (tmp_path / 'sweep.json').is_file()
  # The same overrides find their own run: resumed (nothing left to train) and scored again.
  assert again['workdir'] == first['workdir'] and again['resumed_from'] == 4
  assert again['val_psnr'] == pytest.approx(first['val_psnr'], abs=1e-4)
  records = [json.loads(line) for line in (tmp_path / 'results.jsonl').read_text().splitlines()]
  assert [r['workdir'] for r in records] == [first['workdir'], other['workdir'], first['workdir']]


def test_a_root_holds_sweeps_of_one_base_config(tmp_path):
  config = tiny_config()
  config.lock()
  sweep.claim_root(config, tmp_path)
  same = sweep.apply_overrides(config, {'train.max_seconds': 5.0, 'eval.video_frames': 3})  # Set per run.
  sweep.claim_root(same, tmp_path)
  changed = sweep.apply_overrides(config, {'seed': 7, 'optim.lr_final': 1e-5})
  with pytest.raises(ConfigError, match=r'holds a sweep of another base config \(config.optim.lr_final, '
                                        r'config.seed differ from .*sweep.json\); give another --workdir'):
    sweep.run_sweep(changed, [{'optim.lr_init': 1e-2}], seconds=1, root=tmp_path)
  assert not (tmp_path / 'results.jsonl').exists()
  (tmp_path / 'file').write_text('')
  with pytest.raises(WorkdirError, match=r'^--workdir .*file/root cannot be created: a part of its path is a file'):
    sweep.claim_root(config, tmp_path / 'file' / 'root')
  with pytest.raises(WorkdirError, match='^--workdir .*file is a file; expected a directory.$'):
    sweep.claim_root(config, tmp_path / 'file')
  checkpoints.save_config(tmp_path / 'run', config)  # A training run's workdir: never a sweep's root.
  with pytest.raises(ConfigError, match=r'run is the workdir of a training run \(it holds config.json\)'):
    sweep.claim_root(config, tmp_path / 'run')
  assert [p.name for p in (tmp_path / 'run').iterdir()] == ['config.json']


def test_a_sweep_whose_runs_failed_says_how_many(tmp_path, capsys):
  config = tiny_config()
  config.lock()
  results = sweep.run_sweep(config, [{'optim.lr': 1e-2}, {'optim.lr': 3e-3}], seconds=1, root=tmp_path)
  capsys.readouterr()
  assert all("the config has no key 'optim.lr'" in r['error'] for r in results)
  assert sweep.failure_line(results, tmp_path) == (f'error: 2 of 2 runs failed (their errors are in '
                                                   f'{tmp_path / "results.md"}).')
  assert sweep.failure_line([{'run': 0, 'val_psnr': 20.0}], tmp_path) is None


def test_a_sweep_that_scores_nothing_is_refused_before_training(tmp_path):
  config = tiny_config()
  config.eval.final_num_images = 0
  config.lock()
  with pytest.raises(ConfigError, match=r'^config.eval.final_num_images=0: a sweep compares its runs by their '
                                        r'val PSNR and SSIM.*expected -1 \(all val views\) or a positive'):
    sweep.run_sweep(config, [{'optim.lr_init': 1e-2}], seconds=1, root=tmp_path / 'root')
  config = tiny_config()
  config.lock()
  with pytest.raises(ConfigError, match='^sweep override eval.final_num_images=0: a sweep compares'):
    sweep.run_sweep(config, [{'eval.final_num_images': 1}, {'eval.final_num_images': 0}], seconds=1,
                    root=tmp_path / 'root')
  with pytest.raises(ConfigError, match=r'^sweep override train.max_seconds=5: the sweep sets .* \(it is --seconds\)'):
    sweep.run_sweep(config, [{'train.max_seconds': 5}], seconds=1, root=tmp_path / 'root')
  assert not (tmp_path / 'root').exists()
  # A run scored on no views all the same (a scene without val views) has '-' in the table.
  table = sweep.markdown_table([{'run': 0, 'overrides': {'seed': 1}, 'step': 4, 'train_seconds': 2.0}], ['seed'])
  assert table.splitlines()[2] == '| 0 | 1 | - | - | 4 | 2 |'


def test_specs_give_each_key_once_and_bounds_in_order():
  with pytest.raises(ConfigError, match="--grid='seed=2': seed is given by another --grid too"):
    sweep.grid_overrides(['seed=1', 'seed=2'])
  with pytest.raises(ConfigError, match='expected uniform:LOW:HIGH with finite LOW <= HIGH'):
    sweep.random_overrides(['optim.adam_b1=uniform:0.9:0.8'], 2, 0)
  with pytest.raises(ConfigError, match='expected log:LOW:HIGH with finite LOW <= HIGH'):
    sweep.random_overrides(['optim.lr_init=log:1e-3:inf'], 2, 0)


def test_seconds_are_a_positive_number():
  assert sweep.parse_seconds('2.5') == 2.5 and sweep.parse_seconds(60.0) == 60.0
  for bad in ('abc', '-5', '0', 'nan', 'inf'):
    with pytest.raises(ValueError, match=r'^expected a positive number of seconds \(the training time of each run\)'):
      sweep.parse_seconds(bad)
