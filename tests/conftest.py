"""Test set-up: two fake CPU devices, so every test of training runs data-parallel."""

import chex

chex.set_n_cpu_devices(2)  # Must run before JAX initialises its backends.
