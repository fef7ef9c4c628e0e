"""Checkpoints that survive damage: the fingerprint sees any flipped bit, a damaged newest checkpoint is moved
aside with a warning and the previous one restored (by the run that owns the workdir; readers skip it and change
nothing), and a run resumes past it to the same result."""

import json
import logging
import pathlib
import shutil
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.commands import render
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import NonFiniteLossError
from jaxnerf.outputs import reporting
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import failed_reads
from jaxnerf.training import trainer
from tests.conftest import tree_digests
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import tiny_config


def test_fingerprint_changes_with_any_flipped_bit():
  rng = np.random.default_rng(0)
  tree = {'f32': rng.normal(size=(7, 3)).astype(np.float32), 'i32': rng.integers(-9, 9, 5).astype(np.int32),
          'u32': rng.integers(0, 2**32, 4, dtype=np.uint32), 'mask': rng.random(6) > 0.5,
          'bf16': jnp.asarray(rng.normal(size=5), jnp.bfloat16), 'scalar': np.float32(3.0)}
  reference = checkpoints.state_fingerprint(tree)
  assert checkpoints.state_fingerprint(jax.tree.map(np.array, tree)) == reference
  for name in tree:
    leaf = np.array(tree[name])
    for _ in range(4):
      flat = leaf.reshape(-1).copy()
      index = rng.integers(flat.size)
      if flat.dtype == bool:
        flat[index] = ~flat[index]
      else:
        words = flat.view(f'uint{8 * flat.dtype.itemsize}')
        words[index] ^= words.dtype.type(1) << words.dtype.type(rng.integers(8 * flat.dtype.itemsize))
      changed = dict(tree, **{name: flat.reshape(leaf.shape)})
      assert checkpoints.state_fingerprint(changed) != reference, (name, index)
  # Swapping two entries changes it too (the sum weighs positions).
  swapped = dict(tree, i32=tree['i32'][[1, 0, 2, 3, 4]])
  assert tree['i32'][0] != tree['i32'][1] and checkpoints.state_fingerprint(swapped) != reference


def test_fingerprint_is_the_weighted_word_sum_across_chunks_and_sees_non_finite_values(monkeypatch):
  """The checksum in chunks (here of 5 words) is the sum over all words by brute force, so checkpoints saved
  before it (one compiled sum) still verify; NaN or inf in any float type is named, not fingerprinted."""
  monkeypatch.setattr(checkpoints, '_CHECKSUM_CHUNK', 5)
  rng = np.random.default_rng(1)
  tree = {'f32': rng.normal(size=(4, 3)).astype(np.float32), 'bf16': jnp.asarray(rng.normal(size=7), jnp.bfloat16),
          'mask': rng.random(3) > 0.5, 'u8': rng.integers(0, 255, 6).astype(np.uint8)}

  def brute_force(x):
    x = np.asarray(x).reshape(-1)
    words = x.astype(np.uint32) if x.dtype == bool else x.view(f'uint{8 * x.dtype.itemsize}').astype(np.uint32)
    return sum((2 * i + 1) * int(w) for i, w in enumerate(words)) % 2**32

  assert checkpoints.state_fingerprint(tree) == [brute_force(tree[k]) for k in sorted(tree)]
  with_nan = dict(tree, bf16=tree['bf16'].at[3].set(jnp.nan), f32=np.where(np.eye(4, 3) > 0, np.inf, tree['f32']))
  assert checkpoints._fingerprint_and_non_finite(with_nan)[1] == ["['bf16']", "['f32']"]

def _largest_array_file(step_dir: pathlib.Path) -> pathlib.Path:
  """The largest of the files that hold the arrays' data (OCDBT's data files, under .../d/)."""
  return max((p for p in (step_dir / 'state').rglob('*') if p.is_file() and p.parent.name == 'd'),
             key=lambda p: p.stat().st_size)


