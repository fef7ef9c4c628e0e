"""BitNet b1.58's quantisers, the straight-through estimator, RMSNorm, base-3 packing, and the ternary layer."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.models import layers
from jaxnerf.ops import quantization


def test_absmean_ternary_weights_of_hand_computed_examples():
  # mean|w| = 1: w / 1 rounds to the nearest of -1, 0, 1 (2.1 is clipped).
  t, scale = quantization.ternary_weights(jnp.array([[0.6, -1.2], [0.1, 2.1]]))
  np.testing.assert_array_equal(t, [[1, -1], [0, 1]])
  assert float(scale) == pytest.approx(1.0)
  # mean|w| = 0.035: w / 0.035 = [0.86, -2.57, 0.29, -0.29].
  t, scale = quantization.ternary_weights(jnp.array([[0.03, -0.09], [0.01, -0.01]]))
  np.testing.assert_array_equal(t, [[1, -1], [0, 0]])
  assert float(scale) == pytest.approx(0.035)
  # All zeros: the scale is clamped, the weights stay zero (no division by zero).
  t, scale = quantization.ternary_weights(jnp.zeros((3, 2)))
  np.testing.assert_array_equal(t, 0)
  assert float(scale) == pytest.approx(quantization.SCALE_EPS)


def test_absmax_activations_of_hand_computed_examples():
  x = jnp.array([[4.0, -1.0, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0]])
  x_int, x_scale = quantization.absmax_activations(x, bits=8)
  # Row 0: scale 127 / 4 = 31.75; x * scale = [127, -31.75, 9.525, 0]. Row 1: all zero, scale clamped.
  np.testing.assert_array_equal(x_int, [[127, -32, 10, 0], [0, 0, 0, 0]])
  np.testing.assert_allclose(x_scale[:, 0], [31.75, 127 / quantization.SCALE_EPS], rtol=1e-6)
  x_int, x_scale = quantization.absmax_activations(x[:1], bits=4)  # scale 7 / 4: [7, -1.75, 0.525, 0].
  np.testing.assert_array_equal(x_int, [[7, -2, 1, 0]])
  # Per token: each sample's largest magnitude maps to 127.
  x = jax.random.normal(jax.random.key(0), (6, 5, 16)) * jnp.logspace(-3, 3, 5)[:, None]
  x_int, _ = quantization.absmax_activations(x)
  np.testing.assert_array_equal(np.max(np.abs(x_int), axis=-1), 127)


def test_straight_through_is_the_quantised_value_forward_and_the_identity_backward():
  x = jax.random.uniform(jax.random.key(1), (100,), minval=-3, maxval=3) * 1e3
  q = jnp.round(x)
  chex.assert_trees_all_equal(quantization.straight_through(x, q), q)  # Bit for bit, not to rounding.
  weights = jnp.arange(100.0)
  grad = jax.grad(lambda x: jnp.sum(weights * quantization.straight_through(x, jnp.round(x))))(x)
  np.testing.assert_array_equal(grad, weights)  # jnp.round alone has zero gradient.


@pytest.mark.parametrize('magnitude', [1e-4, 1.0, 1e4])
def test_rms_norm_is_its_formula(magnitude):
  x = np.random.default_rng(0).normal(size=(7, 33)) * magnitude
  reference = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-6)
  np.testing.assert_allclose(quantization.rms_norm(jnp.asarray(x, jnp.float32)), reference, rtol=2e-5)
  np.testing.assert_allclose(quantization.rms_norm(jnp.asarray(x, jnp.float16)), reference,
                             rtol=1e-2, atol=1e-2 if magnitude < 1e-3 else 0)  # float16 in, float32 out.


@pytest.mark.parametrize('shape', [(1,), (4,), (5,), (6,), (7, 3), (256, 319), (31, 64)])
def test_packing_round_trips_bit_for_bit(shape):
  t = np.random.default_rng(sum(shape)).integers(-1, 2, shape).astype(np.int8)
  packed = quantization.pack_ternary(t)
  assert packed.dtype == np.uint8 and packed.size == -(-t.size // 5)  # 1.6 bits per weight.
  unpacked = quantization.unpack_ternary(packed, shape)
  assert unpacked.dtype == np.int8
  np.testing.assert_array_equal(unpacked, t)


def test_packing_refuses_what_is_not_ternary():
  with pytest.raises(ValueError, match='-1, 0 or 1'):
    quantization.pack_ternary(np.array([0, 2, -1]))
  with pytest.raises(ValueError, match='cannot hold'):
    quantization.unpack_ternary(np.zeros(3, np.uint8), (20,))
  with pytest.raises(ValueError, match='cannot hold'):
    quantization.unpack_ternary(np.array([243], np.uint8), (5,))  # 243 = 3^5 is not five digits.


def _layer_and_variables(in_features=24, features=16, seed=0):
  layer = layers.TernaryDense(features)

  @jax.jit  # One program: op by op, ~30 tiny ones.
  def inputs_and_params(seed):
    x = jax.random.normal(jax.random.key(seed), (10, in_features)) * 3.0
    params = dict(layer.init(jax.random.key(seed + 1), x)['params'])
    params['norm_scale'] = 1.0 + 0.5 * jax.random.normal(jax.random.key(seed + 2), (in_features,))
    params['bias'] = 0.1 * jax.random.normal(jax.random.key(seed + 3), (features,))
    return x, params

  x, params = inputs_and_params(seed)
  return layer, {'params': params}, x


def test_table_quantisation_of_hand_computed_examples():
  # max|table| = 3 < 2^2: for 8 bits the scale is 2^(2 - 7) = 1/32, so 3 -> 96 and 0.1 -> round(3.2) = 3.
  q, table_scale = quantization.absmax_table(jnp.array([[3.0, -0.1], [0.0, 1.0]]), 8)
  assert float(table_scale) == 2.0**-5
  np.testing.assert_array_equal(q, [[96, -3], [0, 32]])
  # 4 bits: scale 2^(2 - 3) = 1/2; 3 -> 6 (never the clipped 7 here), 1.0 -> 2, -0.1 -> -0.
  q, table_scale = quantization.absmax_table(jnp.array([[3.0, -0.1], [0.0, 1.0]]), 4)
  assert float(table_scale) == 0.5
  np.testing.assert_array_equal(q, [[6, 0], [0, 2]])
  # The largest entry lands in the top half of the range; an all-zero table keeps the smallest scale.
  for bits in (4, 8):
    table = jax.random.normal(jax.random.key(bits), (1000, 2)) * 7.3
    q, table_scale = quantization.absmax_table(table, bits)
    assert 2**(bits - 2) <= np.abs(q).max() <= 2**(bits - 1) - 1
    assert np.abs(q * table_scale - table).max() <= table_scale / 2 + 1e-6
  _, table_scale = quantization.absmax_table(jnp.zeros((4, 2)), 8)
  assert 0 < float(table_scale) <= quantization.SCALE_EPS


@pytest.mark.parametrize('size', [0, 1, 2, 7, 1000])
def test_int4_packing_round_trips_and_refuses_what_does_not_fit(size):
  q = np.random.default_rng(size).integers(-7, 8, size).astype(np.int8).reshape(-1, 1)
  packed = quantization.pack_int4(q)
  assert packed.dtype == np.uint8 and packed.size == -(-size // 2)
  np.testing.assert_array_equal(quantization.unpack_int4(packed, q.shape), q)
  with pytest.raises(ValueError, match='values must lie in'):
    quantization.pack_int4(np.array([8]))
  with pytest.raises(ValueError, match='cannot hold'):
    quantization.unpack_int4(np.zeros(3, np.uint8), (5,))


def test_ternary_dense_is_bitnet_bitlinear_by_brute_force():
  layer, variables, x = _layer_and_variables()
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), variables['params'])
  x64 = np.asarray(x, np.float64)
  normed = x64 / np.sqrt(np.mean(x64**2, -1, keepdims=True) + 1e-6) * p['norm_scale']
  x_scale = 127 / np.max(np.abs(normed), -1, keepdims=True)
  x_int = np.clip(np.round(normed * x_scale), -128, 127)
  w_scale = np.mean(np.abs(p['kernel']))
  t = np.clip(np.round(p['kernel'] / w_scale), -1, 1)
  expected = np.zeros((x.shape[0], p['kernel'].shape[1]))
  for i in range(x.shape[0]):  # Sums of integers, then one rescale.
    for j in range(p['kernel'].shape[1]):
      expected[i, j] = sum(x_int[i, k] * t[k, j] for k in range(x.shape[1])) * w_scale / x_scale[i, 0]
  np.testing.assert_allclose(layer.apply(variables, x), expected + p['bias'], rtol=1e-5, atol=1e-6)


def test_ternary_dense_gradients_are_those_of_the_dequantised_layer():
  """Straight through both quantisers: d/dkernel, d/dx and d/dgain are those of y = x_deq @ (t * w_scale) + b
  with the quantised values held fixed (BitNet's x + stop_gradient(q(x) - x))."""
  layer, variables, x = _layer_and_variables()
  cotangent = jax.random.normal(jax.random.key(9), (10, 16))
  # Both gradients compiled (op by op, they compiled ~60 tiny programs).
  grads = jax.jit(jax.grad(lambda v, x: jnp.sum(layer.apply(v, x) * cotangent), argnums=(0, 1)))(variables, x)
  p = variables['params']

  def dequantised(kernel, x, gain):
    normed = quantization.rms_norm(x) * gain
    x_int, x_scale = quantization.absmax_activations(normed)
    t, w_scale = quantization.ternary_weights(kernel)
    x_deq = normed + jax.lax.stop_gradient(x_int / x_scale - normed)
    w_deq = kernel + jax.lax.stop_gradient(t * w_scale - kernel)
    return jnp.sum((x_deq @ w_deq + p['bias']) * cotangent)

  kernel_grad, x_grad, gain_grad = jax.jit(jax.grad(dequantised, argnums=(0, 1, 2)))(p['kernel'], x,
                                                                                      p['norm_scale'])
  np.testing.assert_allclose(grads[0]['params']['kernel'], kernel_grad, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grads[0]['params']['norm_scale'], gain_grad, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grads[0]['params']['bias'], jnp.sum(cotangent, 0), rtol=1e-6)
  np.testing.assert_allclose(grads[1], x_grad, rtol=1e-4, atol=1e-6)
  assert np.count_nonzero(kernel_grad) > 0.9 * kernel_grad.size  # Rounding alone would pass no gradient.


def test_ternary_dense_treats_every_leading_axis_as_samples():
  """[groups, samples, in] (as the renderers call it) gives the rows of [groups * samples, in]: values and
  gradients, the gain's and bias's (sums over every sample) included."""
  layer, variables, x = _layer_and_variables()
  cotangent = jax.random.normal(jax.random.key(9), (10, 16))
  loss = lambda v, x, c: jnp.sum(layer.apply(v, x) * c)
  grouped = (x.reshape(2, 5, -1), cotangent.reshape(2, 5, -1))
  chex.assert_trees_all_close(layer.apply(variables, grouped[0]), layer.apply(variables, x).reshape(2, 5, -1),
                              atol=0, rtol=0)
  flat_grads = jax.grad(loss, argnums=(0, 1))(variables, x, cotangent)
  grouped_grads = jax.grad(loss, argnums=(0, 1))(variables, *grouped)
  chex.assert_trees_all_close(grouped_grads[0], flat_grads[0], rtol=1e-6, atol=1e-6)
  chex.assert_trees_all_close(grouped_grads[1].reshape(10, -1), flat_grads[1], rtol=1e-6, atol=1e-6)
  assert np.all(np.asarray(flat_grads[0]['params']['norm_scale']) != 0)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16, jnp.float16])
def test_exported_ternary_layer_computes_what_the_master_weights_compute(dtype):
  layer, variables, x = _layer_and_variables(in_features=319, features=64)
  layer = layer.clone(dtype=dtype)
  exported = {'params': layers.export_ternary(variables['params'])}
  assert exported['params']['ternary'].dtype == jnp.int8 and 'kernel' not in exported['params']
  np.testing.assert_array_equal(np.unique(exported['params']['ternary']), [-1, 0, 1])
  apply = jax.jit(layer.apply)
  chex.assert_trees_all_equal(apply(exported, x), apply(variables, x))
