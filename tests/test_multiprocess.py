"""Training over two processes on 127.0.0.1 (CPU, one device each, Gloo collectives): the processes agree
with each other and with one process of two devices, process 0 alone writes and reports, and the pair
resumes from its checkpoint."""

import socket
import subprocess
import sys

import chex
import jax
import numpy as np

from jaxnerf import reporting
from jaxnerf import trainer
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.tiny_configs import tiny_config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _train_pair(scene_cache, workdir, out_dir, num_steps):
  """Runs both processes to the end; returns [(stdout, stderr)] of process 0 and 1, and their params."""
  address = f'127.0.0.1:{_free_port()}'
  processes = [subprocess.Popen(
      [sys.executable, 'tests/multiprocess_worker.py', f'--coordinator_address={address}', '--num_processes=2',
       f'--process_id={i}', f'--scene_cache={scene_cache}', f'--workdir={workdir}', f'--num_steps={num_steps}',
       f'--out_dir={out_dir}'],
      cwd=REPO, env=subprocess_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  try:
    outputs = [p.communicate(timeout=300) for p in processes]
  finally:
    for p in processes:
      p.kill()
  for i, (p, (_, stderr)) in enumerate(zip(processes, outputs)):
    assert p.returncode == 0, f'process {i}:\n{stderr[-3000:]}'
  params = [dict(np.load(out_dir / f'params_{i}.npz')) for i in range(2)]
  return outputs, params


def _flat(params):
  return {jax.tree_util.keystr(path): np.asarray(value)
          for path, value in jax.tree_util.tree_leaves_with_path(jax.device_get(params))}


def test_two_processes_train_as_one_process_of_two_devices(scene_cache, tmp_path):
  workdir, single = tmp_path / 'pair', tmp_path / 'single'
  def config(num_steps):  # As the worker trains.
    config = tiny_config(scene_cache, num_steps=num_steps, checkpoint_every=3, log_every=3)
    config.eval.final_num_images = 0
    return config

  outputs, params = _train_pair(scene_cache, workdir, tmp_path / 'first', num_steps=6)
  (stdout_0, _), (stdout_1, stderr_1) = outputs
  chex.assert_trees_all_equal(params[0], params[1])  # Each process holds the same parameters.
  # One process with both devices draws the same batches and ends in the same place (to the rounding of
  # gradients summed in another order, which Adam's normalised updates can amplify to a few 1e-6).
  chex.assert_trees_all_close(params[0], _flat(trainer.run_training(config(6), single).state.params),
                              rtol=1e-4, atol=2e-5)
  # Process 0 alone reports and writes: one summary, one record per step and split, its checkpoints.
  assert '"step": 6' in stdout_0 and '"workdir"' not in stdout_1  # (Gloo itself greets on every rank.)
  assert 'Resuming' not in stderr_1 and '6/6' not in stderr_1 and 'loss=' not in stderr_1
  keys = [(r['step'], r['split']) for r in reporting.read_metrics(workdir)]
  assert keys == [(3, 'train'), (6, 'train')], keys
  assert sorted(p.name for p in (workdir / 'checkpoints').iterdir()) == ['3', '6']

  # Both resume from the pair's checkpoint, and still agree with one process resumed alike.
  outputs, params = _train_pair(scene_cache, workdir, tmp_path / 'resumed', num_steps=10)
  assert 'Resuming from the checkpoint of step 6' in outputs[0][1], outputs[0][1][-2000:]
  chex.assert_trees_all_equal(params[0], params[1])
  chex.assert_trees_all_close(params[0], _flat(trainer.run_training(config(10), single).state.params),
                              rtol=1e-4, atol=2e-5)
