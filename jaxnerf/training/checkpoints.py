"""Checkpoints (Orbax) and the run's saved configuration.

A workdir holds `checkpoints/<step>/` and `config.json`, the configuration the checkpoints were trained with;
with config.train.keep_best, also `best_checkpoint/<step>/`, the checkpoint of the best validation PSNR so far.
Each checkpoint holds two items: 'state', the TrainState, and 'run', a small JSON record of the run at that
step: the training seconds so far, a fingerprint of the state's bits (and the best one's validation PSNR).

Resuming from an older step than the newest (`set_aside_newer`) moves the newer checkpoints to
`superseded_checkpoints/`: the run that goes on from there would otherwise overwrite them with its own.

What survives a crash (kill -9, power loss) at any moment:
- Orbax writes a checkpoint into a temporary folder and renames it when complete, so an interrupted save
  never leaves a folder under a step's name; its leftovers are removed when the next run starts.
- A checkpoint damaged afterwards (a truncated or missing file, garbled metadata, flipped bytes) fails to
  restore or to match its fingerprint. `restore_newest_intact` then moves it to `damaged_checkpoints/`,
  warns naming it, and restores the next older one.
"""

import dataclasses
import json
import pathlib
import re
import shutil
import sys
import time
from typing import Dict, NamedTuple, Optional

from absl import logging as absl_logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxnerf import console
from jaxnerf.errors import CheckpointError
from jaxnerf.errors import NonFiniteLossError
from jaxnerf import parallel
from jaxnerf import workdirs
from jaxnerf.training import default_config
from jaxnerf.training import failed_reads

CONFIG_FILE = 'config.json'
CHECKPOINTS_DIR = 'checkpoints'
BEST_DIR = 'best_checkpoint'
DAMAGED_DIR = 'damaged_checkpoints'
SUPERSEDED_DIR = 'superseded_checkpoints'
BEST = 'best'  # The step name by which experiment.restore_model (render.py --step) reads the best checkpoint.


def make_manager(workdir, keep: int, folder: str = CHECKPOINTS_DIR, read_only: bool = False
                 ) -> ocp.CheckpointManager:
  """A manager for `workdir/<folder>` keeping the newest `keep` checkpoints; it removes the temporary
  folders of saves that a crash interrupted. (The best checkpoint's: `folder=BEST_DIR`, `keep=1`.)

  With `read_only` (a reader of another process's workdir: render.py, export.py, prune.py's source), it only
  restores: it creates, cleans up, deletes and saves nothing."""
  directory = pathlib.Path(workdir).absolute() / folder
  if read_only:
    options = ocp.CheckpointManagerOptions(read_only=True, create=False, cleanup_tmp_directories=False,
                                           save_interval_steps=0, max_to_keep=None)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # Orbax warns that a read-only manager is read-only.
    try:
      return ocp.CheckpointManager(directory, options=options)
    finally:
      absl_logging.set_verbosity(verbosity)
  else:
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True)
  return ocp.CheckpointManager(directory, options=options)


# The fingerprint is computed on the host, in numpy: compiled, it was one program per state layout, which took
# seconds to compile (longer than the save itself on a CPU), and the state is copied to the host to be
# saved anyway.
_CHECKSUM_CHUNK = 1 << 22  # Words summed at a time: bounds the temporaries at 16 MB, whatever an array's size.


def _word_checksum(words: np.ndarray) -> int:
  """sum_i (2i + 1) * words_i mod 2^32 of uint32 words [N]: odd weights, so flipping any one bit (or changing
  any one word) changes the sum."""
  total = 0
  for start in range(0, words.size, _CHECKSUM_CHUNK):
    chunk = words[start:start + _CHECKSUM_CHUNK]
    weights = 2 * np.arange(start, start + chunk.size, dtype=np.uint64).astype(np.uint32) + np.uint32(1)
    total += int(np.sum(chunk * weights, dtype=np.uint32))
  return total % 2**32


def _as_words(x: np.ndarray) -> np.ndarray:
  """The bits of array `x` as uint32 words [N] (zero-extended for types narrower than 32 bits)."""
  x = np.ascontiguousarray(x).ravel()
  if x.dtype == np.bool_:
    return x.astype(np.uint32)
  bits = x.view(np.dtype(f'uint{8 * x.dtype.itemsize}'))
  return bits.view(np.uint32) if x.dtype.itemsize > 4 else bits.astype(np.uint32, copy=False)


