"""Coordinates of scene space: the axis-aligned scene box and the unit cube that grids index.

Naming conventions:
- `box`: (x_min, y_min, z_min, x_max, y_max, z_max), a sequence of 6 numbers.
- `points`: world-space points [..., 3]; `unit`: the same points in box coordinates, the box mapped onto
  [0, 1]^3.
"""

from typing import Sequence

import jax.numpy as jnp


def to_unit_cube(points, box: Sequence[float]):
  """Points [..., 3] in box coordinates: the box's min corner goes to 0 and its max corner to 1."""
  box = jnp.asarray(box, jnp.float32)
  return (points - box[:3]) / (box[3:] - box[:3])


def from_unit_cube(unit, box: Sequence[float]):
  """World points [..., 3] of box coordinates [..., 3]; the inverse of `to_unit_cube`."""
  box = jnp.asarray(box, jnp.float32)
  return box[:3] + unit * (box[3:] - box[:3])


def inside_unit_cube(unit):
  """Whether box coordinates [..., 3] lie in the box (its faces included), [...] bool."""
  return jnp.all((unit >= 0.0) & (unit <= 1.0), axis=-1)
