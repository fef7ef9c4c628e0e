"""Test set-up: two fake CPU devices, so every test of training runs data-parallel; a compilation cache for
the session, so that the many tests that build the same tiny experiment compile it once (shared by the
pytest-xdist workers of `pytest -n`, and by the training processes the tests start); and the tiny
procedural scene, generated once per worker."""

import atexit
import os
import shutil
import tempfile

import chex
import jax
import pytest

chex.set_n_cpu_devices(2)  # Must run before JAX initialises its backends.

# The main pytest process makes the cache; xdist workers, started later from it, inherit its environment.
_CACHE_VARIABLE = 'JAXNERF_TEST_COMPILATION_CACHE'
if _CACHE_VARIABLE not in os.environ:
  os.environ[_CACHE_VARIABLE] = tempfile.mkdtemp(prefix='jaxnerf-test-compilation-cache-')
  atexit.register(shutil.rmtree, os.environ[_CACHE_VARIABLE], ignore_errors=True)
COMPILATION_CACHE_DIR = os.environ[_CACHE_VARIABLE]
jax.config.update('jax_compilation_cache_dir', COMPILATION_CACHE_DIR)
# Every program, however quick to compile, so that the workers and subprocesses share the small ones too: 3,344
# of one run's 3,544 compiles took under 0.5 s (tests' summed time 1,471 s with no threshold, 1,515 s with
# 0.5 s; the cache grows by 2.8 MB per 60 tests).
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


@pytest.fixture(scope='session')
def scene_cache(tmp_path_factory):
  """A cache directory holding the tiny procedural scene of tiny_configs.TINY_SCENE."""
  from jaxnerf.datasets import procedural
  from tests import tiny_configs
  cache = tmp_path_factory.mktemp('scene_cache')
  procedural.ensure_scene(cache, tiny_configs.TINY_SCENE)
  return cache


def subprocess_env(num_devices: int = 1) -> dict:
  """The environment for a train.py or render.py subprocess of a test: `num_devices` fake CPU devices, the
  session's compilation cache, and the repository importable."""
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={num_devices}'
  env['JAX_PLATFORMS'] = 'cpu'
  env['JAX_COMPILATION_CACHE_DIR'] = COMPILATION_CACHE_DIR
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  env['PYTHONPATH'] = os.pathsep.join(filter(None, [REPO, env.get('PYTHONPATH')]))
  return env


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_digests(root, skip=()) -> dict:
  """{path relative to `root`: sha256 of its bytes, or 'dir'} for everything under `root`, except the
  top-level entries named in `skip`: to show that a tool changed nothing in a folder it only reads."""
  import hashlib  # pylint: disable=import-outside-toplevel
  import pathlib  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(root)
  return {str(p.relative_to(root)): 'dir' if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob('*')) if p.relative_to(root).parts[0] not in skip}
