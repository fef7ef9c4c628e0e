"""The package layout (README, "Layout"; docs/architecture.md): every module imports only its own layer and the
layers below it, the numerics in ops/ use no Flax, optimiser, checkpointing or file I/O, and the library never
imports the repository's configs/."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'jaxnerf'

# Lowest first. A module may import from its own layer and from those before it.
LAYERS = (
    ('errors', 'config_groups', 'console', 'parallel', 'peers', 'values', 'workdirs'),
    ('ops',),
    ('models', 'losses', 'metrics', 'perceptual'),
    ('datasets',),
    ('outputs',),
    ('training',),
    ('commands',),
    ('cli', 'api'),
)
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}
MODULES = sorted(p for p in PACKAGE.rglob('*.py') if p.name != '__init__.py' or p.parent != PACKAGE)


def _top_name(path: pathlib.Path) -> str:
  """'ops' for jaxnerf/ops/camera.py, 'losses' for jaxnerf/losses.py."""
  return path.relative_to(PACKAGE).with_suffix('').parts[0]


def _imports(path: pathlib.Path):
  """(line, imported module path) of every import in `path`, `from a import b` giving 'a.b'."""
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      yield from ((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield from ((node.lineno, f'{node.module}.{alias.name}') for alias in node.names)


def test_every_module_belongs_to_a_layer():
  assert {_top_name(p) for p in MODULES} <= set(LAYER_OF)


@pytest.mark.parametrize('path', MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_a_layer(path):
  own = LAYER_OF[_top_name(path)]
  upward = [f'line {line}: {name}' for line, name in _imports(path)
            if name.startswith('jaxnerf.') and LAYER_OF[name.split('.')[1]] > own]
  assert not upward, upward
  assert not [name for _, name in _imports(path) if name.split('.')[0] == 'configs']


@pytest.mark.parametrize('path', sorted((PACKAGE / 'ops').glob('*.py')), ids=lambda p: p.name)
def test_numerics_import_only_numerics(path):
  allowed = {'jax', 'numpy', 'math', 'typing', 'functools', 'dataclasses', 'jaxnerf', '__future__'}
  assert {name.split('.')[0] for _, name in _imports(path)} <= allowed
  assert 'open(' not in path.read_text()
