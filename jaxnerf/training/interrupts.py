"""Ctrl-C and SIGTERM: `stop` (installed by cli.initialize) makes both raise KeyboardInterrupt, and `held`
holds them back while the training loop does what must not be cut in the middle: a step that has donated
the state's buffers but not yet returned the new state, or a checkpoint that is being written. Cut there,
the run would save a deleted state (an error, and the work since the last checkpoint lost) or start a second
save of a step whose first is still being written, and exit while Orbax's threads write.

Python drops an exception raised in a garbage-collection callback ('Exception ignored in ...'), and a
KeyboardInterrupt raised there with it: `stop` records its signal, and the next `held` block raises it.
"""

import contextlib
import signal
import threading

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested = []  # Signals of `stop` since the last KeyboardInterrupt raised here: [signal number].


def stop(signum, frame):
  """The handler of SIGINT and SIGTERM: stops the run with a KeyboardInterrupt (a checkpoint is saved)."""
  del frame
  _requested.append(signum)
  raise KeyboardInterrupt


def handled():
  """Says that the KeyboardInterrupt of the signals so far has been caught (the run is stopping)."""
  _requested.clear()


@contextlib.contextmanager
def held(raise_after: bool = True):
  """Runs the block with SIGINT and SIGTERM held: one that arrives meanwhile, or one whose KeyboardInterrupt
  Python dropped, is raised as KeyboardInterrupt when the block ends (unless not `raise_after`: the caller is
  stopping already). Outside the main thread, where Python delivers no signals, it does nothing."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  received = []
  previous = {number: signal.signal(number, lambda signum, frame: received.append(signum))
              for number in _SIGNALS}
  try:
    yield
  finally:
    for number, handler in previous.items():
      signal.signal(number, signal.SIG_DFL if handler is None else handler)  # (None: not set from Python.)
  if raise_after and (received or _requested):
    handled()
    raise KeyboardInterrupt
