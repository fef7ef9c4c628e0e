"""What train.py and render.py share: flags for several processes, start-up, default paths, and turning
known errors into one-line messages."""

import contextlib
import json
import os
import pathlib
import re
import signal
import sys
import traceback
from typing import NamedTuple, Optional

import jax
from absl import app
from absl import flags
from absl import logging

from jaxnerf import errors
from jaxnerf import peers
from jaxnerf.training import interrupts

MAX_JOIN_TIMEOUT_S = 86400.0  # JAX's coordination service takes whole seconds in a 32-bit int.


class DistributedFlags(NamedTuple):
  multihost: flags.FlagHolder
  coordinator_address: flags.FlagHolder
  num_processes: flags.FlagHolder
  process_id: flags.FlagHolder
  join_timeout: flags.FlagHolder


def define_distributed_flags() -> DistributedFlags:
  """Flags of a run over several processes (one per host, or several on one host)."""
  return DistributedFlags(
      flags.DEFINE_bool('multihost', False,
                        'Join a run of several processes. Alone, it lets JAX detect the cluster (SLURM, Open '
                        'MPI, TPU pods); elsewhere give the three flags below (which imply it).'),
      flags.DEFINE_string('coordinator_address', None,
                          'host:port of process 0, reachable from every process (default: '
                          '$JAX_COORDINATOR_ADDRESS).'),
      flags.DEFINE_integer('num_processes', None, 'Number of processes (default: $JAX_NUM_PROCESSES).'),
      flags.DEFINE_integer('process_id', None,
                           'This process, 0 to num_processes - 1; 0 coordinates and alone writes files '
                           '(default: $JAX_PROCESS_ID).'),
      flags.DEFINE_float('join_timeout', 300.0,
                         'Seconds to wait for the other processes to start before giving up with an error.'))


def _env_int(name: str) -> Optional[int]:
  value = os.environ.get(name)
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    raise errors.ConfigError(f'${name}={value!r}: expected an integer.') from None


def initialize(distributed: Optional[DistributedFlags] = None):
  """Quietens library logging, makes SIGTERM stop like Ctrl-C, keeps compiled programs on disk, and joins
  the other processes of a run of several (the cluster detected from the environment, or the flags)."""
  logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO.
  # SIGTERM (a scheduler's preemption, `kill`) stops training like Ctrl-C: a checkpoint is saved first.
  for number in (signal.SIGINT, signal.SIGTERM):
    signal.signal(number, interrupts.stop)
  keep_compiled_programs()
  if distributed is None:
    return
  address = distributed.coordinator_address.value or os.environ.get('JAX_COORDINATOR_ADDRESS')
  num_processes = distributed.num_processes.value
  num_processes = _env_int('JAX_NUM_PROCESSES') if num_processes is None else num_processes
  process_id = distributed.process_id.value
  process_id = _env_int('JAX_PROCESS_ID') if process_id is None else process_id
  explicit = (address, num_processes, process_id) != (None, None, None)
  if not (distributed.multihost.value or explicit):
    return
  # Collectives between processes on CPUs (the GPU backends bring their own).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if not 0 < distributed.join_timeout.value <= MAX_JOIN_TIMEOUT_S:  # (Also refuses inf and nan.)
    raise errors.ConfigError(f'--join_timeout={distributed.join_timeout.value}: expected a positive number of '
                             f'seconds, at most {MAX_JOIN_TIMEOUT_S:g} (a day).')
  try:
    peers.join(address, num_processes, process_id, distributed.join_timeout.value)
  except (ValueError, TypeError) as e:
    raise errors.ConfigError(
        f'Could not join the other processes ({e}). Where JAX detects no cluster (SLURM, Open MPI, TPU), '
        'give --coordinator_address=HOST:PORT --num_processes=N --process_id=I to every process.') from None


