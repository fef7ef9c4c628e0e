"""What train.py and render.py share: start-up, default paths, and turning known errors into messages."""

import contextlib
import json
import pathlib
import signal
import sys

import jax
from absl import logging

from jaxnerf import errors


def initialize(multihost: bool):
  """Quietens library logging; joins the other processes of a multi-host run (the cluster is detected
  from the environment)."""
  logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO.
  # SIGTERM (a scheduler's preemption, `kill`) stops training like Ctrl-C: a checkpoint is saved first.
  signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
  if multihost:
    jax.distributed.initialize()


def _raise_keyboard_interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def default_workdir(config_path: str) -> str:
  """runs/<config file stem>, e.g. runs/demo for configs/demo.py."""
  return str(pathlib.Path('runs') / pathlib.Path(config_path).stem)


@contextlib.contextmanager
def friendly_errors():
  """Prints errors of bad input (data, config, checkpoints, non-finite training) without a traceback and
  exits with status 1; a Ctrl-C exits with status 130."""
  try:
    yield
  except errors.USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    sys.exit(130)


def print_summary(summary, workdir):
  if jax.process_index() == 0:
    print(json.dumps({'workdir': str(workdir), **summary}))