def _fingerprint_and_non_finite(state):
  """(a checksum of each array of `state`, a list of ints; the paths of its arrays that hold NaN or inf)."""
  checksums, non_finite = [], []
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    array = parallel.fetch(leaf)
    checksums.append(_word_checksum(_as_words(array)))
    if jnp.issubdtype(array.dtype, jnp.inexact) and not np.isfinite(array).all():
      non_finite.append(jax.tree_util.keystr(path).lstrip('.'))
  return checksums, non_finite


def state_fingerprint(state) -> list:
  """A checksum of each array of `state` (a list of ints) that changes with any flipped bit."""
  return _fingerprint_and_non_finite(state)[0]


class Restored(NamedTuple):
  state: object  # As the abstract state passed to restore.
  train_seconds: float  # Training time of the run up to this checkpoint.


def _as_saved(state) -> dict:
  """{field: value} of a TrainState as checkpoints hold it: without `group_params` where it is None, so that
  a run without parameter groups saves, and resumes, the layout saved before they existed."""
  fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
  if fields.get('group_params', 0) is None:
    del fields['group_params']
  return fields


def save(manager: ocp.CheckpointManager, state, train_seconds: float, **record_entries) -> None:
  """Saves `state` under its step with the run's training seconds, the state's fingerprint and
  `record_entries` (JSON values): the fingerprint is computed now (one pass over the state, which also
  refuses a state holding NaN or inf with a NonFiniteLossError), the files are written asynchronously
  (`manager.wait_until_finished()` to join)."""
  fingerprint, non_finite = _fingerprint_and_non_finite(state)
  step = int(jax.device_get(state.step))
  if non_finite:
    raise NonFiniteLossError(f'The training state of step {step} holds NaN or inf (in {", ".join(non_finite[:3])}'
                             f'{", ..." if len(non_finite) > 3 else ""}); it was not saved to '
                             f'{manager.directory}.')
  record = {'train_seconds': float(train_seconds), 'fingerprint': fingerprint, **record_entries}
  manager.save(step, force=True,
               args=ocp.args.Composite(state=ocp.args.StandardSave(_as_saved(state)),
                                       run=ocp.args.JsonSave(record)))


def _restore_step(manager, step: int, abstract_state) -> Restored:
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(_as_saved(abstract_state)), run=ocp.args.JsonRestore()))
  state, record = abstract_state.replace(**restored['state']), restored['run']
  if state_fingerprint(state) != record['fingerprint']:
    raise CheckpointError('its arrays do not match the fingerprint saved with them')
  return Restored(state, float(record['train_seconds']))


def _move_aside(directory: pathlib.Path, step: int, to_folder: str) -> pathlib.Path:
  """Moves checkpoint `step` of `directory` out of the way of the manager (and of the next save of that
  step), to <workdir>/<to_folder>/<step>-<time>, or <.../<folder>-<step>-<time> for another folder than
  checkpoints/."""
  prefix = '' if directory.name == CHECKPOINTS_DIR else f'{directory.name}-'
  moved = directory.parent / to_folder / f'{prefix}{step}-{time.strftime("%Y%m%d-%H%M%S")}'
  if jax.process_index() == 0:
    moved.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(directory / str(step)), str(moved))
  _sync_processes('jaxnerf_move_checkpoint_aside')
  return moved


