"""The Python API (jaxnerf/api.py) and its example (examples/notebook.py): configs by file with checked
overrides, and the example run from another directory, whose figures must agree with each other (the
summary's val PSNR, the same views scored again in memory, one view rendered from its pose and scored by
hand); and pyproject.toml installs the whole package with requirements.txt's dependencies."""

import json
import re
import pathlib
import subprocess
import sys
import tomllib

import pytest

from jaxnerf import api
from jaxnerf.errors import ConfigError
from tests.conftest import REPO
from tests.conftest import subprocess_env


def test_load_config_reads_a_file_with_its_preset_and_overrides_and_locks_it():
  config = api.load_config(f'{REPO}/configs/demo_glossy.py:ref', {'train.batch_size': 512, 'model.dtype': 'float16'})
  assert (config.model.appearance, config.train.batch_size, config.model.dtype) == ('refnerf', 512, 'float16')
  assert config.procedural.layout == 'glossy'
  with pytest.raises(AttributeError):
    config.new_key = 1  # Locked, as train.py's config is.
  assert api.load_config().model.name == 'nerf'  # No file: the library's default, the paper's NeRF.
  path_before = list(sys.path)
  api.load_config(f'{REPO}/configs/demo_mirror.py')  # Imports configs.demo_glossy, configs.lego_proposal...
  assert sys.path == path_before  # ...with the repository importable only while it loads.


@pytest.mark.parametrize('path, overrides, message', [
    ('configs/no_such.py', {}, 'configs/no_such.py does not exist'),
    ('configs/demo.py:shiny', {}, "Unknown preset 'shiny'"),
    ('configs/demo.py', {'train.batchsize': 4}, "no key 'train.batchsize'"),
    ('configs/demo.py', {'trian.batch_size': 4}, "no key 'trian.batch_size'"),
    ('configs/demo.py', {'train.batch_size': 'many'}, 'train.batch_size='),
])
def test_load_config_refuses_bad_input_naming_it(path, overrides, message):
  with pytest.raises(ConfigError, match=message.replace('.', r'\.')):
    api.load_config(f'{REPO}/{path}', overrides)


def test_the_example_trains_loads_scores_and_renders_from_another_directory(tmp_path):
  # From another directory, with the repository on the path as an installed package would be. The tests' small
  # MLP config, which compiles in a fifth of the demo's time; CI runs the example on the demo after installing.
  out = subprocess.run([sys.executable, str(pathlib.Path(REPO) / 'examples' / 'notebook.py'),
                        f'--config={REPO}/tests/tiny_configs.py:mlp', f'--workdir={tmp_path / "run"}', '--steps=20',
                        '--resolution=16'],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env=subprocess_env(1))
  assert out.returncode == 0, out.stderr[-3000:]
  figures = json.loads(out.stdout.strip().splitlines()[-1])
  assert figures['step'] == 20 and figures['training_records'] >= 1
  assert figures['rescored_val_psnr'] == pytest.approx(figures['val_psnr'], abs=1e-4)
  assert figures['first_view_psnr_by_hand'] == pytest.approx(figures['first_view_psnr'], abs=1e-4)
  # More than a blank image: the white background alone scores 11.8 dB on these views, their mean colour 13.3.
  assert figures['val_psnr'] > 14.0
  assert figures['rendered_shape'] == [32, 32, 3] and figures['rendered_finite']


def test_the_example_refuses_a_bad_config_before_anything_is_written(tmp_path):
  for args, message in ((['--config=configs/no_such.py'], 'config file configs/no_such.py does not exist'),
                        (['--steps=0'], 'config.train.num_steps=0')):
    out = subprocess.run([sys.executable, str(pathlib.Path(REPO) / 'examples' / 'notebook.py'), *args,
                          f'--workdir={tmp_path / "run"}'], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=subprocess_env(1))
    assert out.returncode == 2 and message in out.stderr.splitlines()[-1], out.stderr[-2000:]
    assert not (tmp_path / 'run').exists()
  # A workdir it cannot write (a file where its folder should be): one line and status 1, not a traceback.
  (tmp_path / 'a_file').touch()
  out = subprocess.run([sys.executable, str(pathlib.Path(REPO) / 'examples' / 'notebook.py'),
                        f'--workdir={tmp_path / "a_file" / "run"}', f'--config={REPO}/tests/tiny_configs.py:mlp'],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300, env=subprocess_env(1))
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1 and len(lines) == 1, out.stderr[-2000:]
  assert lines[0].startswith('error: ') and 'a part of its path is a file' in lines[0], lines[0]


def test_the_package_installs_every_module_with_requirements_txts_dependencies():
  project = tomllib.loads((pathlib.Path(REPO) / 'pyproject.toml').read_text())
  assert project['project']['dynamic'] == ['dependencies']
  assert project['tool']['setuptools']['dynamic']['dependencies']['file'] == ['requirements.txt']
  include = project['tool']['setuptools']['packages']['find']['include']
  packages = {str(p.parent.relative_to(REPO)).replace('/', '.')
              for p in (pathlib.Path(REPO) / 'jaxnerf').rglob('__init__.py')}
  assert all(any(package == pattern or (pattern.endswith('.*') and package.startswith(pattern[:-1]))
                 for pattern in include) for package in packages), (packages, include)


def test_render_refuses_a_bad_camera_naming_what_is_wrong():
  model = object.__new__(api.TrainedModel)  # Only the checks run: they come before any rendering.
  for kwargs, message in [(dict(camtoworld=[[1.0, 0.0], [0.0, 1.0]]), 'got shape (2, 2)'),
                          (dict(camtoworld=[[float('nan')] * 4] * 3), 'finite values'),
                          (dict(camtoworld=[[0.0] * 4] * 3, width=0, height=8), 'got 0x8'),
                          (dict(camtoworld=[[0.0] * 4] * 3, width=8.5, height=8), 'got 8.5x8'),
                          (dict(camtoworld=[[0.0] * 4] * 3, width=8, height=8, focal=-1.0), 'focal length'),
                          (dict(camtoworld=[[0.0] * 4] * 3, focal=float('inf')), 'finite focal length')]:
    with pytest.raises(ConfigError, match=re.escape(message)):
      model.render(**kwargs)
