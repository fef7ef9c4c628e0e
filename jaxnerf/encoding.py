"""Input encodings for coordinate networks.

Naming: `x` are the points or directions to encode, [..., D]; `min_deg`/`max_deg` bound the octaves.
"""

import jax.numpy as jnp


def positional_encoding(x, min_deg: int, max_deg: int, include_input: bool = True):
  """NeRF's positional encoding gamma(x) (Mildenhall et al. 2020, Eq. 4).

  gamma(x) = (sin(2^k pi x), cos(2^k pi x)) for k in [min_deg, max_deg), applied per coordinate, with x
  itself prepended when `include_input` (as the paper's released code does). Following that code we use
  2^k x rather than 2^k pi x; the scene scale absorbs the factor of pi.

  Args:
    x: [..., D] inputs.
    min_deg, max_deg: the octaves k run over [min_deg, max_deg).
    include_input: whether to prepend x.

  Returns:
    [..., D * (2 * (max_deg - min_deg) + include_input)] encoding, laid out as
    [x, sin(2^k x) for every k and coordinate, cos(2^k x) likewise].
  """
  scales = 2.0 ** jnp.arange(min_deg, max_deg, dtype=x.dtype)
  scaled = (x[..., None, :] * scales[:, None]).reshape(x.shape[:-1] + (-1,))
  # cos(y) = sin(y + pi / 2): one sin call over both halves.
  features = jnp.sin(jnp.concatenate([scaled, scaled + 0.5 * jnp.pi], axis=-1))
  return jnp.concatenate([x, features], axis=-1) if include_input else features


def encoded_size(num_dims: int, min_deg: int, max_deg: int, include_input: bool = True) -> int:
  """Length of the last axis of `positional_encoding` for [..., num_dims] inputs."""
  return num_dims * (2 * (max_deg - min_deg) + int(include_input))
