"""Ternary weights and 8-bit activations (BitNet b1.58), low-bit hash tables, and packing them into bytes.

Naming conventions:
- `w`: a layer's full-precision (master) weights [in, out]; `t`: ternary weights, values in {-1, 0, 1}, of
  the same shape; `w_scale`: the scalar by which t * w_scale approximates w (absmean, Eq. 1-3 of
  Ma et al. 2024, "The Era of 1-bit LLMs").
- `x`: activations [..., in]; `x_int`: integer-valued activations in [-2^(b-1), 2^(b-1) - 1] for b bits;
  `x_scale` [..., 1]: the per-token factor with x_int ~ x * x_scale (absmax, Eq. 4 of Wang et al. 2023,
  "BitNet").
- A "token" is one sample along a ray: activations are scaled per sample, over its features.
- `table`: one level's hash table [size, features]; `q`: its entries as integers in [-(2^(b-1) - 1),
  2^(b-1) - 1] for b bits, and `table_scale` the power of two with q * table_scale ~ table, one per level.

Forward values are exact: `straight_through` returns its quantised argument bit for bit (its gradient is the
identity), and `ternary_matmul` multiplies integer-valued floats, whose sums are exact in float32 (|sum| <=
128 * fan_in < 2^24), before one rescale. So a layer computed from packed ternary weights equals the one
trained with quantisation awareness as long as both use the same w_scale.
"""

import jax
import jax.numpy as jnp
import numpy as np

SCALE_EPS = 1e-5  # Lower bound of the absmean and absmax statistics (the BitNet authors' clamp).
TRITS_PER_BYTE = 5  # 3^5 = 243 <= 256: base-3 packing stores 1.6 bits per weight.


def straight_through(x, quantised):
  """`quantised` in the forward pass, bit for bit, with the gradient of the identity with respect to x
  (the straight-through estimator, Bengio et al. 2013). x and quantised have the same shape."""
  return quantised + (x - jax.lax.stop_gradient(x))


def rms_norm(x, eps: float = 1e-6):
  """x [..., n] / sqrt(mean(x^2) + eps) over the last axis (Zhang & Sennrich 2019), in float32."""
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


def ternary_weights(w):
  """BitNet b1.58's absmean quantiser: (t [in, out] in {-1, 0, 1}, w_scale []) with w_scale = mean|w|
  (at least SCALE_EPS) and t = RoundClip(w / w_scale, -1, 1). Both as float32, without gradients."""
  w = jax.lax.stop_gradient(w.astype(jnp.float32))
  w_scale = jnp.maximum(jnp.mean(jnp.abs(w)), SCALE_EPS)
  return jnp.clip(jnp.round(w / w_scale), -1.0, 1.0), w_scale


def absmax_activations(x, bits: int = 8):
  """BitNet's absmax quantiser, per token: (x_int [..., n], x_scale [..., 1]) with x_scale =
  (2^(bits-1) - 1) / max|x| (max|x| at least SCALE_EPS) and x_int = clip(round(x * x_scale), -2^(bits-1),
  2^(bits-1) - 1). Both as float32, without gradients."""
  x = jax.lax.stop_gradient(x.astype(jnp.float32))
  levels = 2.0**(bits - 1)
  x_scale = (levels - 1) / jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), SCALE_EPS)
  return jnp.clip(jnp.round(x * x_scale), -levels, levels - 1), x_scale


def absmax_table(table, bits: int):
  """A hash table [N, F] as b-bit integers: (q [N, F], float32 integer values in [-(2^(b-1) - 1),
  2^(b-1) - 1], table_scale []) with q = round(table / table_scale), where table_scale is the power of two
  2^(e - b + 1) for max|table| < 2^e (max|table| at least SCALE_EPS): the largest entry maps to at least
  2^(b-2). Without gradients.

  A power of two makes the division and the product q * table_scale exact, so that every compiled program
  (the training step, the renderer, export.py) gets the same bits: a packed model renders the checkpoint's
  images exactly. It costs up to half of the largest level of an absmax scale (about one bit)."""
  table = jax.lax.stop_gradient(table.astype(jnp.float32))
  largest = 2.0**(bits - 1) - 1
  _, exponent = jnp.frexp(jnp.maximum(jnp.max(jnp.abs(table)), SCALE_EPS))
  table_scale = jnp.ldexp(jnp.float32(1.0), exponent - (bits - 1))
  return jnp.clip(jnp.round(table / table_scale), -largest, largest), table_scale


