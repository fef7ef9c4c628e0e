"""Exported models: a trained model's variables and config in one file, for rendering without checkpoints.

`export.py --workdir=DIR --format=packed` writes DIR/export/packed.npz; `render.py --packed=FILE` renders
from it. A file holds the model's variables (no optimiser state) and the config it was trained with:
- format 'float32': every array as trained;
- format 'packed': each ternary layer (models/layers.TernaryDense) as its ternary weights packed five base-3
  digits a byte (quantization.pack_ternary, 1.6 bits per weight) and its scale; hash tables trained with
  model.hash_grid.table_bits as their integers (int8 for 8 bits, two a byte for 4: quantization.pack_int4)
  and a scale per level; an occupancy grid as its bits (np.packbits), without the density record that only
  training updates (it reads back as zeros). Biases, RMSNorm gains, full-precision layers and float32
  tables stay float32. A packed model renders the same images as the checkpoint it came from: the exported
  ternary layers and tables give the values the quantisation-aware ones give in training.

On disk: a NumPy .npz archive with one array per variable, named by its path ('params/fine_field/trunk_1/
norm_scale'); packed arrays with a suffix: '<layer>/ternary.base3', '<field>/table_<level>_int.int4' and
'occupancy/occupied.bits' (uint8); and '__metadata__', JSON as bytes (format, step, config, the shape of
each packed array, and the shape of each dropped one). It is written under a temporary name and renamed when
complete, so a crash never leaves a partial file under the final name.
"""

import functools
import json
import pathlib
import re
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
INT4_SUFFIX = '.int4'
BITS_SUFFIX = '.bits'
FILE_VERSION = 1
TABLE_KEY = re.compile(r'(^|/)table_\d+$')  # A hash grid level's float32 master table.
DROPPED_STATE = ('occupancy/density_ema',)  # Model state that rendering never reads.
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


def _quantise_tables(flat: Dict[str, np.ndarray], table_bits: int) -> Dict[str, np.ndarray]:
  """`flat` with each hash table replaced by '<table>_int' (int8) and '<table>_scale', as the field's
  forward pass quantises it (the same compiled function: the same bits)."""
  quantise = jax.jit(functools.partial(quantization.absmax_table, bits=table_bits))
  out = {}
  for key, value in flat.items():
    if TABLE_KEY.search(key):
      q, table_scale = jax.device_get(quantise(value))
      out[key + '_int'], out[key + '_scale'] = q.astype(np.int8), np.asarray(table_scale, np.float32)
    else:
      out[key] = value
  return out


def export_variables(variables: Dict, export_format: str, table_bits: int = 0) -> Dict:
  """The variables (host arrays) `export_format` stores: for 'packed', each ternary layer's master weights
  are replaced by its ternary weights and scale (layers.export_ternary), and with `table_bits`
  (config.model.hash_grid.table_bits) each hash table by its integers and scale."""
  if export_format not in FORMATS:
    raise ValueError(f'format must be one of {list(FORMATS)}, got {export_format!r}.')
  if export_format == 'packed':
    variables = _map_layers(variables, lambda layer: jax.device_get(layers_lib.export_ternary(layer)))
    if table_bits:
      variables = _unflatten(_quantise_tables(_flatten(jax.device_get(variables)), table_bits))
  return jax.tree.map(np.asarray, variables)


def _packed_arrays(flat: Dict[str, np.ndarray], table_bits: int):
  """The arrays a packed file stores for the exported variables `flat`: ({name: array}, {key: shape} of the
  packed arrays, {key: shape} of the dropped ones)."""
  arrays, packed_shapes, dropped_shapes = {}, {}, {}
  for key, value in flat.items():
    if key.endswith('/ternary'):
      arrays[key + PACKED_SUFFIX], packed_shapes[key] = quantization.pack_ternary(value), list(value.shape)
    elif table_bits == 4 and key.endswith('_int') and TABLE_KEY.search(key[:-len('_int')]):
      arrays[key + INT4_SUFFIX], packed_shapes[key] = quantization.pack_int4(value), list(value.shape)
    elif value.dtype == np.bool_:
      arrays[key + BITS_SUFFIX], packed_shapes[key] = np.packbits(value.reshape(-1)), list(value.shape)
    elif key in DROPPED_STATE:
      dropped_shapes[key] = [list(value.shape), str(value.dtype)]
    else:
      arrays[key] = value
  return arrays, packed_shapes, dropped_shapes


def _unpacked(key: str, value: np.ndarray, shape) -> tuple:
  """(variable key, array) of a stored packed array."""
  for suffix, unpack in ((PACKED_SUFFIX, quantization.unpack_ternary), (INT4_SUFFIX, quantization.unpack_int4),
                         (BITS_SUFFIX, _unpack_bits)):
    if key.endswith(suffix):
      key = key[:-len(suffix)]
      return key, unpack(value, shape[key])
  return key, value


