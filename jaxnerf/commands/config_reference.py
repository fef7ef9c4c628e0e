"""The configuration reference (docs/configuration.md), written from the registered config groups: every key of
the default config with its default, type and meaning, grouped as the config is, each group naming the module
that reads it. A test fails when the page is stale.

  python -m jaxnerf.commands.config_reference            # Rewrites docs/configuration.md.
  python -m jaxnerf.commands.config_reference --check    # Exit 1 if the page differs from the code.
"""

import itertools
import pathlib
import sys

from jaxnerf import config_groups
from jaxnerf.training import default_config  # noqa: F401  (Registers every component's group.)
from jaxnerf import workdirs

PAGE = pathlib.Path(__file__).resolve().parents[2] / 'docs' / 'configuration.md'

_INTRO = """# Configuration reference

Every key of the default config (`configs/default.py`), with its default and what it means. Each key is
registered beside the component that reads it (`jaxnerf/config_groups.py`); this page is written from those
registrations by `python -m jaxnerf.commands.config_reference`, and a test fails when it is stale. Set any key on
the command line: `python train.py --config=configs/demo.py --config.model.hash_grid.num_levels=8`.
"""


# The top-level groups in the order of a run: the scene, its batches, the model, how it is trained and evaluated.
TOP_LEVEL_ORDER = ('', 'procedural', 'capture', 'batching', 'model', 'optim', 'loss', 'train', 'eval')


def _cell(text: str) -> str:
  return text.replace('|', '\\|').replace('\n', ' ')


def _type_name(value) -> str:
  return type(value).__name__


def markdown() -> str:
  """The page: one table per group, the top-level groups in TOP_LEVEL_ORDER (others after them), each one's
  subgroups after it in registration order."""
  entries = list(config_groups.reference())
  group_of = lambda entry: entry.key.rsplit('.', 1)[0] if '.' in entry.key else ''
  registered = {path: i for i, path in enumerate(dict.fromkeys(group_of(e) for e in entries))}
  top_rank = lambda path: (TOP_LEVEL_ORDER.index(path.split('.')[0]) if path.split('.')[0] in TOP_LEVEL_ORDER
                           else len(TOP_LEVEL_ORDER))
  rank = lambda entry: (top_rank(group_of(entry)), '.' in group_of(entry), registered[group_of(entry)])
  lines = [_INTRO]
  for path, group in itertools.groupby(sorted(entries, key=rank), key=group_of):
    group = list(group)
    owners = ', '.join(f'`{owner}`' for owner in dict.fromkeys(e.owner for e in group))
    lines += [f"## {f'`config.{path}`' if path else 'Top level: the scene'}", '', f'Read by {owners}.', '',
              '| key | default | type | meaning |', '| --- | --- | --- | --- |']
    lines += [f'| `{e.key.rsplit(".", 1)[-1]}` | `{_cell(repr(e.default))}` | {_type_name(e.default)} | '
              f'{_cell(e.meaning)} |' for e in group]
    lines.append('')
  return '\n'.join(lines)


def main(argv) -> int:
  page = markdown()
  if '--check' in argv[1:]:
    stale = not PAGE.exists() or PAGE.read_text() != page
    print(f'{PAGE}: {"stale: run python -m jaxnerf.commands.config_reference" if stale else "up to date"}')
    return int(stale)
  workdirs.write_text_atomically(PAGE, page)
  print(f'wrote {PAGE} ({page.count(chr(10))} lines)')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
