"""kill -9, and SIGTERM twice in a row, of a real training process at random moments (between steps, while an
asynchronous checkpoint is being written): each time, the next run resumes from the newest complete
checkpoint, and the run ends with the parameters of one that was never interrupted."""

import pathlib
import re
import signal
import subprocess
import sys
import time

import chex
import jax
import numpy as np

from jaxnerf.outputs import reporting
from jaxnerf.training import experiment as experiment_lib
from jaxnerf.training import trainer
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.tiny_configs import small_mlp_config

NUM_STEPS = 50
TRAIN = dict(num_steps=NUM_STEPS, checkpoint_every=3, log_every=3)


def _step_folders(workdir: pathlib.Path):
  folder = workdir / 'checkpoints'
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _train_command(scene_cache, workdir):
  overrides = [f'--config.train.{k}={v}' for k, v in TRAIN.items()]
  return [sys.executable, 'train.py', '--config=tests/tiny_configs.py:mlp', f'--config.data_dir={scene_cache}',
          '--config.eval.final_num_images=0', f'--workdir={workdir}', *overrides]


def _wait_for_new_checkpoint(process, workdir, newest, timeout=120.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    if (_step_folders(workdir) or [-1])[-1] > newest:
      return
    time.sleep(0.02)


def test_killed_at_random_moments_resumes_and_ends_as_if_never_killed(scene_cache, tmp_path):
  workdir = tmp_path / 'killed'
  rng = np.random.default_rng(2026)
  runs = []  # (the newest checkpoint folder before a run, the run's stderr)
  for stop in ('kill', 'sigterm twice'):
    newest = (_step_folders(workdir) or [None])[-1]
    process = subprocess.Popen(_train_command(scene_cache, workdir), cwd=REPO, env=subprocess_env(2),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_new_checkpoint(process, workdir, -1 if newest is None else newest)
    time.sleep(rng.uniform(0.0, 0.6))  # Steps take tens of milliseconds; saves start every 3 steps.
    if stop == 'kill':
      process.kill()
    else:  # The second one while the first one's checkpoint is being saved: it waits for the save.
      process.send_signal(signal.SIGTERM)
      time.sleep(0.05)
      process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert 'Traceback' not in stderr, stderr[-3000:]
    if stop != 'kill':
      assert process.returncode == 130 and 'saved a checkpoint' in stderr, stderr[-3000:]
    runs.append((newest, stderr))
  newest = _step_folders(workdir)[-1]
  final = subprocess.run(_train_command(scene_cache, workdir), cwd=REPO, env=subprocess_env(2),
                         capture_output=True, text=True, timeout=300)
  assert final.returncode == 0, final.stderr[-3000:]
  runs.append((newest, final.stderr))

  # Every run after a kill resumed from the newest checkpoint folder that the kill left, intact.
  for newest, stderr in runs[1:]:
    match = re.search(r'Resuming from the checkpoint of step (\d+)', stderr)
    assert match and int(match.group(1)) == newest, (newest, stderr[-2000:])
  assert not (workdir / 'damaged_checkpoints').exists()
  assert not any('tmp' in p.name for p in (workdir / 'checkpoints').iterdir())

  # Metrics stay one record per step and split, however often the run was cut short.
  keys = [(r['step'], r['split']) for r in reporting.read_metrics(workdir)]
  assert len(keys) == len(set(keys)) and max(k[0] for k in keys) == NUM_STEPS
  # And the parameters are those of a run that was never interrupted.
  config = small_mlp_config(scene_cache, **{**TRAIN, 'checkpoint_every': NUM_STEPS})  # Saving changes nothing.
  config.eval.final_num_images = 0
  expected = trainer.run_training(config, tmp_path / 'uninterrupted').state
  _, _, state = experiment_lib.restore_model(workdir)
  assert int(state.step) == NUM_STEPS
  chex.assert_trees_all_close(jax.device_get(state.params), jax.device_get(expected.params), rtol=1e-5,
                              atol=1e-7)