def keep_compiled_programs():
  """JAX's persistent compilation cache in $JAXNERF_CACHE/xla (unless JAX_COMPILATION_CACHE_DIR names
  another): a second run of a config, or render.py after train.py, loads what the first compiled (tens of
  seconds on a CPU) instead of compiling it again."""
  if os.environ.get('JAX_COMPILATION_CACHE_DIR') or jax.config.jax_compilation_cache_dir:
    return
  from jaxnerf import datasets  # pylint: disable=g-import-not-at-top  # Where jaxnerf keeps its caches.
  cache_dir = datasets.default_cache_dir()
  if cache_dir.exists() and not cache_dir.is_dir():
    raise errors.WorkdirError(f'the cache {cache_dir} ($JAXNERF_CACHE) is a file; expected a directory for '
                              'jaxnerf\'s caches (the procedural scenes, compiled programs).')
  jax.config.update('jax_compilation_cache_dir', str(cache_dir / 'xla'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)


def default_workdir(config_path: str) -> str:
  """runs/<config file stem>, e.g. runs/demo for configs/demo.py."""
  return str(pathlib.Path('runs') / pathlib.Path(config_path).stem)


@contextlib.contextmanager
def friendly_errors():
  """Prints errors of bad input (data, config, checkpoints, non-finite training) as one line without a
  traceback and exits with status 1; a Ctrl-C exits with status 130."""
  try:
    yield
  except errors.USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    sys.exit(130)


def print_summary(summary, workdir=None):
  if jax.process_index() == 0:
    print(json.dumps({**({'workdir': str(workdir)} if workdir else {}), **summary}))


def _exception_chain(e: BaseException):
  chain = [e]
  while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 20:
    chain.append(cause)
  return chain


def flag_error_message(e: BaseException, argv=()) -> str:
  """One line saying what is wrong with the command line, from the exception that parsing it raised (absl
  and ml_collections wrap the useful message in tracebacks and other exceptions)."""
  chain = _exception_chain(e)
  flag = next((m.group(1) for c in chain if (m := re.match(r'flag (--\S+?): ', str(c)))), None)
  key_errors = [c for c in chain if isinstance(c, KeyError) and c.args]
  if key_errors:  # ml_collections: KeyError("'key'\nDid you mean ...?") for an unknown key.
    suggested = [k for k in key_errors if 'Did you mean' in str(k.args[0])]
    key, _, hint = str((suggested or key_errors)[-1].args[0]).partition('\n')
    key = key.strip("'")
    flag = flag or next((a.split('=')[0] for a in argv if a.split('=')[0].endswith(f'.{key}')), '--config')
    return f'{flag}: the config has no key {key!r}. {hint.strip()}'.strip()
  lines = [line.strip() for line in str(chain[-1]).splitlines() if line.strip()]
  text = lines[-1] if lines else type(chain[-1]).__name__
  config_arg = next((a for a in argv if a.startswith('--config=')), '--config')
  if 'Failed loading config file' in str(chain[-1]):
    return f'{config_arg}: the config file cannot be loaded: {text}'
  config_file, _, preset = config_arg.removeprefix('--config=').partition(':')
  if isinstance(chain[-1], TypeError) and re.match(r'get_config\(\) takes 0 positional', text) and preset:
    return f'{config_arg}: {config_file} has no presets (its get_config() takes no argument); drop ":{preset}".'
  config_error = _config_file_error(chain[-1], config_file) if config_file else None
  if config_error:
    return f'{config_arg}: {config_error}'
  if flag and not text.startswith('flag --'):
    return f'{flag}: {text}'
  return text.removeprefix('flag ')


def _config_file_error(e: BaseException, config_file: str) -> Optional[str]:
  """What is wrong with `config_file`, where `e` (the innermost error of loading it) comes from the file
  itself: not Python, no get_config(), or an error that its code raised (a ValueError: its own message,
  such as an unknown preset's); None for other errors."""
  expected = 'expected a Python file whose get_config() returns the config, as configs/demo.py does'
  if isinstance(e, SyntaxError) and e.filename and pathlib.Path(e.filename).name == pathlib.Path(config_file).name:
    return f'{config_file} is not a Python file (line {e.lineno}: {e.msg}); {expected}.'
  if isinstance(e, AttributeError) and getattr(e, 'name', None) == 'get_config':
    return f'{config_file} defines no get_config(); {expected}.'
  line = _line_in_file(e, config_file)
  if line is None:
    return None
  text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
  if isinstance(e, ValueError):  # Raised by the config on purpose: its own message.
    return text
  return f'the config file cannot be loaded: line {line}: {type(e).__name__}: {text} ({expected}).'


def _line_in_file(e: BaseException, path: str) -> Optional[int]:
  """The line of file `path` in `e`'s traceback (its innermost frame there), or None."""
  try:
    target = pathlib.Path(path).resolve()
  except OSError:
    return None
  frame_lines = [(frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(e.__traceback__)]
  lines = [line for filename, line in frame_lines if pathlib.Path(filename).resolve() == target]
  return lines[-1] if lines else None


@contextlib.contextmanager
def flag_errors():
  """Turns an error in defining or parsing flags (an unknown config key, a value of the wrong type, a
  missing config file, an unknown preset) into one line on stderr and exit status 2."""
  try:
    yield
  except SystemExit:
    raise
  except Exception as e:  # pylint: disable=broad-except  # Whatever parsing raised: reported, not shown.
    print(f'error: {flag_error_message(e, sys.argv)}', file=sys.stderr)
    sys.exit(2)


def run(main, config_flag=None):
  """app.run(main), with flag errors as one line (`flag_errors`); `config_flag`, a config file's
  FlagHolder, is loaded while parsing, so that a config that fails to load is reported the same way."""

  def parse(argv):
    with flag_errors():
      remaining = flags.FLAGS(argv)
      if config_flag is not None:
        config_flag.value.keys()  # A config file that failed to load raises on first use.
      return remaining

  app.run(main, flags_parser=parse)


def exit_with_usage_error(text: str):
  print(f'error: {text}', file=sys.stderr)
  sys.exit(2)


def checkpoint_step(flag: str, value: Optional[str]):
  """The checkpoint that flag `flag` (--step, --resume_step) names by `value`: None, a step (an int) or 'best'
  (checkpoints.BEST); anything else exits with a usage error."""
  if value is None or value == 'best':
    return value
  if not value.isdigit():
    exit_with_usage_error(f"{flag}={value}: expected a checkpoint's step (a number >= 0) or 'best'")
  return int(value)
