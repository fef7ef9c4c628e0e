"""Joining the other processes of a run of several (jax.distributed.initialize) without a silent wait: the
process says whom it waits for, gives up with one line after a timeout, and stops on SIGTERM or Ctrl-C.

JAX's coordination client waits inside C++: Python's signal handlers cannot run until it returns, and when
its own timeout passes it aborts the process with a stack trace. So a watchdog thread watches the clock and
the signals (through signal.set_wakeup_fd, to which the interpreter writes each signal's number whichever
thread receives it) and ends the process itself, with os._exit: the waiting main thread cannot be
interrupted.
"""

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Optional

import jax

TIMEOUT_EXIT_CODE = 1  # As cli.friendly_errors exits on bad input.
STOPPED_EXIT_CODE = 130  # As cli.friendly_errors exits on Ctrl-C (and SIGTERM, which stops like it).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_REMIND_EVERY_S = 60.0  # A line saying that the process still waits, so that a long wait never looks hung.
_JAX_TIMEOUT_MARGIN_S = 60  # JAX's own timeout comes later: it aborts the process with a stack trace.


def _say(text: str):
  print(text, file=sys.stderr, flush=True)


def _exit(text: str, code: int):
  _say(text)
  os._exit(code)  # pylint: disable=protected-access  # The main thread is blocked in C++; nothing else ends it.


def _watch(receiver: socket.socket, timeout_s: float, waiting_for: str):
  """The watchdog's loop: ends the process on a stop signal or at the timeout; returns on a 0 byte (the wait
  is over)."""
  start = time.monotonic()
  next_reminder = start + _REMIND_EVERY_S
  while True:
    now = time.monotonic()
    if now >= start + timeout_s:
      _exit(f'error: {waiting_for} did not join within {timeout_s:g} s. Start every process with the same '
            '--coordinator_address and --num_processes (and its own --process_id), or give --join_timeout '
            'more seconds.', TIMEOUT_EXIT_CODE)
    if now >= next_reminder:
      _say(f'still waiting for {waiting_for} ({now - start:.0f} s of {timeout_s:g} s)')
      next_reminder += _REMIND_EVERY_S
    ready, _, _ = select.select([receiver], [], [], min(start + timeout_s, next_reminder) - now)
    for signum in receiver.recv(64) if ready else b'':
      if signum == 0:
        return
      if signum in _STOP_SIGNALS:
        _exit(f'stopped by {signal.Signals(signum).name} while waiting for {waiting_for}.', STOPPED_EXIT_CODE)


@contextlib.contextmanager
def _watchdog(timeout_s: float, waiting_for: str):
  """While the body runs (in the main thread), a stop signal or `timeout_s` ends the process with one line."""
  receiver, sender = socket.socketpair()
  sender.setblocking(False)
  previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
  thread = threading.Thread(target=_watch, args=(receiver, timeout_s, waiting_for), daemon=True,
                            name='join-watchdog')
  thread.start()
  try:
    yield
  finally:
    signal.set_wakeup_fd(previous)
    sender.send(b'\0')
    thread.join()
    receiver.close()
    sender.close()


def join(address: Optional[str], num_processes: Optional[int], process_id: Optional[int], timeout_s: float):
  """jax.distributed.initialize(address, num_processes, process_id), saying that it waits for the others and
  giving up after `timeout_s` seconds (see the module docstring). None: as JAX detects the cluster."""
  count = f' ({num_processes} in all)' if num_processes else ''
  waiting_for = f"the other processes of the run{count} at {address or 'the coordinator JAX detects'}"
  me = f'process {process_id}' if process_id is not None else 'this process'
  with _watchdog(timeout_s, waiting_for):  # (Said inside: a SIGTERM after the line is never missed.)
    _say(f'{me}: waiting for {waiting_for} (up to {timeout_s:g} s: --join_timeout)')
    jax.distributed.initialize(address, num_processes, process_id,
                               initialization_timeout=int(timeout_s) + _JAX_TIMEOUT_MARGIN_S)
