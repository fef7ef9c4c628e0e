"""Folders that commands write to: one run at a time owns a workdir, and every output folder is checked to be
writable before any work starts, so that a mistake costs one line, not a traceback after minutes of work.

Ownership is an advisory lock (`flock`) on `<workdir>/run.lock`, held for as long as the run's process lives:
the operating system releases it when the process ends, however it ends (kill -9 included), so a lock is
never stale. The file names its holder (process id, host, command, start time) for the message a second run
gets. Readers (render.py, export.py, prune.py's source) take no lock and may run beside a training run; they
change nothing in the workdir (`in_use_by` only looks), and write only into output folders of their own.
"""

import contextlib
import datetime
import fcntl
import itertools
import json
import os
import pathlib
import shutil
import socket
import sys
import tempfile
from typing import Dict, Optional

from jaxnerf.errors import WorkdirError

LOCK_FILE = 'run.lock'

# Locks this process holds, by resolved workdir: [open lock file, depth of nested `owned` blocks]. A second
# flock on another descriptor of the same file would block against our own lock.
_held: Dict[pathlib.Path, list] = {}


def check_writable(directory, what: str = 'the workdir') -> pathlib.Path:
  """Checks that files can be written in `directory`, or, where it is missing, that it can be created (its
  nearest existing parent is a writable folder). Nothing is created: a command that is refused later leaves
  no folder behind, and the writers create the folders they write in.

  Args:
    directory: the folder.
    what: how the user named it, for messages (e.g. '--workdir', '--out').

  Raises:
    WorkdirError: naming the folder, if it is a file, cannot be created or is not writable.
  """
  directory = pathlib.Path(directory)
  if directory.exists() and not directory.is_dir():
    raise WorkdirError(f'{what} {directory} is a file; expected a directory.')
  existing = next(p for p in (directory, *directory.absolute().parents) if p.exists())
  if not existing.is_dir():
    raise WorkdirError(f'{what} {directory} cannot be created: a part of its path is a file.')
  try:
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as e:
    raise WorkdirError(f'{what} {directory} is not writable ({e.strerror}); choose another folder or fix its '
                       'permissions.') from None
  return directory


def _created_folders(workdir: pathlib.Path) -> list:
  """The folders that creating `workdir` would create, innermost first."""
  return [p for p in (workdir, *workdir.absolute().parents) if not p.exists()]


def _remove_if_unused(created: list) -> None:
  """Removes the folders `created` (innermost first, by this run) where they hold no file but the lock:
  a run that failed before writing leaves no folder behind."""
  workdir = created[0]
  if any(p.is_file() and p != workdir / LOCK_FILE for p in workdir.rglob('*')):
    return
  shutil.rmtree(workdir)
  for parent in created[1:]:
    try:
      parent.rmdir()
    except OSError:  # Something else was written there meanwhile.
      return


def _holder(lock_file) -> str:
  lock_file.seek(0)
  try:
    record = json.loads(lock_file.read() or '{}')
  except json.JSONDecodeError:
    record = {}
  if not record:
    return 'another process'
  return (f'process {record.get("pid")} on {record.get("host")} ({record.get("command")}, started '
          f'{record.get("started")})')


def in_use_by(workdir) -> Optional[str]:
  """Who holds `workdir`'s lock (as the message of a refused run names it), or None: a look that takes no
  lock for longer than the look and creates nothing."""
  workdir = pathlib.Path(workdir)
  if workdir.resolve() in _held or not (workdir / LOCK_FILE).is_file():
    return None
  try:
    lock_file = open(workdir / LOCK_FILE, 'r')  # pylint: disable=consider-using-with  # Closed below.
  except OSError:
    return None
  with lock_file:
    try:
      fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
      return _holder(lock_file)
    except OSError:
      return None
    fcntl.flock(lock_file, fcntl.LOCK_UN)
  return None


