"""Exported models: a trained model's variables and config in one file, for rendering without checkpoints.

`export.py --workdir=DIR --format=packed` writes DIR/export/packed.npz; `render.py --packed=FILE` renders
from it. A file holds the model's variables (no optimiser state) and the config it was trained with:
- format 'float32': every array as trained;
- format 'packed': each ternary layer (models/layers.TernaryDense) as its ternary weights packed five base-3
  digits a byte (quantization.pack_ternary, 1.6 bits per weight) and its scale; its bias and RMSNorm gain,
  the full-precision layers, hash tables and model state (occupancy grids) stay float32. A packed model
  renders the same images as the checkpoint it came from: the exported ternary layer computes the values
  the quantisation-aware one computes.

On disk: a NumPy .npz archive with one array per variable, named by its path ('params/fine_field/trunk_1/
norm_scale'); packed weights as '<layer>/ternary.base3' (uint8); and '__metadata__', JSON as bytes (format,
step, config, and the shape of each packed array). It is written under a temporary name and renamed when
complete, so a crash never leaves a partial file under the final name.
"""

import json
import pathlib
from typing import Dict, List, NamedTuple

import jax
import ml_collections
import numpy as np

from jaxnerf.errors import CheckpointError
from jaxnerf.errors import WorkdirError
from jaxnerf.models import layers as layers_lib
from jaxnerf.ops import quantization
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from jaxnerf import workdirs

FORMATS = ('packed', 'float32')
METADATA_KEY = '__metadata__'
PACKED_SUFFIX = '.base3'
FILE_VERSION = 1
ZIP_MAGIC = b'PK\x03\x04'  # How every .npz file starts.


class ExportedModel(NamedTuple):
  config: ml_collections.ConfigDict  # Locked, as trained.
  step: int
  format: str
  variables: Dict  # {'params': ..., and model-state collections}, host arrays; ternary layers as exported.


def _flatten(tree, prefix='') -> Dict[str, np.ndarray]:
  if not isinstance(tree, dict):
    return {prefix: np.asarray(tree)}
  return {k: v for key, value in tree.items() for k, v in _flatten(value, f'{prefix}/{key}' if prefix else key).items()}


def _unflatten(flat: Dict[str, np.ndarray]) -> Dict:
  tree = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split('/')
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value
  return tree


def _map_layers(tree, fn):
  """`tree` with every TernaryDense's master variables replaced by fn(variables)."""
  if not isinstance(tree, dict):
    return tree
  if layers_lib.is_ternary(tree):
    return fn(tree)
  return {key: _map_layers(value, fn) for key, value in tree.items()}


def export_variables(variables: Dict, export_format: str) -> Dict:
  """The variables (host arrays) `export_format` stores: for 'packed', each ternary layer's master weights
  are replaced by its ternary weights and scale (layers.export_ternary)."""
  if export_format not in FORMATS:
    raise ValueError(f'format must be one of {list(FORMATS)}, got {export_format!r}.')
  if export_format == 'packed':
    variables = _map_layers(variables, lambda layer: jax.device_get(layers_lib.export_ternary(layer)))
  return jax.tree.map(np.asarray, variables)


def write(path, config: ml_collections.ConfigDict, step: int, variables: Dict, export_format: str) -> Dict:
  """Writes the model (`variables` as trained) to `path` in `export_format`; returns the size report
  (`size_report`)."""
  variables = jax.device_get(variables)
  exported = export_variables(variables, export_format)
  arrays, packed_shapes = {}, {}
  for key, value in _flatten(exported).items():
    if export_format == 'packed' and key.endswith('/ternary'):
      arrays[key + PACKED_SUFFIX] = quantization.pack_ternary(value)
      packed_shapes[key] = list(value.shape)
    else:
      arrays[key] = value
  metadata = {'version': FILE_VERSION, 'format': export_format, 'step': int(step),
              'config': config.to_json(), 'packed_shapes': packed_shapes}
  arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
  path = pathlib.Path(path)

  def save(temporary):
    with open(temporary, 'wb') as f:
      np.savez(f, **arrays)

  workdirs.write_atomically(path, save)
  return size_report(variables, arrays, path)


def default_path(workdir, export_format: str) -> pathlib.Path:
  return pathlib.Path(workdir) / 'export' / f'{export_format}.npz'


