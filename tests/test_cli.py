"""train.py and render.py as a user runs them: bad input fails with one line naming the key or file, no
traceback; render.py finds the newest workdir and the split to render by itself."""

import importlib
import inspect
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags
from PIL import Image

from configs import chair
from configs import chair_ngp
from configs import default
from configs import demo
from configs import lego
from configs import lego_ngp
from jaxnerf import cli
from jaxnerf.commands import render
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import DatasetError
from jaxnerf.outputs import reporting
from jaxnerf.training import checkpoints
from jaxnerf.training import trainer
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.scenes import write_blender_scene
from tests.tiny_configs import small_mlp_config


def run(script, *args, cwd=REPO):
  return subprocess.run([sys.executable, str(pathlib.Path(REPO) / script), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=300, env=subprocess_env(1))


def assert_one_line_error(result, *fragments):
  assert result.returncode != 0, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), result.stderr
  for fragment in fragments:
    assert fragment in lines[0], (fragment, lines[0])


def test_mistyped_config_key_is_one_line_with_the_suggestion(tmp_path):
  result = run('train.py', f'--workdir={tmp_path}', '--config.train.batchsize=1')
  assert_one_line_error(result, '--config.train.batchsize', 'Did you mean "batch_size"')
  result = run('train.py', '--config=configs/lego_ngp.py:cpu', f'--workdir={tmp_path}',
               '--config.optim.lr_intt=1')
  assert_one_line_error(result, '--config.optim.lr_intt', 'Did you mean "lr_init"')


def test_wrongly_typed_override_is_one_line_naming_it(tmp_path):
  result = run('train.py', f'--workdir={tmp_path}', '--config.train.num_steps=many')
  assert_one_line_error(result, '--config.train.num_steps=many', "invalid literal for int()")


def test_missing_config_file_and_unknown_preset_are_one_line(tmp_path):
  result = run('train.py', '--config=configs/nope.py', f'--workdir={tmp_path}')
  assert_one_line_error(result, '--config=configs/nope.py', 'No such file')
  result = run('train.py', '--config=configs/lego_ngp.py:gpu', f'--workdir={tmp_path}')
  assert_one_line_error(result, "Unknown preset 'gpu'", "use '' (full resolution) or 'cpu'")


def _config_file_message(argument):
  """cli.flag_error_message for --config=`argument`, parsed as train.py parses it (in-process)."""
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'Configuration file.', flag_values=flag_values)
  argv = ['train.py', f'--config={argument}']
  try:
    flag_values(argv)
    flag_values.config.keys()  # A config that failed to load raises on first use.
  except Exception as e:  # pylint: disable=broad-except  # Whatever loading it raised.
    return cli.flag_error_message(e, argv)
  raise AssertionError(f'{argument} loaded')


def test_a_config_file_that_is_not_one_says_what_a_config_file_is(tmp_path, monkeypatch):
  monkeypatch.chdir(REPO)
  expected = 'expected a Python file whose get_config() returns the config, as configs/demo.py does'
  assert _config_file_message('README.md').startswith('--config=README.md: README.md is not a Python file (line ')
  assert expected in _config_file_message('README.md')
  (tmp_path / 'c.json').write_text('{"a": 1}')  # Python, but no get_config().
  assert _config_file_message(str(tmp_path / 'c.json')) == (
      f'--config={tmp_path}/c.json: {tmp_path}/c.json defines no get_config(); {expected}.')
  (tmp_path / 'c2.json').write_text('{"a": true}')
  assert _config_file_message(str(tmp_path / 'c2.json')) == (
      f"--config={tmp_path}/c2.json: the config file cannot be loaded: line 1: NameError: name 'true' is not "
      f'defined ({expected}).')
  assert _config_file_message('configs/lego_ngp.py:nosuch') == (
      "--config=configs/lego_ngp.py:nosuch: Unknown preset 'nosuch' for configs/lego_ngp.py: use '' (full "
      "resolution) or 'cpu'.")


@pytest.mark.parametrize('path', sorted(pathlib.Path(REPO, 'configs').glob('[!_]*.py')), ids=lambda p: p.name)
def test_an_unknown_preset_is_named_in_the_configs_own_file(path):
  module = importlib.import_module(f'configs.{path.stem}')
  if not inspect.signature(module.get_config).parameters:
    return  # No presets: cli says so.
  with pytest.raises(ValueError, match=rf"Unknown preset 'nosuch' for configs/{path.name}: use "):
    module.get_config('nosuch')


def test_checkpoint_step_flags_take_a_step_or_best(capsys):
  assert [cli.checkpoint_step('--step', v) for v in (None, '0', '30', 'best')] == [None, 0, 30, 'best']
  assert checkpoints.BEST == 'best'
  for bad in ('-1', 'last', '3.0'):
    with pytest.raises(SystemExit) as raised:
      cli.checkpoint_step('--resume_step', bad)
    assert raised.value.code == 2
    assert f"--resume_step={bad}: expected a checkpoint's step (a number >= 0) or 'best'" in capsys.readouterr().err


def test_out_of_range_value_is_one_line_naming_the_key(tmp_path):
  result = run('train.py', f'--workdir={tmp_path}', '--config.train.num_steps=-3')
  assert_one_line_error(result, 'config.train.num_steps=-3: expected a positive integer')
  assert not (tmp_path / 'checkpoints').exists()


