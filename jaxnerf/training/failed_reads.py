"""The noise that a failed checkpoint read leaves behind, kept out of the user's terminal.

Orbax reads a checkpoint's arrays in asyncio tasks over TensorStore. When a damaged file fails one read, the
restore's error is handled by checkpoints.py (one line naming the checkpoint), but the other reads leave
tracebacks at any later moment: asyncio's 'never retrieved' records, unawaited coroutines, and TensorStore's
threads finishing into the event loop that Orbax has closed. `quieted` wraps a restore; after a failed one,
`drop_leftovers_for_the_process` filters what can still come.
"""

import contextlib
import gc
import logging
import os
import sys
import traceback
import warnings


def _is_leftover(exc_value, exc_traceback) -> bool:
  """Noise that the reads of a failed restore leave: 'Event loop is closed' errors, and anything raised in
  asyncio's or Orbax's code after it."""
  if isinstance(exc_value, RuntimeError) and str(exc_value) == 'Event loop is closed':
    return True
  frames = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(exc_traceback)]
  return any(f'{os.sep}{package}{os.sep}' in filename for filename in frames
             for package in ('asyncio', 'orbax', 'tensorstore'))


@contextlib.contextmanager
def quieted():
  """Orbax reads arrays in asyncio tasks over TensorStore. When a damaged file fails one read, the failure
  is handled here, but the other reads leave noise, each with a long traceback: asyncio logs their errors
  as 'never retrieved' and their coroutines complain when collected (silenced here), and TensorStore's
  threads finish them later into the event loop that Orbax has closed, which Python reports (as unraisable
  errors, through sys.excepthook, or asyncio's log when their tasks are collected) at any later moment:
  `drop_leftovers_for_the_process` filters those out for the rest of the process."""
  logger = logging.getLogger('asyncio')
  level, hook = logger.level, sys.unraisablehook
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    sys.unraisablehook = lambda unraisable: None
    try:
      gc.collect()
    finally:
      sys.unraisablehook = hook
      logger.setLevel(level)


# Orbax's coroutines that read a checkpoint's arrays (orbax/checkpoint/_src/serialization/serialization.py):
# those of a failed restore may be collected unawaited.
_READ_COROUTINES = ('async_deserialize', '_read_and_create_array', '_read_array_index_and_device_put',
                    '_read_shard')


class _LeftoverLogFilter(logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' records of the reads of a failed restore: their
  tasks are collected at any later moment (after `quieted` has restored the logger's level)."""

  def filter(self, record):
    _, exc_value, exc_traceback = record.exc_info or (None, None, None)
    return exc_value is None or not _is_leftover(exc_value, exc_traceback)


_LEFTOVER_LOG_FILTER = _LeftoverLogFilter()


def drop_leftovers_for_the_process():
  """Filters the noise of failed restores out of sys.unraisablehook, sys.excepthook, asyncio's log and the
  'coroutine ... was never awaited' warnings of their reads' coroutines, for the rest of the process."""
  logging.getLogger('asyncio').addFilter(_LEFTOVER_LOG_FILTER)  # (Both calls add nothing a second time.)
  warnings.filterwarnings('ignore', message=f"coroutine '({'|'.join(_READ_COROUTINES)})' was never awaited",
                          category=RuntimeWarning)
  previous_unraisable, previous_except = sys.unraisablehook, sys.excepthook
  if getattr(previous_unraisable, 'drops_leftovers_of_failed_reads', False):
    return

  def unraisable_hook(unraisable):
    if not _is_leftover(unraisable.exc_value, unraisable.exc_traceback):
      previous_unraisable(unraisable)

  def except_hook(exc_type, exc_value, exc_traceback):
    if not _is_leftover(exc_value, exc_traceback):
      previous_except(exc_type, exc_value, exc_traceback)

  unraisable_hook.drops_leftovers_of_failed_reads = True
  sys.unraisablehook, sys.excepthook = unraisable_hook, except_hook