def _sync_processes(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def _root_cause(e: BaseException) -> str:
  """'Type: first line' of the innermost cause of `e` (Orbax wraps TensorStore's errors in long texts)."""
  while e.__cause__ is not None:
    e = e.__cause__
  lines = str(e).strip().splitlines()
  return f'{type(e).__name__}: {lines[0] if lines else ""}'[:240]


def _model_mismatch(reason: str) -> Optional[str]:
  """What differs, when a restore failed because the checkpoint holds another model (not damage)."""
  shapes = re.search(r'Requested shape: (\(.*?\)) is not compatible with the stored shape: (\(.*?\))', reason)
  if shapes:
    return f'an array stored as {shapes.group(2)} where this config has {shapes.group(1)}'
  if 'tree structures do not match' in reason:
    return 'other arrays than this config\'s model'
  return None


def _newest_restorable(manager, abstract_state):
  """(Restored or None, {step: why it failed}, its step or None) for the newest checkpoint that restores
  intact."""
  failures: Dict[int, str] = {}
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return _restore_step(manager, step, abstract_state), failures, step
    except Exception as e:  # pylint: disable=broad-except  # Any damage raises something different.
      failures[step] = _root_cause(e)
  return None, failures, None


def restore_newest_intact(manager: ocp.CheckpointManager, abstract_state, move_damaged: bool = True
                          ) -> Optional[Restored]:
  """The newest checkpoint that restores intact, placed like `abstract_state`; None if there is none.

  A checkpoint that fails while an older one restores is damaged: with `move_damaged` (the run that owns the
  workdir) it is moved to damaged_checkpoints/ with a warning naming it; without (a reader), it is skipped
  with that warning and left where it is. If none restores, nothing is moved and a CheckpointError lists why
  each failed (they may come from another version of jaxnerf).
  """
  directory = pathlib.Path(manager.directory)
  failed_reads.drop_leftovers_for_the_process()
  with failed_reads.quieted():
    restored, failures, step = _newest_restorable(manager, abstract_state)
  if restored is None and failures:
    mismatches = [_model_mismatch(r) for r in failures.values()]
    if all(mismatches):
      raise CheckpointError(f'The checkpoints in {directory} hold another model than this config describes '
                            f'({mismatches[0]}): they were trained with another config.model. Use the config '
                            'they were trained with, or a new --workdir.')
    reasons = '; '.join(f'step {s}: {r}' for s, r in failures.items())
    raise CheckpointError(f'No checkpoint in {directory} could be restored ({reasons}). They may come from '
                          'another version of jaxnerf or be damaged: move them away or use a new --workdir.')
  for damaged_step, reason in failures.items():
    if not move_damaged:
      if jax.process_index() == 0:
        print(f'warning: checkpoint {directory / str(damaged_step)} is damaged ({reason}); skipped it and read '
              f'the older checkpoint of step {step} (left in place: only the run that owns the workdir moves it '
              'aside).', file=sys.stderr)
      continue
    moved = _move_aside(directory, damaged_step, DAMAGED_DIR)
    if jax.process_index() == 0:
      print(f'warning: checkpoint {directory / str(damaged_step)} is damaged ({reason}); moved it to '
            f'{moved} and resumed from the older checkpoint of step {step}.', file=sys.stderr)
  if failures and move_damaged:
    manager.reload()
  return restored


def kept_steps(workdir, folder: str = CHECKPOINTS_DIR) -> list:
  """The steps of the checkpoints in workdir/<folder>, oldest first, read from the folder's names (no
  manager is made, so nothing is created)."""
  return sorted(int(p.name) for p in (pathlib.Path(workdir) / folder).glob('*') if p.name.isdigit())


def check_kept(directory, step: int, kept) -> None:
  """Raises a CheckpointError naming the steps `kept` in `directory` unless `step` is one of them."""
  if step not in kept:
    raise CheckpointError(f'{directory} holds no checkpoint of step {step}; it keeps '
                          f'{"steps " + ", ".join(map(str, kept)) if kept else "none"}.')


def restore_step(manager: ocp.CheckpointManager, step: int, abstract_state) -> Restored:
  """Checkpoint `step` of `manager`, placed like `abstract_state`. Nothing is moved: a step that is not
  kept, is damaged or holds another model raises a CheckpointError that says which."""
  directory = pathlib.Path(manager.directory)
  check_kept(directory, step, sorted(manager.all_steps()))
  failed_reads.drop_leftovers_for_the_process()
  with failed_reads.quieted():
    try:
      return _restore_step(manager, step, abstract_state)
    except Exception as e:  # pylint: disable=broad-except  # Any damage raises something different.
      reason = _root_cause(e)
  mismatch = _model_mismatch(reason)
  if mismatch:
    raise CheckpointError(f'The checkpoint {directory / str(step)} holds another model than this config '
                          f'describes ({mismatch}).')
  raise CheckpointError(f'The checkpoint {directory / str(step)} could not be restored ({reason}): it is '
                        'damaged, or comes from another version of jaxnerf.')


def set_aside_newer(manager: ocp.CheckpointManager, step: int) -> list:
  """Moves the checkpoints of `manager` newer than `step` to superseded_checkpoints/ (a run going on from
  `step` would save over them); returns where they went."""
  directory = pathlib.Path(manager.directory)
  moved = [_move_aside(directory, newer, SUPERSEDED_DIR) for newer in sorted(manager.all_steps()) if newer > step]
  if moved:
    manager.reload()
  return moved


class BestCheckpoint(NamedTuple):
  step: int
  psnr: float  # The validation PSNR (config.eval.num_images views) it was kept for.


def best_so_far(best_manager: ocp.CheckpointManager) -> Optional[BestCheckpoint]:
  """The checkpoint that `best_manager` (a BEST_DIR manager) keeps, or None; one whose record cannot be
  read counts as none (with a warning), so that the next validation replaces it."""
  steps = best_manager.all_steps()
  if not steps:
    return None
  step = max(steps)
  try:
    record = best_manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))['run']
    return BestCheckpoint(step, float(record['val_psnr']))
  except Exception as e:  # pylint: disable=broad-except  # Any damage raises something different.
    console.message(f'warning: the record of {pathlib.Path(best_manager.directory) / str(step)} cannot be read '
                    f'({_root_cause(e)}); the next validation replaces that checkpoint.')
    return BestCheckpoint(step, -np.inf)


