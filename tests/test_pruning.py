"""Magnitude pruning: which fields each level names, the smallest weights zeroed per layer, pruned weights held
at zero while fine-tuning, and prune.py's workflow (scores before and after, resuming)."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnerf.commands import prune
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf import models
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import pruning
from jaxnerf.training import trainer
from tests.conftest import tree_digests
from tests.tiny_configs import small_mlp_config
from tests.tiny_configs import tiny_ngp_config


def test_levels_name_each_renderers_fields():
  nerf, proposal = models.NeRF.LEVEL_FIELDS, models.ProposalNeRF.LEVEL_FIELDS
  assert pruning.fields_of_levels(nerf, 'coarse') == ('coarse_field',)
  assert pruning.fields_of_levels(nerf, 'both') == ('coarse_field', 'fine_field')
  assert pruning.fields_of_levels(proposal, 'coarse') == ('proposal_fields',)
  assert pruning.fields_of_levels(models.MipNeRF.LEVEL_FIELDS, 'both') == ('field',)  # One shared field.
  with pytest.raises(ValueError, match='no coarse level'):
    pruning.fields_of_levels(models.OccupancyGridNeRF.LEVEL_FIELDS, 'coarse')


def _params():
  rng = np.random.default_rng(0)
  return {'coarse_field': {'trunk_0': {'kernel': rng.normal(size=(8, 6)), 'bias': rng.normal(size=6)},
                           'table_0': rng.normal(size=(16, 2))},
          'proposal_fields_1': {'density': {'kernel': rng.normal(size=(6, 1)), 'bias': rng.normal(size=1)}},
          'fine_field': {'trunk_0': {'kernel': rng.normal(size=(8, 6)), 'bias': rng.normal(size=6)}}}


def test_magnitude_pruning_zeroes_the_smallest_weights_of_each_chosen_kernel():
  params = _params()
  pruned = pruning.prune_by_magnitude(params, ('coarse_field', 'proposal_fields'), 0.25)
  for field, layer in (('coarse_field', 'trunk_0'), ('proposal_fields_1', 'density')):
    kernel, result = params[field][layer]['kernel'], pruned[field][layer]['kernel']
    num_pruned = round(0.25 * kernel.size)
    assert np.count_nonzero(result == 0) == num_pruned
    smallest = np.sort(np.abs(kernel).reshape(-1))[:num_pruned]  # Brute force: the zeroed are the smallest.
    np.testing.assert_array_equal(np.sort(np.abs(kernel[result == 0])), smallest)
    np.testing.assert_array_equal(result[result != 0], kernel[result != 0])
  for unchanged in (pruned['coarse_field']['trunk_0']['bias'], pruned['coarse_field']['table_0'],
                    pruned['fine_field']['trunk_0']['kernel']):
    assert np.count_nonzero(unchanged == 0) == 0
  assert pruning.kernel_sparsity(pruned, ('coarse_field', 'proposal_fields')) == (12 + 2, 48 + 6)


def test_pruned_weights_stay_zero_under_adam():
  params = jax.tree.map(jnp.asarray, pruning.prune_by_magnitude(_params(), ('fine_field',), 0.5))
  optimizer = optax.chain(optax.adam(0.1), pruning.keep_pruned_at_zero(('fine_field',)))
  state = optimizer.init(params)
  for i in range(5):
    grads = jax.tree.map(lambda x: jnp.full_like(x, 1.0 + i), params)
    updates, state = optimizer.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    fine_before, fine_after = params['fine_field']['trunk_0']['kernel'], new['fine_field']['trunk_0']['kernel']
    np.testing.assert_array_equal(fine_after[fine_before == 0], 0)
    assert np.all(fine_after[fine_before != 0] != fine_before[fine_before != 0])
    coarse_before = params['coarse_field']['trunk_0']['kernel']
    assert np.all(new['coarse_field']['trunk_0']['kernel'] != coarse_before)  # Not pruned: all move.
    params = new


def test_prune_both_levels_then_fine_tune_resume_and_refuse_other_folders(scene_cache, tmp_path, capsys):
  workdir = tmp_path / 'trained'
  trainer.train_and_evaluate(small_mlp_config(scene_cache, num_steps=20), workdir)
  source = tree_digests(workdir)
  report = prune.prune_workdir(workdir, 'both', sparsity=0.5, finetune_steps=10, eval_images=2)
  out = tmp_path / 'trained-pruned-both-50'
  assert report['out'] == str(out) and report['step'] == 30 and report['trained_step'] == 20
  assert report['sparsity'] == pytest.approx(0.5, abs=0.01)  # Held through the fine-tuning.
  assert report['pruned_weights'] == pytest.approx(0.5 * report['kernel_weights'], abs=8)
  for key in ('psnr_before', 'psnr_pruned', 'psnr_after'):
    assert np.isfinite(report[key])
  assert report['psnr_pruned'] != report['psnr_before']  # Half of every MLP is gone.
  assert json.loads((out / prune.REPORT_FILE).read_text())['psnr_after'] == report['psnr_after']
  config, _, state = experiment_lib.restore_model(out)
  assert config.optim.pruned_levels == 'both' and int(state.step) == 30
  assert tree_digests(workdir) == source  # The source was only read.
  # Resuming: the same command continues the fine-tune instead of pruning again, and says so.
  capsys.readouterr()
  again = prune.prune_workdir(workdir, 'both', sparsity=0.5, finetune_steps=15, eval_images=2)
  assert again['step'] == 35 and again['psnr_before'] == report['psnr_before']
  assert f'Resuming in {out}: step 20 of {workdir} pruned with --prune=both --sparsity=0.5' in capsys.readouterr().err
  finished = tree_digests(out, skip=('run.lock',))  # (Whoever holds the lock writes its name there.)
  assert prune.prune_workdir(workdir, 'both', sparsity=0.5, finetune_steps=15, eval_images=2) == again
  assert 'fine-tuned to step 35 already' in capsys.readouterr().err
  assert tree_digests(out, skip=('run.lock',)) == finished
  with pytest.raises(WorkdirError, match='fine-tuned to step 35 already, beyond the step 30 that '
                                          '--finetune_steps=10 asks for'):
    prune.prune_workdir(workdir, 'both', sparsity=0.5, finetune_steps=10, eval_images=2)
  _check_prune_writes_only_into_a_workdir_of_its_own(workdir, out, tmp_path)


def _check_prune_writes_only_into_a_workdir_of_its_own(workdir, out, tmp_path):
  """prune.py --out never writes into another run, into its source, or over a prune with other flags: each is
  refused before anything is read, and nothing changes in any of the folders."""
  other = tmp_path / 'another_run'
  shutil.copytree(workdir, other)
  folders = {path: tree_digests(path) for path in (workdir, out, other)}
  refusals = {'holds another run or other files \\(checkpoints, config.json': dict(out=other),
              'is inside --workdir': dict(out=workdir / 'pruned'),
              'holds a prune with --sparsity=0.5, where this command asks for --sparsity=0.3':
                  dict(out=out, sparsity=0.3, eval_images=2),
              'holds a prune with --eval_images=2, where this command asks for --eval_images=-1': dict(out=out),
              f'holds a prune with --workdir={workdir}, where this command asks for --workdir={other}':
                  dict(out=out, workdir=other, eval_images=2)}
  for message, kwargs in refusals.items():
    kwargs = {'workdir': workdir, 'levels': 'both', 'sparsity': 0.5, 'finetune_steps': 1, **kwargs}
    with pytest.raises(WorkdirError, match=message):
      prune.prune_workdir(**kwargs)
  assert {path: tree_digests(path) for path in folders} == folders
  assert not (workdir / 'pruned').exists()
  with pytest.raises(ConfigError, match=r'--eval_images=0: expected a positive number'):
    prune.prune_workdir(workdir, 'both', eval_images=0, out=tmp_path / 'new')
  assert not (tmp_path / 'new').exists()


def test_pruning_a_level_the_model_lacks_is_refused(tmp_path):
  config = tiny_ngp_config()
  model = models.make_model(config.model, config.scene_box)
  assert experiment_lib.pruned_fields(model, 'fine') == ('field',)
  with pytest.raises(ConfigError, match=r"pruned_levels='coarse'.*no coarse level"):
    experiment_lib.pruned_fields(model, 'coarse')
  with pytest.raises(ConfigError, match='--sparsity=1.5'):  # Before anything is read.
    prune.prune_workdir(tmp_path / 'never_trained', 'fine', sparsity=1.5)
