"""Training over two processes on 127.0.0.1 (CPU, one device each, Gloo collectives): the processes agree
with each other and with one process of two devices, process 0 alone writes and reports, and the pair
resumes from its checkpoint (in the same processes, to spare the suite a second start-up). A process whose
peer never starts says so, gives up at its timeout, and stops on SIGTERM."""

import signal
import socket
import subprocess
import sys

import chex
import jax
import numpy as np

from jaxnerf.outputs import reporting
from jaxnerf.training import trainer
from tests.conftest import REPO
from tests.conftest import subprocess_env
from tests.tiny_configs import small_mlp_config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _worker(address: str, process_id: int, scene_cache, workdir, out_dir, *flags) -> subprocess.Popen:
  """tests/multiprocess_worker.py as process `process_id` of 2 with coordinator `address`, given `flags`."""
  return subprocess.Popen(
      [sys.executable, 'tests/multiprocess_worker.py', f'--coordinator_address={address}', '--num_processes=2',
       f'--process_id={process_id}', f'--scene_cache={scene_cache}', f'--workdir={workdir}',
       f'--out_dir={out_dir}', *flags],
      cwd=REPO, env=subprocess_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _train_pair(scene_cache, workdir, out_dir, num_steps):
  """Runs both processes to the end, training to each of `num_steps` in turn; returns [(stdout, stderr)] of
  process 0 and 1, and {steps: [params of process 0, of process 1]}."""
  address = f'127.0.0.1:{_free_port()}'
  processes = [_worker(address, i, scene_cache, workdir, out_dir, f'--num_steps={",".join(map(str, num_steps))}')
               for i in range(2)]
  try:
    outputs = [p.communicate(timeout=300) for p in processes]
  finally:
    for p in processes:
      p.kill()
  for i, (p, (_, stderr)) in enumerate(zip(processes, outputs)):
    assert p.returncode == 0, f'process {i}:\n{stderr[-3000:]}'
  params = {steps: [dict(np.load(out_dir / str(steps) / f'params_{i}.npz')) for i in range(2)]
            for steps in num_steps}
  return outputs, params


def _flat(params):
  return {jax.tree_util.keystr(path): np.asarray(value)
          for path, value in jax.tree_util.tree_leaves_with_path(jax.device_get(params))}


def test_two_processes_train_as_one_process_of_two_devices(scene_cache, tmp_path):
  workdir, single = tmp_path / 'pair', tmp_path / 'single'
  def config(num_steps):  # As the worker trains.
    config = small_mlp_config(scene_cache, num_steps=num_steps, checkpoint_every=3, log_every=3)
    config.eval.final_num_images = 0
    return config

  # 6 steps, then (in the same processes) resumed to 10.
  outputs, params = _train_pair(scene_cache, workdir, tmp_path / 'params', num_steps=(6, 10))
  (stdout_0, stderr_0), (stdout_1, stderr_1) = outputs
  for steps in (6, 10):
    chex.assert_trees_all_equal(*params[steps])  # Each process holds the same parameters.
    # One process with both devices draws the same batches and ends in the same place (to the rounding of
    # gradients summed in another order, which Adam's normalised updates can amplify to a few 1e-6).
    alone = trainer.run_training(config(steps), single).state.params
    chex.assert_trees_all_close(params[steps][0], _flat(alone), rtol=1e-4, atol=2e-5)
  # Process 0 alone reports and writes: one summary per run, one record per logged step, its checkpoints.
  # (Gloo itself greets on every rank: the summaries and the progress bar are what process 1 must not print.)
  assert '"step": 6' in stdout_0 and '"step": 10' in stdout_0 and '"workdir"' not in stdout_1
  assert 'Resuming' not in stderr_1 and '10/10' not in stderr_1 and 'loss=' not in stderr_1
  assert 'Resuming from the checkpoint of step 6' in stderr_0, stderr_0[-2000:]
  keys = [(r['step'], r['split']) for r in reporting.read_metrics(workdir)]
  assert keys == [(3, 'train'), (6, 'train'), (9, 'train'), (10, 'train')], keys
  assert sorted((p.name for p in (workdir / 'checkpoints').iterdir()), key=int) == ['3', '6', '9', '10']


def test_a_process_whose_peer_never_starts_times_out_and_stops_on_sigterm(tmp_path):
  """Both alone (the coordinator, and a process whose coordinator never starts); started together to share
  the start-up time."""
  timing_out = _worker(f'127.0.0.1:{_free_port()}', 1, tmp_path, tmp_path, tmp_path, '--join_timeout=1')
  waiting = _worker(f'127.0.0.1:{_free_port()}', 0, tmp_path, tmp_path, tmp_path)
  try:
    lines = []
    for line in waiting.stderr:  # Until it says that it waits (or ends).
      lines.append(line)
      if 'waiting for' in line:
        break
    waiting.send_signal(signal.SIGTERM)
    stopped = waiting.communicate(timeout=60)[1]
    timed_out = timing_out.communicate(timeout=120)[1]
  finally:
    for process in (waiting, timing_out):
      process.kill()
  assert lines and lines[-1].startswith('process 0: waiting for the other processes of the run (2 in all) at '
                                        '127.0.0.1:'), lines
  assert waiting.returncode == 130, stopped
  assert stopped.strip().startswith('stopped by SIGTERM while waiting for the other processes'), stopped
  assert timing_out.returncode == 1, timed_out
  error = timed_out.strip().splitlines()[-1]
  assert error.startswith('error: the other processes of the run (2 in all) at 127.0.0.1:'), timed_out
  assert 'did not join within 1 s' in error and '--join_timeout' in error
  assert 'Traceback' not in timed_out + stopped