def export_workdir(workdir, export_format: str, path=None) -> Dict:
  """Exports the newest intact checkpoint of `workdir` to `path` (default: workdir/export/<format>.npz);
  returns the size report with the step."""
  path = pathlib.Path(path or default_path(workdir, export_format))
  if path.is_dir():  # Checked before the restore, which takes a while.
    raise WorkdirError(f'--out={path} is a directory; expected the path of the file to write, e.g. '
                       f'{path / f"{export_format}.npz"}.')
  workdirs.check_writable(path.parent, 'the folder of the export')
  config, _, state = experiment_lib.restore_model(workdir)
  step = int(jax.device_get(state.step))
  report = write(path, config, step, state.variables, export_format)
  return {'format': export_format, 'step': step, **report}


def read(path) -> ExportedModel:
  """The model exported to `path`, with packed ternary weights unpacked to int8."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise CheckpointError(f'{path} does not exist: export a trained workdir first '
                          '(python export.py --workdir=DIR --format=packed).')
  with open(path, 'rb') as f:
    if f.read(4) != ZIP_MAGIC:  # (NumPy would take any other file for a pickle and suggest loading it so.)
      raise CheckpointError(f'{path} is not a model exported by export.py: not a .npz archive.')
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {key: archive[key] for key in archive.files}
    metadata = json.loads(arrays.pop(METADATA_KEY).tobytes().decode())
    if metadata.get('version') != FILE_VERSION or metadata.get('format') not in FORMATS:
      raise ValueError(f"version {metadata.get('version')!r}, format {metadata.get('format')!r}")
    flat = {}
    for key, value in arrays.items():
      if key.endswith(PACKED_SUFFIX):
        key = key[:-len(PACKED_SUFFIX)]
        value = quantization.unpack_ternary(value, metadata['packed_shapes'][key])
      flat[key] = value
    config = checkpoints.parse_config(metadata['config'], path)
  except Exception as e:  # pylint: disable=broad-except  # Whatever a damaged archive raises.
    raise CheckpointError(f'{path} is not a model exported by this version of jaxnerf ({type(e).__name__}: '
                          f'{e}); export it again with export.py.') from None
  return ExportedModel(config, int(metadata['step']), metadata['format'], _unflatten(flat))


def _layer_groups(flat: Dict[str, np.ndarray]) -> Dict[str, List[str]]:
  """Stored arrays grouped by layer: a dense layer's arrays under their layer's path, other arrays (hash
  tables, model state) alone."""
  layer_keys = {key.rsplit('/', 1)[0] for key in flat
                if key.rsplit('/', 1)[-1] in ('kernel', 'ternary', 'ternary' + PACKED_SUFFIX)}
  groups: Dict[str, List[str]] = {}
  for key in flat:
    parent = key.rsplit('/', 1)[0]
    groups.setdefault(parent if parent in layer_keys else key, []).append(key)
  return groups


def size_report(trained_variables: Dict, stored_arrays: Dict[str, np.ndarray], path) -> Dict:
  """Bytes per layer as stored against the same layer's trained variables in float32, and in total.

  Returns:
    {'file', 'file_bytes', 'layers': [{'name', 'kind' ('ternary', 'dense' or 'array'), 'parameters',
    'float32_bytes', 'bytes', 'ratio'}], 'quantised_layers': {...}, 'total': {...}} where 'bytes' counts
    the arrays' data (file_bytes adds the archive's headers and the config).
  """
  trained = _flatten(trained_variables)
  stored = {key: value for key, value in stored_arrays.items() if key != METADATA_KEY}
  trained_groups, stored_groups = _layer_groups(trained), _layer_groups(stored)
  rows = []
  for name, keys in trained_groups.items():
    leaves = {key.rsplit('/', 1)[-1] for key in keys}
    kind = 'ternary' if 'norm_scale' in leaves else 'dense' if 'kernel' in leaves else 'array'
    rows.append({'name': name, 'kind': kind, 'parameters': int(sum(trained[key].size for key in keys)),
                 'float32_bytes': int(sum(trained[key].nbytes for key in keys)),  # Trained arrays are float32.
                 'bytes': int(sum(stored[key].nbytes for key in stored_groups[name]))})

  def totals(selected):
    float32_bytes, stored_bytes = sum(r['float32_bytes'] for r in selected), sum(r['bytes'] for r in selected)
    return {'count': len(selected), 'float32_bytes': float32_bytes, 'bytes': stored_bytes,
            'ratio': round(float32_bytes / stored_bytes, 2) if stored_bytes else None}

  for row in rows:
    row['ratio'] = round(row['float32_bytes'] / row['bytes'], 2)
  return {'file': str(path), 'file_bytes': pathlib.Path(path).stat().st_size, 'layers': rows,
          'quantised_layers': totals([r for r in rows if r['kind'] == 'ternary']), 'total': totals(rows)}
