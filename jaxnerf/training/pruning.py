"""Magnitude pruning of the fields' MLP weights, and keeping pruned weights at zero while fine-tuning.

Naming conventions:
- `params`: a model's parameter tree, {field: {layer: {'kernel', 'bias', ...}, 'table_0': ..., ...}, ...};
  the top-level names are a renderer's fields ('coarse_field', 'field', 'proposal_fields_0', ...).
- `fields`: field attribute names of a renderer (its LEVEL_FIELDS values); a list attribute such as
  'proposal_fields' names each of its members 'proposal_fields_<i>'.
- A kernel is a dense layer's weight matrix [in, out]: the only arrays pruned (never biases, RMSNorm gains
  or hash tables).
- `sparsity`: the fraction of a kernel's entries that are zero.

Pruning is per layer (Han et al. 2015): each chosen kernel loses its `sparsity` fraction of smallest-magnitude
entries, so that no small layer is pruned away. Fine-tuning keeps them at zero with `keep_pruned_at_zero`,
which zeroes the updates of exactly-zero weights of the chosen kernels (a weight trained to exactly 0.0 by
chance would freeze too, a measure-zero event), so no mask needs to be stored.
"""

from typing import Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf import values

LEVELS = ('coarse', 'fine', 'both')

config_groups.register('optim', owner=__name__, settings=dict(
    pruned_levels=Setting('none', "'coarse', 'fine' or 'both': these levels' MLP weights were pruned (prune.py sets "
                          "it when it fine-tunes a pruned model) and their zero weights stay zero; 'none': no "
                          'pruning.', values.one_of(('none',) + LEVELS, ordered=True)),
))


def fields_of_levels(level_fields: Dict[str, Tuple[str, ...]], levels: str) -> Tuple[str, ...]:
  """The fields that render `levels` ('coarse', 'fine' or 'both') by a renderer's LEVEL_FIELDS; raises
  ValueError for a level the renderer does not have."""
  if levels not in LEVELS:
    raise ValueError(f'levels must be one of {list(LEVELS)}, got {levels!r}.')
  wanted = ('coarse', 'fine') if levels == 'both' else (levels,)
  if levels != 'both' and levels not in level_fields:
    raise ValueError(f'the model has no {levels} level: its levels are {sorted(level_fields)}.')
  return tuple(dict.fromkeys(f for level in wanted for f in level_fields.get(level, ())))


def _in_fields(field_name: str, fields: Sequence[str]) -> bool:
  return any(field_name == f or (field_name.startswith(f + '_') and field_name[len(f) + 1:].isdigit())
             for f in fields)


def _is_pruned_kernel(path, fields: Sequence[str]) -> bool:
  keys = [getattr(k, 'key', getattr(k, 'name', None)) for k in path]
  return len(keys) >= 2 and keys[-1] == 'kernel' and _in_fields(str(keys[0]), fields)


def prune_by_magnitude(params, fields: Sequence[str], sparsity: float):
  """`params` (host arrays) with the round(sparsity * size) smallest-magnitude entries of every kernel of
  `fields` set to zero."""

  def prune(path, x):
    if not _is_pruned_kernel(path, fields):
      return x
    x = np.array(x)
    num_pruned = int(round(sparsity * x.size))
    flat = x.reshape(-1)
    flat[np.argsort(np.abs(flat), kind='stable')[:num_pruned]] = 0
    return flat.reshape(x.shape)

  return jax.tree_util.tree_map_with_path(prune, params)


def kernel_sparsity(params, fields: Sequence[str]) -> Tuple[int, int]:
  """(zero entries, all entries) of the kernels of `fields`."""
  kernels = [np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(params)
             if _is_pruned_kernel(path, fields)]
  return int(sum(np.count_nonzero(k == 0) for k in kernels)), int(sum(k.size for k in kernels))


def keep_pruned_at_zero(fields: Sequence[str]) -> optax.GradientTransformation:
  """Zeroes the updates of the weights of `fields`' kernels that are exactly zero (put after the optimizer
  in a chain)."""

  def update(updates, state, params):
    if params is None:
      raise ValueError('keep_pruned_at_zero needs the parameters.')
    updates = jax.tree_util.tree_map_with_path(
        lambda path, u, p: jnp.where(p == 0, jnp.zeros_like(u), u) if _is_pruned_kernel(path, fields) else u,
        updates, params)
    return updates, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
