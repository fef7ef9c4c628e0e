"""Workdirs owned by one run at a time, and folders checked before work starts: a second run is refused
naming the first, a killed holder leaves no stale lock, read-only folders and files in the way are one line,
and the commands that write (train, prune, render, export) check before they work."""

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from jaxnerf.commands import export
from jaxnerf.commands import prune
from jaxnerf.commands import render
from jaxnerf.errors import ConfigError
from jaxnerf.errors import WorkdirError
from jaxnerf.training import checkpoints
from jaxnerf.training import trainer
from jaxnerf import workdirs
from tests.conftest import REPO
from tests.tiny_configs import tiny_config

# Holds the lock of sys.argv[1] until killed; says so on stdout once it does.
_HOLDER = """
import sys, time
from jaxnerf import workdirs
with workdirs.owned(sys.argv[1]):
  print('holding', flush=True)
  time.sleep(600)
"""


@contextlib.contextmanager
def _holder_process(workdir):
  """Another process owning `workdir` (imports only jaxnerf.workdirs: it starts in a moment)."""
  process = subprocess.Popen([sys.executable, '-c', _HOLDER, str(workdir)], stdout=subprocess.PIPE, text=True,
                             cwd=REPO, env={**os.environ, 'PYTHONPATH': REPO})
  try:
    assert process.stdout.readline().strip() == 'holding'
    yield process
  finally:
    process.kill()
    process.wait()


def test_a_second_owner_is_refused_naming_the_first_and_a_killed_owner_leaves_no_lock(tmp_path):
  with _holder_process(tmp_path) as holder:
    with pytest.raises(WorkdirError, match=rf'{tmp_path} is in use by process {holder.pid} on .*python'):
      with workdirs.owned(tmp_path):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
  with workdirs.owned(tmp_path):  # The OS released the killed holder's lock.
    with workdirs.owned(tmp_path):  # Nested blocks of one process share it.
      pass
    assert str(os.getpid()) in (tmp_path / workdirs.LOCK_FILE).read_text()


def test_training_and_pruning_refuse_a_workdir_in_use_before_any_work(scene_cache, tmp_path):
  config = tiny_config(scene_cache)
  with _holder_process(tmp_path / 'run') as holder:
    start = time.perf_counter()
    with pytest.raises(WorkdirError, match=f'in use by process {holder.pid}'):
      trainer.train_and_evaluate(config, tmp_path / 'run')
    assert time.perf_counter() - start < 5  # Refused before the scene is read or anything compiles.
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == [workdirs.LOCK_FILE]
    checkpoints.save_config(tmp_path / 'trained', config)
    with pytest.raises(WorkdirError, match=f'in use by process {holder.pid}'):
      prune.prune_workdir(tmp_path / 'trained', 'fine', 0.5, 10, out=tmp_path / 'run')


@pytest.fixture
def read_only_dir(tmp_path):
  """A directory that cannot be written to, even by root (immutable where chattr works)."""
  directory = tmp_path / 'read_only'
  directory.mkdir()
  (directory / 'config.json').write_text('{}')
  immutable = shutil.which('chattr') and subprocess.run(['chattr', '+i', str(directory)],
                                                         capture_output=True).returncode == 0
  if not immutable:
    directory.chmod(0o555)
  try:
    try:
      (directory / 'probe').touch()
      pytest.skip('cannot make a read-only directory here (root without chattr)')
    except OSError:
      pass
    yield directory
  finally:
    if immutable:
      subprocess.run(['chattr', '-i', str(directory)], check=True)
    directory.chmod(0o755)


def test_read_only_folders_and_files_in_the_way_are_refused_before_work(scene_cache, tmp_path, read_only_dir):
  with pytest.raises(WorkdirError, match=rf'{read_only_dir} is not writable'):
    workdirs.check_writable(read_only_dir)
  with pytest.raises(WorkdirError, match=rf'{read_only_dir / "new"} is not writable'):
    workdirs.check_writable(read_only_dir / 'new')
  with pytest.raises(WorkdirError, match='is not writable'):
    trainer.train_and_evaluate(tiny_config(scene_cache), read_only_dir)
  with pytest.raises(WorkdirError, match='the folder of the renders .* is not writable'):
    render.render_split(read_only_dir)
  with pytest.raises(WorkdirError, match='the folder of the export .* is not writable'):
    export.export_workdir(read_only_dir, 'float32')
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  with pytest.raises(WorkdirError, match=rf'{a_file} is a file; expected a directory'):
    trainer.train_and_evaluate(tiny_config(scene_cache), a_file)
  with pytest.raises(WorkdirError, match='a part of its path is a file'):
    workdirs.check_writable(a_file / 'below')
  with pytest.raises(WorkdirError, match=r'--out=.* is a directory; expected the path of the file'):
    export.export_workdir(tmp_path, 'packed', tmp_path)