def _truncate_array_file(step_dir):
  path = _largest_array_file(step_dir)
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _flip_bytes(step_dir):
  path = _largest_array_file(step_dir)
  data = bytearray(path.read_bytes())
  for i in range(len(data) // 3, len(data) // 3 + 4):
    data[i] ^= 0xFF
  path.write_bytes(bytes(data))


def _remove_metadata(step_dir):
  (step_dir / 'state' / '_METADATA').unlink()


def _garble_metadata(step_dir):
  (step_dir / 'state' / '_METADATA').write_text('{"tree_metadata": [garbled')


def _garble_run_record(step_dir):
  for path in (step_dir / 'run').rglob('*'):
    if path.is_file():
      path.write_text('not json')


def _empty_step_folder(step_dir):
  shutil.rmtree(step_dir)
  step_dir.mkdir()


DAMAGE = {'truncated array file': _truncate_array_file, 'flipped bytes': _flip_bytes,
          'missing metadata': _remove_metadata, 'garbled metadata': _garble_metadata,
          'garbled run record': _garble_run_record, 'empty step folder': _empty_step_folder}


@pytest.fixture(scope='module')
def saved(tmp_path_factory, scene_cache):
  """A workdir with intact checkpoints of steps 10 and 20 of the tiny model, and their states."""
  config = small_mlp_config(scene_cache)
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state(experiment, seed=0)
  states = {10: state.replace(step=jnp.int32(10)),
            20: state.replace(step=jnp.int32(20), params=jax.tree.map(lambda x: x + 1, state.params))}
  workdir = tmp_path_factory.mktemp('saved')
  manager = checkpoints.make_manager(workdir, keep=5)
  for step, s in states.items():
    checkpoints.save(manager, s, train_seconds=float(step))
  manager.wait_until_finished()
  manager.close()
  return workdir, experiment, jax.device_get(states)


def _copy(saved, tmp_path):
  workdir = tmp_path / 'workdir'
  shutil.copytree(saved[0], workdir)
  return workdir


def _restore(workdir, experiment):
  manager = checkpoints.make_manager(workdir, keep=5)
  try:
    return checkpoints.restore_newest_intact(manager, experiment_lib.abstract_state(experiment, seed=0)), \
        manager.all_steps()
  finally:
    manager.close()


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_damaged_newest_checkpoint_is_moved_aside_and_the_previous_restored(saved, tmp_path, capsys, damage):
  workdir = _copy(saved, tmp_path)
  DAMAGE[damage](workdir / 'checkpoints' / '20')
  restored, steps_left = _restore(workdir, saved[1])
  chex.assert_trees_all_equal(jax.device_get(restored.state), saved[2][10])
  assert restored.train_seconds == 10.0
  warning = capsys.readouterr().err
  assert warning.count('\n') == 1 and 'Traceback' not in warning, warning  # One line, no noise.
  assert f'checkpoint {workdir.absolute() / "checkpoints" / "20"} is damaged' in warning, warning
  assert 'resumed from the older checkpoint of step 10' in warning
  assert steps_left == [10]
  moved = list((workdir / 'damaged_checkpoints').iterdir())
  assert len(moved) == 1 and moved[0].name.startswith('20-')
  assert not (workdir / 'checkpoints' / '20').exists()


def test_intact_checkpoints_restore_the_newest_silently(saved, tmp_path, capsys):
  workdir = _copy(saved, tmp_path)
  restored, _ = _restore(workdir, saved[1])
  chex.assert_trees_all_equal(jax.device_get(restored.state), saved[2][20])
  assert restored.train_seconds == 20.0
  assert capsys.readouterr().err == '' and not (workdir / 'damaged_checkpoints').exists()


def test_readers_skip_a_damaged_checkpoint_and_change_nothing_in_the_workdir(saved, scene_cache, tmp_path,
                                                                            capsys):
  """render.py (like export.py, view.py and prune.py's source) reads a workdir that a run may be training in:
  it renders the older intact checkpoint, says so in one line, and leaves every file as it was (the damaged
  checkpoint and a leftover of an interrupted save included); only the run that owns the workdir moves them."""
  workdir = _copy(saved, tmp_path)
  checkpoints.save_config(workdir, small_mlp_config(scene_cache))
  (workdir / 'checkpoints' / '30.orbax-checkpoint-tmp' / 'state').mkdir(parents=True)
  _flip_bytes(workdir / 'checkpoints' / '20')
  before = tree_digests(workdir)
  summary = render.render_split(workdir, 'val', limit=1, lpips_nets=())
  assert summary['step'] == 10 and summary['out_dir'].startswith(str(workdir / 'render'))
  assert tree_digests(workdir, skip=('render',)) == before
  warning = [line for line in capsys.readouterr().err.splitlines() if 'damaged' in line]
  assert len(warning) == 1 and 'skipped it and read the older checkpoint of step 10' in warning[0], warning


def test_no_intact_checkpoint_is_an_error_that_moves_nothing(saved, tmp_path):
  workdir = _copy(saved, tmp_path)
  _truncate_array_file(workdir / 'checkpoints' / '10')
  _garble_metadata(workdir / 'checkpoints' / '20')
  with pytest.raises(CheckpointError, match=r'No checkpoint in .*could be restored \(step 20: .*; step 10: '):
    _restore(workdir, saved[1])
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['10', '20']


def test_leftover_of_an_interrupted_save_is_ignored_and_removed(saved, tmp_path):
  workdir = _copy(saved, tmp_path)
  partial = workdir / 'checkpoints' / '30.orbax-checkpoint-tmp'
  (partial / 'state').mkdir(parents=True)
  (partial / 'state' / 'half_written').write_bytes(b'\0' * 100)
  restored, steps = _restore(workdir, saved[1])
  assert int(restored.state.step) == 20 and steps == [10, 20]
  assert not partial.exists()


def test_a_state_holding_nan_is_never_saved(saved, tmp_path):
  state = saved[2][10]
  params = jax.tree.map(np.array, state.params)
  params['coarse_field']['trunk_0']['kernel'][0, 0] = np.nan
  manager = checkpoints.make_manager(tmp_path, keep=2)
  with pytest.raises(NonFiniteLossError, match=r"state of step 10 holds NaN or inf \(in params\['coarse_field'\]"
                                               r"\['trunk_0'\]\['kernel'\]\); it was not saved"):
    checkpoints.save(manager, state.replace(params=params), train_seconds=1.0)
  manager.wait_until_finished()
  assert manager.all_steps() == []
  manager.close()


def _raised_in_orbax():
  """A ValueError raised in a file of Orbax's (as a failed read's is)."""
  code = compile('def read():\n  raise ValueError("Requested shape: (2,) is not compatible")\n',
                 str(pathlib.Path('site-packages') / 'orbax' / 'checkpoint' / 'serialization.py'), 'exec')
  namespace = {}
  exec(code, namespace)  # pylint: disable=exec-used
  try:
    namespace['read']()
  except ValueError as e:
    return e


def test_the_leftovers_of_a_failed_read_print_nothing_later(caplog):
  """The tasks of a failed restore's reads are collected at any later moment: asyncio's 'never retrieved'
  record and the coroutines' 'never awaited' warnings are dropped then too, other records are not."""
  failed_reads.drop_leftovers_for_the_process()  # As a restore does.
  logger = logging.getLogger('asyncio')
  leftover = _raised_in_orbax()
  logger.error('Task exception was never retrieved', exc_info=(type(leftover), leftover, leftover.__traceback__))
  other = ValueError('another error')
  logger.error('Task exception was never retrieved', exc_info=other)
  assert [r.exc_info[1] for r in caplog.records if r.name == 'asyncio'] == [other]
  with warnings.catch_warnings(record=True) as caught:
    warnings.warn("coroutine '_read_array_index_and_device_put' was never awaited", RuntimeWarning)
    warnings.warn("coroutine 'mine' was never awaited", RuntimeWarning)
  assert [str(w.message) for w in caught] == ["coroutine 'mine' was never awaited"]


def test_resumed_run_equals_uninterrupted_run_past_a_damaged_checkpoint(scene_cache, tmp_path):
  """A run that died after step 20 with that checkpoint damaged afterwards and the last metrics line cut
  short resumes from step 10 and ends with the parameters, and one metrics record per step, of a run that
  never stopped."""
  config = small_mlp_config(scene_cache)
  full = tmp_path / 'full'
  result = trainer.run_training(config, full)
  assert result.summary['step'] == 20 and result.summary['resumed_from'] is None
  damaged = tmp_path / 'damaged'
  shutil.copytree(full, damaged)
  _flip_bytes(damaged / 'checkpoints' / '20')
  with open(damaged / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 25, "split": "tra')
  summary = trainer.train_and_evaluate(config, damaged)
  assert summary['resumed_from'] == 10 and summary['step'] == 20
  _, _, state = experiment_lib.restore_model(damaged)
  chex.assert_trees_all_close(jax.device_get(state.params), jax.device_get(result.state.params), rtol=1e-5,
                              atol=1e-7)
  keys = [(r['step'], r['split']) for r in reporting.read_metrics(damaged)]
  assert keys == [(5, 'train'), (10, 'train'), (15, 'train'), (20, 'train'), (20, 'final_val')], keys


def test_a_config_saved_by_an_older_version_takes_the_defaults_of_keys_added_since(tmp_path, capsys):
  config = tiny_config()
  checkpoints.save_config(tmp_path, config)
  saved = json.loads((tmp_path / checkpoints.CONFIG_FILE).read_text())
  del saved['optim']['pruned_levels'], saved['model']['hash_grid']['layers']
  (tmp_path / checkpoints.CONFIG_FILE).write_text(json.dumps(saved))
  loaded = checkpoints.load_config(tmp_path)
  assert loaded.optim.pruned_levels == 'none' and loaded.model.hash_grid.layers == 'dense'
  assert loaded.model.hash_grid.num_levels == config.model.hash_grid.num_levels  # Saved values are kept.
  assert loaded.scene_box == config.scene_box and loaded.is_locked
  assert 'predates config.model.hash_grid.layers, config.optim.pruned_levels' in capsys.readouterr().err
  checkpoints.save_config(tmp_path, config)
  checkpoints.load_config(tmp_path)
  assert 'predates' not in capsys.readouterr().err  # A current config: silent.
