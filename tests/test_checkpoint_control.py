"""Choosing checkpoints: restoring a chosen step, resuming from it (newer checkpoints set aside), keeping the
best validation's checkpoint beside the newest, and starting a run from another workdir's parameters."""

import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import pytest

from jaxnerf.commands import render
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import ConfigError
from jaxnerf.training import checkpoints
from jaxnerf.training import config_checks
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import trainer
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.test_checkpoints import DAMAGE
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import tiny_config


@pytest.fixture(scope='module')
def states(scene_cache):
  """The tiny model's experiment and three distinct states at steps 10, 20 and 30."""
  config = small_mlp_config(scene_cache)
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state(experiment, seed=0)
  return config, experiment, {step: state.replace(step=jnp.int32(step),
                                                  params=jax.tree.map(lambda x: x + step, state.params))
                              for step in (10, 20, 30)}


def _save_all(workdir, states_by_step, folder=checkpoints.CHECKPOINTS_DIR, **record):
  manager = checkpoints.make_manager(workdir, 5, folder)
  for state in states_by_step:
    checkpoints.save(manager, state, 1.0, **record)
  manager.wait_until_finished()
  return manager


def test_a_chosen_step_restores_that_state_and_a_missing_or_damaged_one_says_which(states, tmp_path):
  _, experiment, by_step = states
  manager = _save_all(tmp_path, by_step.values())
  abstract = experiment_lib.abstract_state(experiment, seed=0)
  chex.assert_trees_all_equal(jax.device_get(checkpoints.restore_step(manager, 20, abstract).state.params),
                              jax.device_get(by_step[20].params))
  with pytest.raises(CheckpointError, match=r'no checkpoint of step 15; it keeps steps 10, 20, 30\.'):
    checkpoints.restore_step(manager, 15, abstract)
  DAMAGE['flipped bytes'](tmp_path / 'checkpoints' / '20')
  with pytest.raises(CheckpointError, match=r'checkpoints/20 could not be restored \(.*\): it is damaged'):
    checkpoints.restore_step(manager, 20, abstract)
  assert sorted(manager.all_steps()) == [10, 20, 30]  # A chosen step's damage moves nothing.
  manager.close()


def test_setting_aside_moves_only_the_newer_checkpoints(states, tmp_path):
  _, _, by_step = states
  manager = _save_all(tmp_path, by_step.values())
  moved = checkpoints.set_aside_newer(manager, 10)
  assert sorted(manager.all_steps()) == [10]
  assert sorted(p.name.split('-')[0] for p in moved) == ['20', '30']
  assert all(p.parent == tmp_path / checkpoints.SUPERSEDED_DIR and (p / 'state').is_dir() for p in moved)
  assert checkpoints.set_aside_newer(manager, 10) == []
  manager.close()


def test_the_best_checkpoint_is_replaced_only_by_a_better_validation(states, tmp_path):
  _, experiment, by_step = states
  best = checkpoints.make_manager(tmp_path, 1, checkpoints.BEST_DIR)
  assert checkpoints.best_so_far(best) is None
  assert not checkpoints.save_if_best(best, by_step[10], 1.0, psnr=float('nan'))  # It renders NaN: not kept.
  assert checkpoints.save_if_best(best, by_step[10], 1.0, psnr=20.0)
  assert not checkpoints.save_if_best(best, by_step[20], 2.0, psnr=20.0)  # Not better: kept as it was.
  assert checkpoints.save_if_best(best, by_step[30], 3.0, psnr=21.5)
  best.wait_until_finished()
  assert checkpoints.best_so_far(best) == checkpoints.BestCheckpoint(30, 21.5) and best.all_steps() == [30]
  # A run resumed from an older checkpoint validates step 20 again, better: the later best is set aside.
  assert checkpoints.save_if_best(best, by_step[20], 2.0, psnr=22.0)
  best.wait_until_finished()
  assert checkpoints.best_so_far(best) == checkpoints.BestCheckpoint(20, 22.0)
  assert [p.name.split('-')[:2] for p in (tmp_path / checkpoints.SUPERSEDED_DIR).iterdir()] == [['best_checkpoint', '30']]
  abstract = experiment_lib.abstract_state(experiment, seed=0)
  chex.assert_trees_all_equal(jax.device_get(checkpoints.restore_step(best, 20, abstract).state.params),
                              jax.device_get(by_step[20].params))
  best.close()