def save_if_best(best_manager: ocp.CheckpointManager, state, train_seconds: float, psnr: float) -> bool:
  """Saves `state` as the best checkpoint when its validation `psnr` beats the one kept (which the manager
  then deletes; a NaN PSNR never does); returns whether it did. A kept one of this step or later (from a run
  that was resumed from an older checkpoint) is moved to superseded_checkpoints/ first."""
  best = best_so_far(best_manager)
  if not np.isfinite(psnr) or (best is not None and not psnr > best.psnr):  # NaN: a model that renders NaN.
    return False
  step = int(jax.device_get(state.step))
  for later in [s for s in best_manager.all_steps() if s >= step]:
    _move_aside(pathlib.Path(best_manager.directory), later, SUPERSEDED_DIR)
  best_manager.reload()
  save(best_manager, state, train_seconds, val_psnr=float(psnr))
  return True


def save_config(workdir, config: ml_collections.ConfigDict) -> None:
  path = pathlib.Path(workdir) / CONFIG_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  workdirs.write_text_atomically(path, config.to_json(indent=2))


def load_config(workdir) -> ml_collections.ConfigDict:
  """The configuration saved in `workdir`, locked."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise CheckpointError(f'{path} does not exist: {workdir} is not a training workdir '
                          '(train.py writes config.json there when it starts).')
  return parse_config(path.read_text(), path)


def parse_config(text: str, source) -> ml_collections.ConfigDict:
  """The locked configuration of JSON `text` (as `save_config` writes it), read from `source`.

  A config saved by an older jaxnerf lacks the keys added since: they take their values in
  default_config.py (what the older version did without them), with a note naming them.
  """
  try:
    saved = json.loads(text, object_hook=_lists_to_tuples)
  except json.JSONDecodeError as e:
    raise CheckpointError(f'{source} is not valid JSON: {e}.') from e
  defaults = default_config.get_config().to_dict()
  added = _missing_keys(defaults, saved)
  if added:
    console.message(f'note: {source} predates config.{", config.".join(added)}: using their defaults.')
  config = ml_collections.ConfigDict(_merged(defaults, saved) if added else saved)
  config.lock()
  return config


def _missing_keys(defaults: dict, saved: dict, prefix: str = '') -> list:
  missing = []
  for key, value in defaults.items():
    if key not in saved:
      missing.append(prefix + key)
    elif isinstance(value, dict) and isinstance(saved[key], dict):
      missing += _missing_keys(value, saved[key], f'{prefix}{key}.')
  return missing


def _merged(defaults: dict, saved: dict) -> dict:
  """`saved` with the keys it lacks taken from `defaults`, recursively."""
  merged = dict(saved)
  for key, value in defaults.items():
    if key not in saved:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(saved[key], dict):
      merged[key] = _merged(value, saved[key])
  return merged


def _lists_to_tuples(fields: dict) -> dict:
  """JSON turns the config's tuples (e.g. scene_box) into lists; turn them back."""
  return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