def test_missing_scene_says_where_to_get_it(tmp_path):
  result = run('train.py', '--config=configs/chair.py', f'--config.data_dir={tmp_path / "chair"}',
               f'--workdir={tmp_path / "run"}')
  assert_one_line_error(result, 'chair does not exist', 'nerf_synthetic', '--config.data_dir')
  assert result.returncode == 1


def test_render_without_a_trained_workdir_fails_clearly(tmp_path):
  assert_one_line_error(run('render.py', f'--workdir={tmp_path}'), 'config.json does not exist')
  checkpoints.save_config(tmp_path, demo.get_config())  # A run that died before its first checkpoint.
  assert_one_line_error(run('render.py', f'--workdir={tmp_path}'), 'No checkpoint in', 'train there first')
  assert_one_line_error(run('render.py', cwd=tmp_path), 'No trained workdir under runs/')


def test_train_py_locks_the_config():
  """A locked config refuses new fields; train.py's is locked after its flags are parsed."""
  code = ('import sys; sys.argv = ["train.py"]; import train; from absl import flags; flags.FLAGS(sys.argv); '
          'print(train._CONFIG.value.is_locked)')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=subprocess_env(1))
  assert result.stdout.strip() == 'True', result.stderr[-2000:]


def test_variants_build_on_default():
  variants = [demo.get_config(), chair.get_config(), lego.get_config(), chair_ngp.get_config(),
              chair_ngp.get_config('cpu'), lego_ngp.get_config(), lego_ngp.get_config('cpu')]
  for variant in variants:
    assert variant.to_dict().keys() == default.get_config().to_dict().keys()
    assert variant.model.to_dict().keys() == default.get_config().model.to_dict().keys()
  assert lego_ngp.get_config('cpu').factor == 8 and lego_ngp.get_config().factor == 1


def test_saved_config_round_trips(tmp_path):
  config = demo.get_config()
  checkpoints.save_config(tmp_path, config)
  assert checkpoints.load_config(tmp_path).to_dict() == config.to_dict()


def test_render_py_alone_renders_the_newest_workdir_and_names_the_scene(scene_cache, tmp_path):
  older, newer = tmp_path / 'runs' / 'older', tmp_path / 'runs' / 'newer'
  config = small_mlp_config(scene_cache, num_steps=2, checkpoint_every=2)
  config.eval.final_num_images = 0
  trainer.train_and_evaluate(config, older)
  shutil.copytree(older, newer)
  os.utime(older / 'checkpoints' / '2', (1e9, 1e9))  # Trained long ago.
  result = run('render.py', cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'Rendering runs/newer' in result.stderr
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary['split'] == 'test' and summary['num_images'] == 2  # The tiny scene has a test split.
  scene = pathlib.Path(summary['scene_dir']).name
  assert pathlib.Path(summary['out_dir']) == pathlib.Path('runs/newer/render') / scene / 'test_2'
  assert (tmp_path / summary['out_dir'] / 'metrics.json').exists()
  assert render.newest_workdir(tmp_path / 'runs') == newer


def test_render_defaults_to_val_where_there_is_no_test_split(tmp_path, capsys):
  directory, _ = write_blender_scene(tmp_path / 'scene', splits=('train', 'val'))
  config = demo.get_config()
  config.dataset, config.data_dir = 'blender', str(directory)
  assert render._split_to_render(config, None, None) == 'val'  # pylint: disable=protected-access
  assert 'no test split: rendering the val split' in capsys.readouterr().err
  assert render._split_to_render(config, 'train', None) == 'train'  # pylint: disable=protected-access


def test_newest_workdir_needs_a_checkpoint(tmp_path):
  checkpoints.save_config(tmp_path / 'runs' / 'untrained', demo.get_config())
  with pytest.raises(CheckpointError, match='No trained workdir under'):
    render.newest_workdir(tmp_path / 'runs')
  assert reporting.read_metrics(tmp_path / 'runs' / 'untrained') == []


def test_render_reads_another_scene_of_another_image_size_and_names_a_missing_split(tmp_path):
  trained_on, _ = write_blender_scene(tmp_path / 'trained_on', size=(8, 6))
  other, _ = write_blender_scene(tmp_path / 'other' / 'trained_on', size=(11, 7), splits=('train', 'val'))
  config = small_mlp_config(num_steps=2, checkpoint_every=2)  # What is checked is the scene, not the field.
  config.dataset, config.data_dir = 'blender', str(trained_on)
  config.eval.final_num_images = 0
  trainer.train_and_evaluate(config, tmp_path / 'run')
  summary = render.render_split(tmp_path / 'run', 'val', data_dir=str(other))
  assert summary['num_images'] == 3 and summary['scene_dir'] == str(other)
  out_dir = pathlib.Path(summary['out_dir'])
  assert out_dir.parent.name.startswith('trained_on-')  # Same name, other directory: its own folder.
  with Image.open(out_dir / 'r_0.png') as image:
    assert image.size == (11, 7)
  with pytest.raises(DatasetError, match="transforms_test.json"):
    render.render_split(tmp_path / 'run', 'test', data_dir=str(other))
