"""Waiting in tests for what another thread does (the viewer's renders, files it writes)."""

import time


def wait_for(condition, seconds: float = 60.0):
  """Polls `condition()` every 0.1 s until it is true; fails the test after `seconds`."""
  deadline = time.monotonic() + seconds
  while not condition():
    assert time.monotonic() < deadline, 'timed out'
    time.sleep(0.1)