def ternary_matmul(x_int, t, w_scale, x_scale, dtype=jnp.float32):
  """(x_int @ t) * w_scale / x_scale: [..., in] x [in, out] -> [..., out] float32.

  The product runs in `dtype` (integers up to 256 are exact in bfloat16 and float16) and accumulates in
  float32, where the integer sums are exact.
  """
  dot = jnp.matmul(x_int.astype(dtype), t.astype(dtype), preferred_element_type=jnp.float32)
  return dot * (w_scale / x_scale)


def pack_ternary(t: np.ndarray) -> np.ndarray:
  """Ternary values (any shape, in {-1, 0, 1}) -> uint8 [ceil(size / 5)]: five base-3 digits per byte,
  value + 1 in digit i (weight 3^i), in C order; the last byte is padded with zeros (value -1 digits that
  unpacking drops)."""
  flat = np.asarray(t).reshape(-1)
  if not np.all(np.isin(flat, (-1, 0, 1))):
    raise ValueError('pack_ternary: values must be -1, 0 or 1.')
  digits = (flat + 1).astype(np.uint8)
  padded = np.zeros(-(-flat.size // TRITS_PER_BYTE) * TRITS_PER_BYTE, np.uint8)
  padded[:flat.size] = digits
  powers = 3**np.arange(TRITS_PER_BYTE, dtype=np.uint8)
  return np.sum(padded.reshape(-1, TRITS_PER_BYTE) * powers, axis=-1, dtype=np.uint8)


def unpack_ternary(packed: np.ndarray, shape) -> np.ndarray:
  """The inverse of `pack_ternary`: int8 values in {-1, 0, 1} of `shape`."""
  size = int(np.prod(shape))
  packed = np.asarray(packed, np.uint8).reshape(-1)
  if packed.size != -(-size // TRITS_PER_BYTE) or np.any(packed >= 3**TRITS_PER_BYTE):
    raise ValueError(f'unpack_ternary: {packed.size} bytes cannot hold {size} base-3 values of shape '
                     f'{tuple(shape)}.')
  digits = (packed[:, None] // 3**np.arange(TRITS_PER_BYTE)) % 3
  return (digits.reshape(-1)[:size].astype(np.int8) - 1).reshape(shape)


def pack_int4(q: np.ndarray) -> np.ndarray:
  """Integers (any shape) in [-7, 7] -> uint8 [ceil(size / 2)]: q + 8 in the low nibble of byte i // 2 for
  even i, the high nibble for odd i, in C order (a padded last nibble is 0, which unpacking drops)."""
  flat = np.asarray(q).reshape(-1)
  if flat.size and (flat.min() < -7 or flat.max() > 7):
    raise ValueError('pack_int4: values must lie in [-7, 7].')
  nibbles = np.zeros(-(-flat.size // 2) * 2, np.uint8)
  nibbles[:flat.size] = (flat + 8).astype(np.uint8)
  return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, shape) -> np.ndarray:
  """The inverse of `pack_int4`: int8 values in [-7, 7] of `shape`."""
  size = int(np.prod(shape))
  packed = np.asarray(packed, np.uint8).reshape(-1)
  nibbles = np.stack([packed & 15, packed >> 4], axis=-1).reshape(-1)
  if packed.size != -(-size // 2) or np.any(nibbles[:size] == 0):
    raise ValueError(f'unpack_int4: {packed.size} bytes cannot hold {size} 4-bit values of shape {tuple(shape)}.')
  return (nibbles[:size].astype(np.int8) - 8).reshape(shape)