@pytest.fixture(scope='module')
def trained(tmp_path_factory, scene_cache):
  """20 steps of the tiny model, checkpoints every 5, keep_best with scripted validation PSNRs (best at
  step 10), and the final state."""
  config = small_mlp_config(scene_cache, checkpoint_every=5, keep_best=True)
  config.eval.every_steps = 5
  workdir = tmp_path_factory.mktemp('trained')
  scripted = {5: 20.0, 10: 23.0, 15: 22.0, 20: 21.0}  # (Rendering them is other tests' business.)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(trainer, '_validate', lambda *args: {'psnr': scripted[args[6]]})  # args[6]: the step.
    result = trainer.run_training(config, workdir)
  return config, workdir, jax.device_get(result.state)


def test_keep_best_keeps_the_best_validation_beside_the_newest(trained):
  _, workdir, final = trained
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()) == [5, 10, 15, 20]
  assert [p.name for p in (workdir / checkpoints.BEST_DIR).iterdir()] == ['10']
  _, _, best = experiment_lib.restore_model(workdir, step=checkpoints.BEST)
  _, _, step_10 = experiment_lib.restore_model(workdir, step=10)
  assert int(best.step) == 10
  chex.assert_trees_all_equal(jax.device_get(best.params), jax.device_get(step_10.params))
  _, _, newest = experiment_lib.restore_model(workdir)
  chex.assert_trees_all_equal(jax.device_get(newest.params), final.params)
  summary = render.render_split(workdir, split_name='val', limit=1, step=checkpoints.BEST)
  assert summary['step'] == 10 and summary['out_dir'].endswith('val_10_first1')  # The first of 2 views.


def test_resuming_from_a_chosen_step_sets_the_newer_aside_and_retrains_them_alike(trained, tmp_path):
  config, workdir, final = trained
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  with pytest.MonkeyPatch.context() as patch:  # Refused before the data loads.
    patch.setattr(trainer.datasets, 'load_split', lambda *args: pytest.fail('the data was loaded'))
    with pytest.raises(CheckpointError, match='--resume_step=7: .*no checkpoint of step 7; it keeps steps 5, '
                                              '10, 15, 20'):
      trainer.run_training(config, copy, resume_step=7)
    with pytest.raises(ConfigError, match=r'--resume_step=-3: expected the step of a kept checkpoint'):
      trainer.run_training(config, copy, resume_step=-3)
  config = small_mlp_config(config.data_dir, checkpoint_every=5)  # Without keep_best: its checkpoint is set aside too.
  config.eval.every_steps = 5
  summary = trainer.train_and_evaluate(config, copy, resume_step=5)
  assert summary['resumed_from'] == 5 and summary['step'] == 20
  superseded = sorted(p.name.split('-2')[0] for p in (copy / checkpoints.SUPERSEDED_DIR).iterdir())
  assert superseded == ['10', '15', '20', 'best_checkpoint-10']
  assert not list((copy / checkpoints.BEST_DIR).iterdir())
  _, _, state = experiment_lib.restore_model(copy)
  chex.assert_trees_all_close(jax.device_get(state.params), final.params, rtol=1e-5, atol=1e-7)


def test_resuming_from_the_best_checkpoint_sets_the_newer_aside(trained, tmp_path, monkeypatch):
  config, workdir, _ = trained
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  config = small_mlp_config(config.data_dir, checkpoint_every=5, keep_best=True, num_steps=15)
  config.eval.update(every_steps=5, final_num_images=0)
  monkeypatch.setattr(trainer, '_validate', lambda *args: {'psnr': 20.0})  # Worse than the best, 23 dB.
  summary = trainer.train_and_evaluate(config, copy, resume_step=checkpoints.BEST)
  assert summary['resumed_from'] == 10 and summary['step'] == 15
  assert sorted(p.name.split('-2')[0] for p in (copy / checkpoints.SUPERSEDED_DIR).iterdir()) == ['15', '20']
  assert checkpoints.kept_steps(copy) == [5, 10, 15] and checkpoints.kept_steps(copy, checkpoints.BEST_DIR) == [10]
  shutil.rmtree(copy / checkpoints.BEST_DIR)
  monkeypatch.setattr(trainer.datasets, 'load_split', lambda *args: pytest.fail('the data was loaded'))
  with pytest.raises(CheckpointError, match='--resume_step=best: .* keeps no best checkpoint'):
    trainer.run_training(config, copy, resume_step=checkpoints.BEST)


