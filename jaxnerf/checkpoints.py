"""Checkpoints (Orbax) and the run's saved configuration.

A workdir holds `checkpoints/<step>/` (Orbax, written atomically: an interrupted save never replaces a good
checkpoint) and `config.json`, the configuration the checkpoints were trained with.
"""

import json
import pathlib
from typing import Optional

import jax
import ml_collections
import orbax.checkpoint as ocp

from jaxnerf.errors import CheckpointError

CONFIG_FILE = 'config.json'


def make_manager(workdir, keep: int) -> ocp.CheckpointManager:
  """A manager for `workdir/checkpoints` keeping the newest `keep` checkpoints."""
  directory = pathlib.Path(workdir).absolute() / 'checkpoints'
  return ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save(manager: ocp.CheckpointManager, state) -> None:
  """Starts saving `state` under its step (asynchronously; `manager.wait_until_finished()` to join)."""
  manager.save(int(jax.device_get(state.step)), args=ocp.args.StandardSave(state), force=True)


def restore_latest(manager: ocp.CheckpointManager, abstract_state) -> Optional[object]:
  """The newest checkpoint, placed like `abstract_state` (a pytree of jax.ShapeDtypeStruct); None if none."""
  step = manager.latest_step()
  if step is None:
    return None
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def save_config(workdir, config: ml_collections.ConfigDict) -> None:
  path = pathlib.Path(workdir) / CONFIG_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix('.json.tmp')
  tmp.write_text(config.to_json(indent=2))
  tmp.replace(path)


def load_config(workdir) -> ml_collections.ConfigDict:
  """The configuration saved in `workdir`, locked."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise CheckpointError(f'{path} does not exist: {workdir} is not a training workdir '
                            '(train.py writes config.json there when it starts).')
  try:
    config = ml_collections.ConfigDict(json.loads(path.read_text(), object_hook=_lists_to_tuples))
  except json.JSONDecodeError as e:
    raise CheckpointError(f'{path} is not valid JSON: {e}.') from e
  config.lock()
  return config


def _lists_to_tuples(fields: dict) -> dict:
  """JSON turns the config's tuples (e.g. scene_box) into lists; turn them back."""
  return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
