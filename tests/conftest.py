"""Test set-up: two fake CPU devices, so every test of training runs data-parallel; and a compilation cache
for the session, so that the many tests that build the same tiny experiment compile it once."""

import atexit
import shutil
import tempfile

import chex
import jax

chex.set_n_cpu_devices(2)  # Must run before JAX initialises its backends.

_CACHE_DIR = tempfile.mkdtemp(prefix='jaxnerf-test-compilation-cache-')
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
jax.config.update('jax_compilation_cache_dir', _CACHE_DIR)
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.5)