def test_a_run_starts_from_another_workdirs_parameters_of_the_same_model_only(trained, tmp_path, capsys):
  config, workdir, final = trained
  config = small_mlp_config(config.data_dir, init_from=str(workdir), num_steps=1)
  experiment = experiment_lib.build_experiment(config)
  state = experiment_lib.init_state_from(experiment, config, workdir)
  assert int(state.step) == 0
  chex.assert_trees_all_equal(jax.device_get(state.params), final.params)
  chex.assert_trees_all_equal(jax.device_get(state.model_state), final.model_state)
  fresh_opt = jax.device_get(experiment_lib.init_state(experiment, seed=0).opt_state)
  chex.assert_trees_all_equal(jax.device_get(state.opt_state), fresh_opt)  # A new optimizer.

  other = small_mlp_config(config.data_dir, init_from=str(workdir))
  other.model.mlp.width = 8
  with pytest.raises(ConfigError, match=r"init_from=.*its model does not match this config's: "
                                        r"params\['coarse_field'\]\['bottleneck'\]\['bias'\] is shape \(32,\) "
                                        r"float32 there and shape \(8,\) float32 here \(differing settings: "
                                        r"model.mlp.width\)"):
    trainer.run_training(other, tmp_path / 'other')
  assert not (tmp_path / 'other').exists()  # Nor the checkpoints/ folder that its manager made.
  same_arrays = small_mlp_config(config.data_dir, init_from=str(workdir))
  same_arrays.model.density_activation = 'softplus'
  experiment_lib.init_state_from(experiment_lib.build_experiment(same_arrays), same_arrays, workdir)
  assert 'config.model.density_activation differ from this run\'s; their arrays agree' in capsys.readouterr().err
  for source, expected in ((tmp_path / 'nowhere', 'is not a training workdir'),
                           (tmp_path, 'holds no checkpoint to start from')):
    (tmp_path / checkpoints.CONFIG_FILE).write_text(config.to_json())
    with pytest.raises(ConfigError, match=f"config.train.init_from='{source}'.*{expected}"):
      experiment_lib.init_state_from(experiment, config, source)
  best = small_mlp_config(config.data_dir, init_from=str(workdir), init_from_step='best')
  _, _, step_10 = experiment_lib.restore_model(workdir, step=10)
  chex.assert_trees_all_equal(jax.device_get(experiment_lib.init_state_from(experiment, best, workdir).params),
                              jax.device_get(step_10.params))
  missing = small_mlp_config(config.data_dir, init_from=str(workdir), init_from_step='7')
  with pytest.raises(ConfigError, match='no checkpoint of step 7; it keeps steps 5, 10, 15, 20'):
    experiment_lib.init_state_from(experiment, missing, workdir)


def test_keep_best_without_validation_is_refused():
  config = tiny_config(keep_best=True)  # tiny_config validates never (eval.every_steps=0).
  with pytest.raises(ConfigError, match='keep_best=True keeps the checkpoint of the best validation'):
    config_checks.check_values(config)
  config.eval.at_train_seconds = (10.0,)
  config_checks.check_values(config)
  config.train.init_from_step = 'latest'
  with pytest.raises(ConfigError, match="config.train.init_from_step='latest': expected 'newest', 'best' or a"):
    config_checks.check_values(config)


def test_render_py_step_flag_refuses_what_is_not_a_step(tmp_path):
  for args, expected in ((['--step=last'], "--step=last: expected a checkpoint's step"),
                         (['--step=3', f'--packed={tmp_path}/m.npz'], '--step chooses a checkpoint of a workdir'),
                         (['--path=orbit', '--min_size=-1'], '--min_size=-1: expected a number of pixels >= 0')):
    result = subprocess.run([sys.executable, 'render.py', *args], cwd=REPO, capture_output=True, text=True,
                            env=subprocess_env(), timeout=120)
    assert result.returncode != 0 and expected in result.stderr, result.stderr
