"""The dense layers fields are built from: full precision, or ternary with quantisation awareness.

A field names each of its layers and gives it a role: 'input' (reads the encoded input), 'output' (a head
that produces density, features or colour) or 'hidden'. `make_dense(layers, full_precision, ...)` builds a
plain `nn.Dense` when `layers` is 'dense', or when the layer's role or name is listed in `full_precision`;
otherwise a `TernaryDense`. BitNet keeps its embedding and output head full precision; the fields' default
(config.model.<field>.full_precision_layers) keeps the 'input' and 'output' layers.

`TernaryDense` is BitNet b1.58's BitLinear (Ma et al. 2024): RMSNorm of the input (with a learnt gain),
8-bit absmax activations per sample, ternary absmean weights, straight-through gradients to float32 master
weights, and a full-precision bias. It reads its weights from whichever its variables hold: the master
'kernel' (training, and rendering from a checkpoint), or 'ternary' (int8 in {-1, 0, 1}) and
'weight_scale' (rendering from an export, see commands/export.py), and computes the same values from both.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf.errors import ConfigError
from jaxnerf.ops import quantization

LAYER_KINDS = ('dense', 'ternary')
ROLES = ('input', 'hidden', 'output')


class TernaryDense(nn.Module):
  """BitLinear: [..., in] -> [..., features], with ternary weights and `activation_bits`-bit activations."""

  features: int
  activation_bits: int = 8
  dtype: Any = jnp.float32  # Of the integer matrix product (accumulated in float32) and of the output.

  @nn.compact
  def __call__(self, x):
    # Rows of a matrix: with the samples along the middle axis of [groups, samples, in], the gradient of
    # the gain (a sum over samples) compiled to a reduction that took 6.8 ms of a 0.14 s
    # configs/bitnerf.py:cpu step on the CPU; over the rows of [groups * samples, in] it is cheap.
    leading_shape = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    gain = self.param('norm_scale', nn.initializers.ones, (x.shape[-1],), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    x = quantization.rms_norm(x) * gain
    x_int, x_scale = quantization.absmax_activations(x, self.activation_bits)
    x_int = quantization.straight_through(x * x_scale, x_int)
    if self.has_variable('params', 'ternary'):  # An exported model: the weights are already ternary.
      t = self.get_variable('params', 'ternary').astype(jnp.float32)
      w_scale = self.get_variable('params', 'weight_scale')
    else:
      w = self.param('kernel', nn.initializers.lecun_normal(), (x.shape[-1], self.features), jnp.float32)
      t, w_scale = quantization.ternary_weights(w)
      t = quantization.straight_through(w / w_scale, t)
    y = quantization.ternary_matmul(x_int, t, w_scale, x_scale, self.dtype) + bias
    return y.reshape(leading_shape + (self.features,)).astype(self.dtype)


def export_ternary(layer_params) -> dict:
  """A TernaryDense's master variables {'kernel', 'bias', 'norm_scale'} -> the exported ones {'ternary'
  (int8), 'weight_scale', 'bias', 'norm_scale'}, whose forward pass is the same."""
  t, w_scale = jax.jit(quantization.ternary_weights)(layer_params['kernel'])
  return {'ternary': jnp.asarray(t, jnp.int8), 'weight_scale': w_scale, 'bias': layer_params['bias'],
          'norm_scale': layer_params['norm_scale']}


def is_ternary(layer_params) -> bool:
  """Whether a layer's variables are a TernaryDense's master variables (what export_ternary takes)."""
  return isinstance(layer_params, dict) and 'norm_scale' in layer_params and 'kernel' in layer_params


def check_layers(layers: str, full_precision: Sequence[str], names: Sequence[str], field: str):
  """Raises ConfigError for an unknown layer kind, or a full-precision entry that is neither a role nor
  one of the field's layer `names`."""
  if layers not in LAYER_KINDS:
    raise ConfigError(f'{field}: layers must be one of {list(LAYER_KINDS)}, got {layers!r}.')
  unknown = [entry for entry in full_precision if entry not in ROLES and entry not in names]
  if unknown:
    raise ConfigError(f'{field}: full_precision_layers {unknown} name no layer; expected roles '
                      f'{list(ROLES)} or layers {list(names)}.')


def make_dense(layers: str, full_precision: Sequence[str], features: int, name: str, role: str, dtype,
               activation_bits: int = 8) -> nn.Module:
  """A layer of `features` units named `name` with `role` (ROLES), of kind `layers` unless `full_precision`
  lists its role or name. Parameters are float32; compute runs in dtype."""
  if layers == 'ternary' and role not in full_precision and name not in full_precision:
    return TernaryDense(features, activation_bits, dtype, name=name)
  return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, name=name)
