"""benchmarks/gpu_check.py: its small setting runs every step on the CPU and writes one JSON file of results;
bad flags are refused before anything runs."""

import importlib.util
import json
import math
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.conftest import subprocess_env

_SPEC = importlib.util.spec_from_file_location('gpu_check', pathlib.Path(REPO) / 'benchmarks' / 'gpu_check.py')
gpu_check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gpu_check)


def _run(*args):
  return subprocess.run([sys.executable, 'benchmarks/gpu_check.py', *args], cwd=REPO, capture_output=True,
                        text=True, env=subprocess_env(), timeout=600)


def test_peaks_are_looked_up_by_device_kind_and_dtype():
  assert gpu_check.peak_tflops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989.4
  assert gpu_check.peak_tflops('NVIDIA H100 PCIe', 'float16') == 756.0  # Not the SXM part's.
  assert gpu_check.peak_tflops('Tesla T4', 'float16') == 65.0
  assert gpu_check.peak_tflops('Tesla T4', 'bfloat16') is None  # No bfloat16 tensor cores.
  assert gpu_check.peak_tflops('cpu', 'float32') is None


def test_bad_flags_are_refused_before_anything_runs(tmp_path):
  for args, expected in ((['--steps=devices,warp'], "--steps: unknown step 'warp'"),
                         (['--dtypes=float32,int8'], "--dtypes: unknown dtype 'int8'"),
                         (['--train_seconds=-1'], '--train_seconds=-1.0: expected a positive number'),
                         ([], 'the following arguments are required: --out')):
    result = _run(*args, *([f'--out={tmp_path}/r.json'] if args else []))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
  result = _run(f'--out={tmp_path}/missing/r.json')
  assert result.returncode == 2 and 'does not exist or is not writable' in result.stderr
  assert not list(tmp_path.iterdir())


def test_a_folder_as_out_is_refused_before_the_first_step(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(gpu_check, 'STEPS', {'devices': lambda args: pytest.fail('a step ran')})
  with pytest.raises(SystemExit) as raised:
    gpu_check.main([f'--out={tmp_path}', '--steps=devices'])
  assert raised.value.code == 2
  assert f'--out={tmp_path} is a directory; expected the path of the JSON file' in capsys.readouterr().err


def test_the_small_setting_runs_every_step_on_the_cpu(tmp_path):
  # One dtype: the others run the same code with another flag (test_utilisation_... goes through all three).
  out = tmp_path / 'gpu_check.json'
  result = _run('--small', '--dtypes=bfloat16', f'--out={out}')
  assert result.returncode == 0, result.stdout + result.stderr
  assert json.loads(result.stdout.strip().splitlines()[-1])['failed'] == []
  results = json.loads(out.read_text())
  devices = results['devices']['result']
  assert devices['backend'] == 'cpu' and devices['count'] >= 1 and devices['jax']
  assert results['device_tests']['counts']['passed'] >= 1 and 'failed' not in results['device_tests']['counts']
  rendered = results['training']['render']['result']
  assert rendered['split'] == 'test' and math.isfinite(rendered['mean']['psnr'])
  assert results['training']['train']['result']['train_seconds'] >= 3.0
  assert set(results['chair_throughput']) == {'ok', 'bfloat16'}
  measured = results['chair_throughput']['bfloat16']
  assert measured['result']['dtype'] == 'bfloat16' and measured['result']['train_rays_per_second'] > 0
  assert measured['result']['train_step_flops_per_device'] > 0
  assert measured['flop_utilisation'] is None and measured['peak_tflops'] is None  # No peak for a CPU.


def test_utilisation_is_the_achieved_rate_over_the_peak(monkeypatch):
  commands = []

  def fake_run(command, timeout, keep_tail=False):
    commands.append(command)
    return {'ok': True, 'result': {'device_kind': 'NVIDIA H200', 'train_tflops_per_second_per_device': 98.94}}

  monkeypatch.setattr(gpu_check, '_run', fake_run)
  args = type('Args', (), {'small': True, 'dtypes': ','.join(gpu_check.DTYPES)})()
  measured = gpu_check.chair_throughput_step(args)
  assert [c for command in commands for c in command if c.startswith('--config.model.dtype=')] == [
      f'--config.model.dtype={dtype}' for dtype in gpu_check.DTYPES]
  assert measured['ok'] and measured['bfloat16']['flop_utilisation'] == pytest.approx(0.1)
  assert measured['float32']['flop_utilisation'] == pytest.approx(98.94 / 494.7)