@contextlib.contextmanager
def owned(workdir, what: str = '--workdir'):
  """Holds `workdir` for this process's run: creates it (checked writable) and locks it.

  Nested blocks of one process on the same workdir share the lock (prune.py trains through the trainer,
  which takes it too).

  Raises:
    WorkdirError: naming the process that owns the workdir, or why the folder cannot be used.
  """
  workdir = check_writable(workdir, what)
  created = _created_folders(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  key = workdir.resolve()
  if key in _held:
    _held[key][1] += 1
    try:
      yield workdir
    finally:
      _held[key][1] -= 1
    return
  lock_file = open(workdir / LOCK_FILE, 'a+')  # pylint: disable=consider-using-with  # Closed below.
  try:
    try:
      fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirError(f'{workdir} is in use by {_holder(lock_file)}: one run at a time may write to a '
                         'workdir. Wait for it to finish, stop it, or use another --workdir.') from None
    except OSError as e:  # A file system without locks (some network mounts): run, but say what is lost.
      print(f'warning: cannot lock {workdir / LOCK_FILE} ({e.strerror}): a second run started on this workdir '
            'would not be refused.', file=sys.stderr)
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(json.dumps({'pid': os.getpid(), 'host': socket.gethostname(),
                                'command': ' '.join([pathlib.Path(sys.executable).name, *sys.argv])[:300],
                                'started': datetime.datetime.now().isoformat(timespec='seconds')}))
    lock_file.flush()
    _held[key] = [lock_file, 1]
    try:
      yield workdir
    except BaseException:
      if created:  # Removed while the lock is still held.
        _remove_if_unused(created)
      raise
    finally:
      del _held[key]
  finally:
    lock_file.close()  # Releases the lock.


@contextlib.contextmanager
def owned_by_run(workdir):
  """`owned` for a run of one or several processes: process 0 takes the lock for all of them (they share the
  workdir), and every process stops with the same error when it cannot."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxnerf import parallel  # pylint: disable=g-import-not-at-top
  with contextlib.ExitStack() as stack:
    failure = None
    if jax.process_index() == 0:
      try:
        stack.enter_context(owned(workdir))
      except WorkdirError as e:
        failure = e
    if not bool(parallel.agree(np.array(failure is None))):
      raise failure or WorkdirError(f'process 0 could not take {workdir} for this run; see its message.')
    yield pathlib.Path(workdir)


def write_atomically(path, write, replace: bool = True, what: str = 'the output') -> None:
  """Calls write(temporary path) and renames the file it wrote over `path`, so that a crash never leaves half
  a file under the final name; the temporary name holds the process id (two writers never share it) and is
  removed if writing fails.

  Without `replace`, an earlier file is never written over: the finished file is linked under `path` only if
  no file is there (checked atomically, so two writers cannot both take the name); else a WorkdirError names
  it (as `what`)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f'.{path.name}.tmp-{os.getpid()}')
  try:
    write(temporary)
    if replace:
      os.replace(temporary, path)
    else:
      _link_if_free(temporary, path, what)
  finally:
    temporary.unlink(missing_ok=True)


def _link_if_free(temporary: pathlib.Path, path: pathlib.Path, what: str):
  try:
    os.link(temporary, path)
  except FileExistsError:
    raise _exists_error(path, what) from None
  except OSError:  # A file system without hard links: checked, then renamed (a narrow race, not none).
    refuse_existing(path, what)
    os.replace(temporary, path)


def _exists_error(path: pathlib.Path, what: str) -> WorkdirError:
  return WorkdirError(f'{what} {path} exists (written by an earlier command): choose another name or move it '
                      'away; it is never overwritten.')


def refuse_existing(path, what: str = 'the output') -> pathlib.Path:
  """Raises a WorkdirError naming `path` if something is there: checked before the work that would write it
  (`write_atomically(..., replace=False)` checks again when it writes)."""
  path = pathlib.Path(path)
  if path.exists() or path.is_symlink():
    raise _exists_error(path, what)
  return path


def first_free_name(path) -> pathlib.Path:
  """`path`, or where an earlier output holds it, the first free <stem>-2<suffix>, -3, ... (saying so): for
  default output names, which a rerun must neither overwrite nor stop at."""
  path = pathlib.Path(path)
  for number in itertools.count(1):
    candidate = path if number == 1 else path.with_name(f'{path.stem}-{number}{path.suffix}')
    if not (candidate.exists() or candidate.is_symlink()):
      if number > 1:
        print(f'note: {path} holds an earlier output (never overwritten): writing to {candidate}.',
              file=sys.stderr)
      return candidate


def claim_new_folder(folder) -> pathlib.Path:
  """Creates `folder`, or where an earlier output holds it, the first free <folder>-2, -3, ... (saying so):
  made with an exclusive mkdir, so that two commands at once never share one, and nothing earlier is ever
  written over."""
  folder = pathlib.Path(folder)
  folder.parent.mkdir(parents=True, exist_ok=True)
  for number in itertools.count(1):
    candidate = folder if number == 1 else folder.with_name(f'{folder.name}-{number}')
    try:
      candidate.mkdir()
    except FileExistsError:
      continue
    if number > 1:
      print(f'note: {folder} holds an earlier output (never overwritten): writing to {candidate}.',
            file=sys.stderr)
    return candidate


def write_text_atomically(path, text: str) -> None:
  """Writes `path` through a temporary file renamed over it (`write_atomically`)."""
  write_atomically(path, lambda temporary: temporary.write_text(text))
