"""The documentation a newcomer reads: every relative link in README.md and docs/ resolves (file and heading),
the README fits its first screen, every page is reachable from docs/index.md, and the module names that the
docs and the tests' docstrings give are today's (each dotted `jaxnerf.` name imports, each path exists)."""

import ast
import importlib
import pathlib
import re

import pytest

from tests.conftest import REPO

ROOT = pathlib.Path(REPO)
PAGES = sorted([ROOT / 'README.md', *(ROOT / 'docs').rglob('*.md')])
LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)\)')


def _prose(markdown: str) -> str:
  """The text outside fenced code blocks and inline code spans."""
  return re.sub(r'`[^`\n]*`', '', re.sub(r'^```.*?^```', '', markdown, flags=re.S | re.M))


def _slug(heading: str) -> str:
  """GitHub's anchor of a heading: lower case, without punctuation (code spans' backticks too), spaces as
  hyphens."""
  return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def _anchors(page: pathlib.Path) -> set:
  text = re.sub(r'^```.*?^```', '', page.read_text(), flags=re.S | re.M)
  slugs, anchors = {}, set()
  for heading in re.findall(r'^#{1,6} (.+)$', text, flags=re.M):
    slug = _slug(heading)
    count = slugs.get(slug, 0)
    anchors.add(slug if count == 0 else f'{slug}-{count}')
    slugs[slug] = count + 1
  return anchors


def _relative_links(page: pathlib.Path):
  return [target for target in LINK.findall(_prose(page.read_text()))
          if not re.match(r'[a-z]+:', target)]  # Not http:, https:, mailto:.


def test_slugs_follow_githubs_rule():
  assert _slug("Choosing a checkpoint: a step, the best, another run's") == \
      'choosing-a-checkpoint-a-step-the-best-another-runs'
  assert _slug('Real captures: LLFF, COLMAP, transforms.json, and your own photos') == \
      'real-captures-llff-colmap-transformsjson-and-your-own-photos'


def _broken_links(page: pathlib.Path, root: pathlib.Path = ROOT):
  """The relative links of `page` whose file or heading does not exist, each with what is missing."""
  broken = []
  for target in _relative_links(page):
    path, _, anchor = target.partition('#')
    resolved = (page.parent / path).resolve() if path else page
    if not resolved.exists():
      broken.append(f'{target}: no file {resolved}')
    elif anchor and resolved.suffix == '.md' and anchor not in _anchors(resolved):
      broken.append(f'{target}: no heading #{anchor} in {resolved.relative_to(root)}')
  return broken


@pytest.mark.parametrize('page', PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_a_heading(page):
  assert not _broken_links(page)


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path):
  page = tmp_path / 'a.md'
  page.write_text('# Title\n\n[ok](#title) [gone](b.md) [no heading](a.md#nothing) [web](https://x.org/y)\n'
                  '```\n[in code](c.md)\n```\n')
  assert [line.split(':')[0] for line in _broken_links(page, tmp_path)] == ['b.md', 'a.md#nothing']


def test_the_readme_fits_a_screen_with_the_methods_the_quick_start_and_the_test_command():
  readme = (ROOT / 'README.md').read_text()
  assert len(readme) < 8000
  first_screen = '\n'.join(readme.splitlines()[:60])
  for part in ('| method | config |', '## Quick start', 'python train.py', 'python render.py',
               '<!-- test command -->'):
    assert part in first_screen, part


def test_every_docs_page_is_reachable_from_the_index():
  index = ROOT / 'docs' / 'index.md'
  linked = {(index.parent / target.partition('#')[0]).resolve() for target in _relative_links(index)}
  pages = {page.resolve() for page in (ROOT / 'docs').rglob('*.md')} - {index.resolve()}
  assert not pages - linked, sorted(str(p.relative_to(ROOT)) for p in pages - linked)


def _resolves(dotted: str) -> bool:
  """Whether jaxnerf.a.b.c names a module, or an attribute of one."""
  parts = dotted.split('.')
  for size in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module('.'.join(parts[:size]))
    except ModuleNotFoundError:
      continue
    for name in parts[size:]:
      if not hasattr(obj, name):
        return False
      obj = getattr(obj, name)
    return True
  return False


def _texts():
  """(where, text) of the docs and of every test module's docstring."""
  for page in PAGES:
    yield str(page.relative_to(ROOT)), page.read_text()
  for test in sorted((ROOT / 'tests').glob('test_*.py')):
    yield str(test.relative_to(ROOT)), ast.get_docstring(ast.parse(test.read_text())) or ''


def test_docs_and_test_docstrings_name_modules_that_exist():
  stale = []
  for where, text in _texts():
    stale += [f'{where}: {name}' for name in sorted(set(re.findall(r'\bjaxnerf(?:\.[A-Za-z_]\w*)+', text)))
              if not _resolves(name)]
    stale += [f'{where}: {path}' for path in sorted(set(re.findall(r'\bjaxnerf/[\w/]+\.py', text)))
              if not (ROOT / path).exists()]
  assert not stale, stale
  assert not _resolves('jaxnerf.rendering') and _resolves('jaxnerf.ops.compositing.composite')