def test_render_flags_are_checked_before_the_restore(tmp_path):
  checkpoints.save_config(tmp_path, tiny_config())
  with pytest.raises(ConfigError, match=r'--limit=0: expected a positive number of images, or -1'):
    render.render_split(tmp_path, limit=0)
  with pytest.raises(ConfigError, match=r'--frames=0'):
    render.render_path_video(tmp_path, 'orbit', 0, 30)
  garbage = tmp_path / 'garbage.npz'
  garbage.write_bytes(os.urandom(1000))
  with pytest.raises(Exception, match=r'not a model exported by export.py: not a .npz archive') as raised:
    render.render_split(None, packed=str(garbage))
  assert 'allow_pickle' not in str(raised.value)


def test_a_camera_path_the_scene_cannot_have_is_refused_before_training(scene_cache, tmp_path):
  config = tiny_config(scene_cache)
  config.eval.update(video_frames=4, path='spiral')  # Spirals need a capture's depth bounds.
  with pytest.raises(ConfigError, match='spiral'):
    trainer.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / checkpoints.CHECKPOINTS_DIR).exists()
  assert not (tmp_path / checkpoints.CONFIG_FILE).exists()
  with pytest.raises(ConfigError, match='spiral'):  # A workdir it made is removed again.
    trainer.train_and_evaluate(config, tmp_path / 'new')
  assert not (tmp_path / 'new').exists()


def test_a_refused_command_leaves_no_folder_behind(scene_cache, tmp_path):
  assert workdirs.check_writable(tmp_path / 'a' / 'b') == tmp_path / 'a' / 'b'  # Checked, not made.
  with pytest.raises(Exception, match='config.json does not exist'):
    export.export_workdir(tmp_path / 'nowhere', 'packed')
  config = tiny_config(scene_cache)
  config.eval.update(video_frames=4, path='spiral')  # Refused after the workdir is locked.
  with pytest.raises(ConfigError, match='spiral'):
    trainer.train_and_evaluate(config, tmp_path / 'runs' / 'new')
  with pytest.raises(RuntimeError, match='failed'):
    with workdirs.owned(tmp_path / 'c' / 'd') as workdir:
      (workdir / 'checkpoints').mkdir()  # As a checkpoint manager makes it, with nothing in it yet.
      raise RuntimeError('failed')
  assert not list(tmp_path.iterdir())
  with pytest.raises(RuntimeError, match='failed'):
    with workdirs.owned(tmp_path / 'e') as workdir:
      (workdir / 'config.json').write_text('{}')
      raise RuntimeError('failed')
  assert sorted(p.name for p in (tmp_path / 'e').iterdir()) == ['config.json', workdirs.LOCK_FILE]  # Kept.


def test_lock_file_is_written_in_the_workdir_only(tmp_path):
  with workdirs.owned(tmp_path / 'a' / 'b') as workdir:
    assert workdir == pathlib.Path(tmp_path / 'a' / 'b')
  assert [p.name for p in (tmp_path / 'a' / 'b').iterdir()] == [workdirs.LOCK_FILE]


def test_a_default_output_name_that_is_taken_becomes_the_next_free_one(tmp_path, capsys):
  path = tmp_path / 'export' / 'packed.npz'
  assert workdirs.first_free_name(path) == path and capsys.readouterr().err == ''
  path.parent.mkdir()
  path.write_text('earlier')
  (tmp_path / 'export' / 'packed-2.npz').write_text('earlier too')
  assert workdirs.first_free_name(path) == tmp_path / 'export' / 'packed-3.npz'
  assert f'note: {path} holds an earlier output (never overwritten): writing to' in capsys.readouterr().err
  workdirs.write_atomically(tmp_path / 'export' / 'packed-3.npz', lambda t: t.write_text('new'), replace=False)
  with pytest.raises(WorkdirError, match=r'the output .*packed.npz exists \(written by an earlier command\)'):
    workdirs.write_atomically(path, lambda t: t.write_text('over it'), replace=False)
  assert path.read_text() == 'earlier' and sorted(p.name for p in path.parent.iterdir()) == [
      'packed-2.npz', 'packed-3.npz', 'packed.npz']  # No temporary file left either.
