"""A field (fields.FieldBase) initialised and applied at positions, op by op or compiled: for the tests of
fields (test_models.py) and of their normals (test_normals.py)."""

import functools

import jax


def at(field, variables, *args):
  """field.apply(variables, *args) at positions (fields.FieldBase.at_positions)."""
  return field.apply(variables, *args, method='at_positions')


# Compiled, once per field's settings (flax modules hash by them): op by op, initialising or applying a field
# compiles a tiny program per operation, ~0.05 s each on a small CPU.
compiled_at = jax.jit(at, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def compiled_init(field, key, *args):
  """field.init(key, *args) at positions, compiled."""
  return field.init(key, *args, method='at_positions')
