"""Activations of raw field outputs: density (NeRF's ReLU, mip-NeRF's softplus, instant-ngp's truncated
exponential)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf.errors import ConfigError


@jax.custom_jvp
def trunc_exp(x):
  """exp(x), with its gradient computed from exp(min(x, 15)) so that it cannot overflow (instant-ngp)."""
  return jnp.exp(x)


@trunc_exp.defjvp
def _trunc_exp_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  return jnp.exp(x), jnp.exp(jnp.minimum(x, 15.0)) * dx


DENSITY_ACTIVATIONS = {
    'relu': nn.relu,  # The paper's.
    'softplus': lambda x: nn.softplus(x - 1.0),  # mip-NeRF's shifted softplus: smooth, starts near zero.
    'trunc_exp': trunc_exp,  # instant-ngp's.
}


def density_activation(name: str):
  """The activation called `name` in DENSITY_ACTIVATIONS; a ConfigError naming the choices otherwise."""
  if name not in DENSITY_ACTIVATIONS:
    raise ConfigError(f'config.model.density_activation must be one of {sorted(DENSITY_ACTIVATIONS)}, '
                      f'got {name!r}.')
  return DENSITY_ACTIVATIONS[name]