def _unpack_bits(bits: np.ndarray, shape) -> np.ndarray:
  size = int(np.prod(shape))
  if bits.dtype != np.uint8 or bits.size != -(-size // 8):
    raise ValueError(f'{bits.size} bytes cannot hold {size} bits of shape {tuple(shape)}')
  return np.unpackbits(bits)[:size].astype(bool).reshape(shape)


def write(path, config: ml_collections.ConfigDict, step: int, variables: Dict, export_format: str) -> Dict:
  """Writes the model (`variables` as trained) to `path` in `export_format`; returns the size report
  (`size_report`)."""
  variables = jax.device_get(variables)
  table_bits = config.model.hash_grid.table_bits
  exported = _flatten(export_variables(variables, export_format, table_bits))
  if export_format == 'packed':
    arrays, packed_shapes, dropped_shapes = _packed_arrays(exported, table_bits)
  else:
    arrays, packed_shapes, dropped_shapes = exported, {}, {}
  metadata = {'version': FILE_VERSION, 'format': export_format, 'step': int(step),
              'config': config.to_json(), 'packed_shapes': packed_shapes, 'dropped_shapes': dropped_shapes}
  arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
  path = pathlib.Path(path)

  def save(temporary):
    with open(temporary, 'wb') as f:
      np.savez(f, **arrays)

  workdirs.write_atomically(path, save, replace=False, what='--out')
  return size_report(variables, arrays, path)


def default_path(workdir, export_format: str) -> pathlib.Path:
  return pathlib.Path(workdir) / 'export' / f'{export_format}.npz'


def export_workdir(workdir, export_format: str, path=None) -> Dict:
  """Exports the newest intact checkpoint of `workdir` to `path` (default: workdir/export/<format>.npz);
  returns the size report with the step."""
  path = pathlib.Path(path) if path else workdirs.first_free_name(default_path(workdir, export_format))
  if path.is_dir():  # Checked before the restore, which takes a while.
    raise WorkdirError(f'--out={path} is a directory; expected the path of the file to write, e.g. '
                       f'{path / f"{export_format}.npz"}.')
  if path.suffix.lower() != '.npz':
    raise WorkdirError(f'--out={path}: a {export_format} model is written as .npz (what render.py --packed '
                       'reads); name the file so.')
  workdirs.check_writable(path.parent, 'the folder of the export')
  workdirs.refuse_existing(path, '--out')
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
    flat = dict(_unpacked(key, value, metadata['packed_shapes']) for key, value in arrays.items())
    for key, (shape, dtype) in metadata.get('dropped_shapes', {}).items():
      flat[key] = np.zeros(shape, dtype)
    config = checkpoints.parse_config(metadata['config'], path)
  except Exception as e:  # pylint: disable=broad-except  # Whatever a damaged archive raises.
    raise CheckpointError(f'{path} is not a model exported by this version of jaxnerf ({type(e).__name__}: '
                          f'{e}); export it again with export.py.') from None
  return ExportedModel(config, int(metadata['step']), metadata['format'], _unflatten(flat))


def _origin(key: str) -> str:
  """The trained variable that stored array `key` comes from: packing suffixes dropped, and a quantised
  table's '_int' and '_scale' traced back to the table."""
  for suffix in (PACKED_SUFFIX, INT4_SUFFIX, BITS_SUFFIX):
    key = key[:-len(suffix)] if key.endswith(suffix) else key
  for part in ('_int', '_scale'):
    if key.endswith(part) and TABLE_KEY.search(key[:-len(part)]):
      return key[:-len(part)]
  return key


def _layer_groups(flat: Dict[str, np.ndarray]) -> Dict[str, List[str]]:
  """Stored arrays grouped by what they store: a dense layer's arrays under their layer's path, other
  arrays (hash tables, model state) under the trained variable's path."""
  origins = {key: _origin(key) for key in flat}
  layer_keys = {origin.rsplit('/', 1)[0] for origin in origins.values()
                if origin.rsplit('/', 1)[-1] in ('kernel', 'ternary')}
  groups: Dict[str, List[str]] = {}
  for key, origin in origins.items():
    parent = origin.rsplit('/', 1)[0]
    groups.setdefault(parent if parent in layer_keys else origin, []).append(key)
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
    kind = ('ternary' if 'norm_scale' in leaves else 'dense' if 'kernel' in leaves else
            'table' if TABLE_KEY.search(name) else 'array')
    rows.append({'name': name, 'kind': kind, 'parameters': int(sum(trained[key].size for key in keys)),
                 'float32_bytes': int(sum(trained[key].nbytes for key in keys)),  # Trained arrays are float32.
                 'bytes': int(sum(stored[key].nbytes for key in stored_groups.get(name, [])))})  # 0: dropped.

  def totals(selected):
    float32_bytes, stored_bytes = sum(r['float32_bytes'] for r in selected), sum(r['bytes'] for r in selected)
    return {'count': len(selected), 'float32_bytes': float32_bytes, 'bytes': stored_bytes,
            'ratio': round(float32_bytes / stored_bytes, 2) if stored_bytes else None}

  for row in rows:
    row['ratio'] = round(row['float32_bytes'] / row['bytes'], 2) if row['bytes'] else None
  return {'file': str(path), 'file_bytes': pathlib.Path(path).stat().st_size, 'layers': rows,
          'quantised_layers': totals([r for r in rows if r['kind'] == 'ternary']), 'total': totals(rows)}
