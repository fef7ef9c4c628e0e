"""Activations of raw field outputs: density (NeRF's ReLU, mip-NeRF's softplus, instant-ngp's truncated
exponential) and colour's tone mapping (linear colour to sRGB, as Ref-NeRF's fields output)."""

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



def linear_to_srgb(linear, eps: float = 1e-10):
  """The sRGB transfer curve (IEC 61966-2-1) of linear colour [..., 3], clipped to [0, 1]: 12.92 x below
  0.0031308, 1.055 x^(1/2.4) - 0.055 above (x floored at eps inside the power, so gradients stay finite
  at 0)."""
  linear = jnp.clip(linear, 0.0, 1.0)
  curve = 1.055 * jnp.maximum(linear, eps)**(1.0 / 2.4) - 0.055
  return jnp.where(linear <= 0.0031308, 12.92 * linear, curve)


TONE_MAPPINGS = {
    'none': lambda rgb: rgb,  # The field's colour is the pixel's (NeRF).
    'srgb': linear_to_srgb,  # The field's colour is linear light, shown through the sRGB curve (Ref-NeRF).
}
