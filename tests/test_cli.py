"""train.py and render.py as a user runs them: bad input fails with a message naming the key or file."""

import pathlib
import subprocess
import sys

import pytest

from configs import chair
from configs import chair_ngp
from configs import default
from configs import demo
from configs import lego
from configs import lego_ngp
from jaxnerf import checkpoints

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(script, *args):
  return subprocess.run([sys.executable, script, *args], cwd=REPO, capture_output=True, text=True,
                        timeout=300)


def test_unknown_config_key_fails_naming_it(tmp_path):
  result = run('train.py', f'--workdir={tmp_path}', '--config.train.batch_sise=64')
  assert result.returncode != 0
  assert 'batch_sise' in result.stderr


def test_wrongly_typed_override_fails_naming_it(tmp_path):
  result = run('train.py', f'--workdir={tmp_path}', '--config.train.num_steps=many')
  assert result.returncode != 0
  assert 'num_steps' in result.stderr


def test_missing_scene_says_where_to_get_it(tmp_path):
  result = run('train.py', '--config=configs/chair.py', f'--config.data_dir={tmp_path / "chair"}',
               f'--workdir={tmp_path / "run"}')
  assert result.returncode == 1
  assert 'chair does not exist' in result.stderr and 'nerf_synthetic' in result.stderr
  assert '--config.data_dir' in result.stderr and 'Traceback' not in result.stderr


def test_render_without_checkpoint_fails_clearly(tmp_path):
  result = run('render.py', f'--workdir={tmp_path}')
  assert result.returncode == 1
  assert 'config.json does not exist' in result.stderr and 'Traceback' not in result.stderr


def test_configs_are_locked_and_variants_build_on_default():
  config = demo.get_config()
  config.lock()
  with pytest.raises(AttributeError):
    config.train.batch_sise = 3
  variants = [demo.get_config(), chair.get_config(), lego.get_config(), chair_ngp.get_config(),
              chair_ngp.get_config('cpu'), lego_ngp.get_config(), lego_ngp.get_config('cpu')]
  for variant in variants:
    assert variant.to_dict().keys() == default.get_config().to_dict().keys()
    assert variant.model.to_dict().keys() == default.get_config().model.to_dict().keys()
  assert lego_ngp.get_config('cpu').factor == 8 and lego_ngp.get_config().factor == 1
  with pytest.raises(ValueError, match="Unknown preset 'gpu'"):
    lego_ngp.get_config('gpu')


def test_saved_config_round_trips(tmp_path):
  config = demo.get_config()
  checkpoints.save_config(tmp_path, config)
  assert checkpoints.load_config(tmp_path).to_dict() == config.to_dict()
