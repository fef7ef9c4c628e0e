"""benchmarks/quality_vs_time.py, benchmarks/throughput.py and benchmarks/mesh_accuracy.py: bad flags, files
and workdirs are refused with one line naming the flag and what it expects."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest
from absl import flags

from jaxnerf import cli
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.tiny_configs import tiny_config


def _benchmark(name):
  spec = importlib.util.spec_from_file_location(name, pathlib.Path(REPO) / 'benchmarks' / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


quality_vs_time = _benchmark('quality_vs_time')
mesh_accuracy = _benchmark('mesh_accuracy')


def test_seconds_are_positive_numbers():
  assert quality_vs_time.parse_seconds('60,15, 30,15') == [15.0, 30.0, 60.0]
  assert quality_vs_time.parse_seconds(['2.5']) == [2.5]
  for bad in ('abc', '-5', '0', 'nan', 'inf', '15,,30'):
    with pytest.raises(ValueError, match='is not a positive number of seconds; expected positive numbers of '
                                         r'seconds separated by commas, e.g. --seconds=15,30,60\.'):
      quality_vs_time.parse_seconds(bad)


@pytest.mark.parametrize('argument, bad', [('abc', 'abc'), ('-5', '-5'), ('30,x', 'x')])
def test_a_bad_seconds_flag_is_one_line_naming_it(argument, bad):
  flag_values = flags.FlagValues()
  flags.DEFINE(quality_vs_time._SecondsParser(), 'seconds', '15,30', 'Training times.', flag_values=flag_values,
               serializer=flags.CsvListSerializer(','))
  assert flag_values['seconds'].value == [15.0, 30.0]
  with pytest.raises(flags.IllegalFlagValueError) as raised:
    flag_values(['quality_vs_time.py', f'--seconds={argument}'])
  assert cli.flag_error_message(raised.value) == (
      f"--seconds={argument}: '{bad}' is not a positive number of seconds; expected positive numbers of seconds "
      'separated by commas, e.g. --seconds=15,30,60.')


def test_the_workdir_must_be_writable_and_fresh(tmp_path):
  assert quality_vs_time.prepare_workdir(tmp_path / 'new' / 'run') == tmp_path / 'new' / 'run'
  (tmp_path / 'file').write_text('')
  with pytest.raises(WorkdirError, match=r'^--workdir .*file/run cannot be created: a part of its path is a file'):
    quality_vs_time.prepare_workdir(tmp_path / 'file' / 'run')
  (tmp_path / 'old').mkdir()
  (tmp_path / 'old' / 'metrics.jsonl').write_text(json.dumps({'step': 1, 'split': 'train'}) + '\n')
  with pytest.raises(ConfigError, match='^--workdir=.*old already holds a run; the benchmark needs a fresh'):
    quality_vs_time.prepare_workdir(tmp_path / 'old')


def test_a_run_that_scores_nothing_at_its_budget_is_refused(tmp_path):
  config = tiny_config()
  config.eval.final_num_images = 0
  with pytest.raises(ConfigError, match=r'^config.eval.final_num_images=0: .*expected -1 \(all\) or a positive'):
    quality_vs_time.run(config, tmp_path / 'run', [1.0], 1)
  assert not (tmp_path / 'run').exists()


def test_quality_points_carry_the_region_normal_and_depth_scores_where_the_scene_has_them():
  val_record = {'step': 5, 'psnr': 20.0, 'psnr_shiny': 18.0, 'normal_mae_deg_mirror': 30.0, 'depth_mae': 0.1,
                'ssim': 0.9}
  assert quality_vs_time._ground_truth_scores(val_record) == {  # pylint: disable=protected-access
      'val_psnr_shiny': 18.0, 'val_normal_mae_deg_mirror': 30.0, 'val_depth_mae': 0.1}
  summary = {'val_psnr': 21.0, 'val_psnr_matte': 25.0, 'val_normal_mae_deg': 20.0, 'psnr': 19.0}
  assert quality_vs_time._ground_truth_scores(summary, 'val_') == {  # pylint: disable=protected-access
      'val_psnr_matte': 25.0, 'val_normal_mae_deg': 20.0}


def test_throughput_refuses_a_count_below_one():
  result = subprocess.run([sys.executable, str(pathlib.Path(REPO) / 'benchmarks' / 'throughput.py'), '--steps=0'],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=subprocess_env(1))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == ['error: --steps=0: 0 is not a positive integer']


def test_mesh_accuracy_refuses_what_would_measure_nothing(tmp_path):
  for points, within, expected in ((0, 0.02, '--mesh_points=0: expected a positive number'),
                                   (10, -1.0, '--within=-1.0: expected a positive, finite distance'),
                                   (10, float('nan'), '--within=nan')):
    with pytest.raises(ConfigError, match=expected):
      mesh_accuracy.check_flags(points, within)
  mesh_accuracy.check_flags(10, 0.02)
  with pytest.raises(ConfigError, match=r'--mesh=.*absent.ply does not exist or is not a file'):
    mesh_accuracy.load_mesh(str(tmp_path / 'absent.ply'))
  (tmp_path / 'text.ply').write_text('hello')
  with pytest.raises(ConfigError, match=r'--mesh=.*text.ply is not a mesh or point cloud that trimesh reads'):
    mesh_accuracy.load_mesh(str(tmp_path / 'text.ply'))
  (tmp_path / 'one.obj').write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n')
  vertices, faces = mesh_accuracy.load_mesh(str(tmp_path / 'one.obj'))
  assert vertices.shape == (3, 3) and faces.tolist() == [[0, 1, 2]]
