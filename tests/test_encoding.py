"""Tests of jaxnerf.ops.encoding: NeRF's positional encoding against a brute-force loop, sizes and extremes."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf.ops import encoding
# Compiled once per configuration: eager dispatch of every small op would dominate the test time.
_encode = jax.jit(encoding.positional_encoding, static_argnums=(1, 2, 3))


@jax.jit
def _weighted_square_grad(x):
  return jax.grad(lambda y: jnp.sum(encoding.positional_encoding(y, 0, 10) ** 2 * jnp.arange(63)))(x)


@jax.jit
def _sum_grad(x):
  return jax.grad(lambda y: jnp.sum(encoding.positional_encoding(y, 0, 4)))(x)


def _brute_force_encoding(x, min_deg, max_deg, include_input):
  """The documented layout, one feature at a time: [x, sin(2^k x_d) for k, d; cos(2^k x_d) for k, d]."""
  x = np.asarray(x, np.float64)
  out = np.zeros(x.shape[:-1] + (encoding.encoded_size(x.shape[-1], min_deg, max_deg, include_input),))
  for index in np.ndindex(x.shape[:-1]):
    features = list(x[index]) if include_input else []
    for fn in (math.sin, math.cos):
      for k in range(min_deg, max_deg):  # Octave-major, coordinate-minor.
        for d in range(x.shape[-1]):
          features.append(fn(2.0**k * x[index][d]))
    out[index] = features
  return out


@pytest.mark.parametrize('min_deg, max_deg, include_input, num_dims', [
    (0, 4, True, 3),
    (0, 10, False, 3),
    (2, 6, True, 2),
    (-2, 3, True, 1),
    (0, 1, False, 4),
    (3, 3, True, 3),  # No octaves: just x.
])
def test_matches_brute_force(min_deg, max_deg, include_input, num_dims):
  x = np.random.default_rng(0).uniform(-1.5, 1.5, (2, 5, num_dims)).astype(np.float32)
  actual = _encode(x, min_deg, max_deg, include_input)
  expected = _brute_force_encoding(x, min_deg, max_deg, include_input)
  chex.assert_shape(actual, expected.shape)
  # Arguments reach 1.5 * 2^9 = 768: cos is evaluated as sin(y + pi / 2), whose float32 rounding is ~ulp(768).
  np.testing.assert_allclose(actual, expected, atol=2e-4, rtol=0)
  if include_input:
    np.testing.assert_array_equal(actual[..., :num_dims], x)  # The input is copied exactly.


@pytest.mark.parametrize('num_dims, min_deg, max_deg, include_input, expected', [
    (3, 0, 10, True, 63),  # The paper's point encoding: 3 + 3 * 2 * 10.
    (3, 0, 4, True, 27),  # The paper's direction encoding.
    (3, 0, 10, False, 60),
    (2, 5, 7, True, 10),
    (1, 0, 0, False, 0),
])
def test_encoded_size(num_dims, min_deg, max_deg, include_input, expected):
  assert encoding.encoded_size(num_dims, min_deg, max_deg, include_input) == expected
  x = np.zeros((4, num_dims), np.float32)
  assert _encode(x, min_deg, max_deg, include_input).shape == (4, expected)


def test_known_values():
  # x = pi / 2 at octave 0: sin = 1, cos = 0; at octave 1 (2x = pi): sin = 0, cos = -1.
  out = encoding.positional_encoding(jnp.array([[np.pi / 2]]), 0, 2, include_input=False)
  np.testing.assert_allclose(out[0], [1.0, 0.0, 0.0, -1.0], atol=1e-6)


def test_jit_and_batch_shapes():
  x = jnp.linspace(-1.0, 1.0, 2 * 3 * 4 * 3).reshape(2, 3, 4, 3)
  out = _encode(x, 0, 6, True)
  chex.assert_shape(out, (2, 3, 4, encoding.encoded_size(3, 0, 6)))
  # Every leading index is encoded independently.
  np.testing.assert_allclose(out[1, 2, 3], _encode(x[1, 2, 3][None], 0, 6, True)[0], atol=1e-6)


@pytest.mark.parametrize('scale', [0.0, 1e-8, 1e-3, 1.0, 1e2, 1e4])
def test_finite_values_and_gradients_at_extreme_magnitudes(scale):
  x = (scale * np.random.default_rng(1).uniform(-1.0, 1.0, (16, 3))).astype(np.float32)
  out = _encode(x, 0, 10, True)
  chex.assert_tree_all_finite(out)
  assert float(jnp.max(jnp.abs(out[:, 3:]))) <= 1.0 + 1e-6  # The sinusoids stay bounded.
  grad = _weighted_square_grad(x)
  chex.assert_tree_all_finite(grad)
  # Analytic gradient of sum(features): d/dx [x + sum_k sin(2^k x) + cos(2^k x)].
  grad_sum = _sum_grad(x)
  scales = 2.0 ** np.arange(4)
  x64 = np.asarray(x, np.float64)[..., None]
  expected = 1.0 + np.sum(scales * (np.cos(scales * x64) - np.sin(scales * x64)), axis=-1)
  # float32 rounding of arguments of size |x| * 8 limits the accuracy at large |x|.
  np.testing.assert_allclose(grad_sum, expected, atol=1e-4 + 1e-5 * scale)


_sh = jax.jit(encoding.spherical_harmonics, static_argnums=1)


def _sphere_quadrature(num_z=12, num_phi=24):
  """Directions and weights integrating polynomials of degree < 2 * num_z exactly over the unit sphere
  (Gauss-Legendre in z, uniform in azimuth)."""
  z, wz = np.polynomial.legendre.leggauss(num_z)
  phi = np.arange(num_phi) * 2 * np.pi / num_phi
  z, phi = np.meshgrid(z, phi, indexing='ij')
  r = np.sqrt(1 - z**2)
  directions = np.stack([r * np.cos(phi), r * np.sin(phi), z], -1).reshape(-1, 3)
  weights = (np.repeat(wz[:, None], num_phi, 1) * 2 * np.pi / num_phi).reshape(-1)
  return directions, weights


@pytest.mark.parametrize('degree', [1, 2, 3, 4, 5])
def test_spherical_harmonics_are_orthonormal(degree):
  directions, weights = _sphere_quadrature()
  y = np.asarray(_sh(jnp.asarray(directions, jnp.float32), degree), np.float64)
  assert y.shape == (directions.shape[0], degree**2)
  gram = (y * weights[:, None]).T @ y  # Integral of Y_i Y_j over the sphere.
  np.testing.assert_allclose(gram, np.eye(degree**2), atol=2e-6)


def test_spherical_harmonics_band_power_is_the_same_in_every_direction():
  # The addition theorem: sum_m Y_lm(d)^2 = (2l + 1) / (4 pi) for every unit d.
  d = np.random.default_rng(0).normal(size=(50, 3))
  d /= np.linalg.norm(d, axis=-1, keepdims=True)
  y = np.asarray(_sh(jnp.asarray(d, jnp.float32), 5))
  for band in range(5):
    power = np.sum(y[:, band**2:(band + 1)**2] ** 2, axis=-1)
    np.testing.assert_allclose(power, (2 * band + 1) / (4 * np.pi), rtol=1e-4)


def test_spherical_harmonics_known_values_and_bad_degree():
  y = np.asarray(_sh(jnp.array([[0.0, 0.0, 1.0]]), 2))[0]
  c0, c1 = 0.5 / np.sqrt(np.pi), np.sqrt(3 / (4 * np.pi))
  np.testing.assert_allclose(y, [c0, 0.0, c1, 0.0], atol=1e-6)
  with pytest.raises(ValueError, match='degrees 1 to 5'):
    encoding.spherical_harmonics(jnp.ones((1, 3)), 6)


def test_integrated_encoding_is_the_expected_encoding_over_the_gaussian():
  """Monte Carlo: the mean of positional_encoding over Gaussian samples equals IPE (Eq. 14)."""
  rng = np.random.default_rng(0)
  mean, variance = np.array([0.3, -1.2, 2.0]), np.array([1e-4, 0.01, 0.3])
  samples = mean + np.sqrt(variance) * rng.standard_normal((400_000, 3))
  monte_carlo = np.mean(np.asarray(encoding.positional_encoding(jnp.asarray(samples, jnp.float32), 0, 5,
                                                                 include_input=False)), axis=0)
  ipe = encoding.integrated_positional_encoding(jnp.asarray(mean, jnp.float32),
                                                jnp.asarray(variance, jnp.float32), 0, 5)
  np.testing.assert_allclose(ipe, monte_carlo, atol=5e-3)


def test_integrated_encoding_of_a_point_is_the_positional_encoding_and_wide_gaussians_fade():
  x = jnp.array([[0.1, 0.7, -3.0]])
  chex.assert_trees_all_close(encoding.integrated_positional_encoding(x, jnp.zeros_like(x), 0, 6),
                              encoding.positional_encoding(x, 0, 6, include_input=False), atol=1e-6)
  wide = encoding.integrated_positional_encoding(x, jnp.full_like(x, 100.0), 0, 6)
  chex.assert_trees_all_close(wide, jnp.zeros_like(wide), atol=1e-6)


def test_harmonics_of_any_degree_are_orthonormal_and_span_the_tabulated_bands():
  degrees = encoding.ide_degrees(5)  # 1, 2, 4, 8, 16.
  directions, weights = _sphere_quadrature(num_z=20, num_phi=40)  # Exact for degree < 40.
  y = np.asarray(encoding.spherical_harmonics_of_degrees(jnp.asarray(directions, jnp.float32), degrees),
                 np.float64)
  assert y.shape[-1] == sum(2 * l + 1 for l in degrees) == 67
  np.testing.assert_allclose((y * weights[:, None]).T @ y, np.eye(67), atol=3e-5)
  # Degrees 0 to 4 span the same functions as the tabulated harmonics, band by band: their cross-Gram
  # matrix is orthogonal (a change of basis within each band).
  mine = np.asarray(encoding.spherical_harmonics_of_degrees(jnp.asarray(directions, jnp.float32),
                                                            [0, 1, 2, 3, 4]), np.float64)
  table = np.asarray(_sh(jnp.asarray(directions, jnp.float32), 5), np.float64)
  cross = (mine * weights[:, None]).T @ table
  np.testing.assert_allclose(cross @ cross.T, np.eye(25), atol=3e-5)
  assert np.abs(cross[:1, 1:]).max() < 1e-5 and np.abs(cross[1:4, 4:]).max() < 1e-5  # Bands do not mix.


def _sample_von_mises_fisher(rng, mean, kappa, count):
  """Exact samples [count, 3] of the von Mises-Fisher distribution on the sphere (inverse CDF of w = cos of
  the angle to the mean, uniform azimuth)."""
  u = rng.random(count)
  w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
  phi = rng.random(count) * 2 * np.pi
  r = np.sqrt(np.maximum(1.0 - w**2, 0.0))
  local = np.stack([r * np.cos(phi), r * np.sin(phi), w], -1)
  helper = np.array([1.0, 0.0, 0.0]) if abs(mean[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
  e1 = np.cross(mean, helper)
  e1 /= np.linalg.norm(e1)
  return local @ np.stack([e1, np.cross(mean, e1), mean])


@pytest.mark.parametrize('kappa', [5.0, 20.0, 100.0])
def test_directional_encoding_is_the_expected_harmonics_over_a_von_mises_fisher_lobe(kappa):
  rng = np.random.default_rng(int(kappa))
  mean = np.array([0.3, -0.5, 0.8])
  mean /= np.linalg.norm(mean)
  samples = _sample_von_mises_fisher(rng, mean, kappa, 400_000)
  degrees = encoding.ide_degrees(4)  # 1, 2, 4, 8.
  expected = np.asarray(encoding.spherical_harmonics_of_degrees(jnp.asarray(samples, jnp.float32), degrees),
                        np.float64).mean(axis=0)  # Monte Carlo: E[Y(w)], w ~ vMF(mean, kappa).
  ide = np.asarray(encoding.integrated_directional_encoding(jnp.asarray(mean[None], jnp.float32),
                                                            jnp.full((1, 1), 1.0 / kappa), 4), np.float64)[0]
  # The exact attenuation is a ratio of Bessel functions; the paper's exp(-l (l + 1) / (2 kappa)) is close to
  # it for the concentrated lobes of glossy surfaces and within a few hundredths for broad ones.
  tolerance = 0.005 + 2.0 / kappa**2 * np.concatenate([np.full(2 * l + 1, l * (l + 1)) for l in degrees])
  np.testing.assert_array_less(np.abs(ide - expected), tolerance)


def test_directional_encoding_tends_to_the_harmonics_as_roughness_vanishes_and_stays_finite():
  d = jnp.asarray(np.random.default_rng(1).normal(size=(32, 3)), jnp.float32)
  d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
  plain = encoding.spherical_harmonics_of_degrees(d, encoding.ide_degrees(5))
  np.testing.assert_allclose(encoding.integrated_directional_encoding(d, jnp.full((32, 1), 1e-9)), plain,
                             atol=1e-6)
  # Very rough: every degree fades; gradients stay finite from mirror-like to rough, at the poles too.
  assert float(jnp.abs(encoding.integrated_directional_encoding(d, jnp.full((32, 1), 10.0))).max()) < 1e-3
  poles = jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
  for roughness in (0.0, 1e-8, 1.0, 1e3):
    grad = jax.grad(lambda d, r: jnp.sum(encoding.integrated_directional_encoding(d, r)), argnums=(0, 1))(
        poles, jnp.full((3, 1), roughness))
    chex.assert_tree_all_finite(grad)


def test_reflection_mirrors_about_the_normal():
  rng = np.random.default_rng(2)
  viewdirs, normals = (v / np.linalg.norm(v, axis=-1, keepdims=True) for v in rng.normal(size=(2, 16, 3)))
  reflected = np.asarray(encoding.reflect(jnp.asarray(viewdirs), jnp.asarray(normals)))
  np.testing.assert_allclose(np.linalg.norm(reflected, axis=-1), 1.0, atol=1e-6)
  # The angle to the normal is kept, the component along the normal flips sign, and reflecting twice
  # about the same normal gives the original direction back (as a direction leaving the surface).
  np.testing.assert_allclose(np.sum(reflected * normals, -1), np.sum(-viewdirs * normals, -1), atol=1e-6)
  np.testing.assert_allclose(np.asarray(encoding.reflect(jnp.asarray(-reflected), jnp.asarray(normals))),
                             -viewdirs, atol=1e-6)
  np.testing.assert_allclose(encoding.reflect(jnp.array([[0.6, 0.0, -0.8]]), jnp.array([[0.0, 0.0, 1.0]])),
                             [[0.6, 0.0, 0.8]], atol=1e-7)


def test_annealing_window_opens_the_bands_lowest_first_as_barf_does():
  ones = encoding.annealing_window(0.3, 5, 0.0, 0.0)
  np.testing.assert_array_equal(ones, 1.0)  # Off.
  np.testing.assert_array_equal(encoding.annealing_window(0.1, 5, 0.2, 0.6), 0.0)  # Before start.
  np.testing.assert_array_equal(encoding.annealing_window(0.7, 5, 0.2, 0.6), 1.0)  # After end.
  # Half-way: alpha = 2.5, so bands 0 and 1 are open, band 2 half (weight 1/2), the rest closed (Eq. 14).
  np.testing.assert_allclose(encoding.annealing_window(0.4, 5, 0.2, 0.6), [1, 1, 0.5, 0, 0], atol=1e-6)
  windows = np.stack([encoding.annealing_window(p, 5, 0.2, 0.6) for p in np.linspace(0, 1, 21)])
  assert np.all(np.diff(windows, axis=0) >= 0) and np.all(np.diff(windows, axis=1) <= 0)


def test_windowed_features_weigh_each_octave_of_every_coordinate():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
  features = encoding.positional_encoding(x, 0, 4)
  chex.assert_trees_all_equal(encoding.windowed_features(features, jnp.ones(4), 3), features)
  window = jnp.array([1.0, 0.5, 0.0, 0.0])
  got = encoding.windowed_features(features, window, 3)
  np.testing.assert_array_equal(got[:, :3], x)  # The input is kept whole.
  np.testing.assert_allclose(got, encoding.positional_encoding(x, 0, 4) * jnp.concatenate(
      [jnp.ones(3)] + [jnp.repeat(window, 3)] * 2), rtol=1e-6)
  np.testing.assert_array_equal(got[:, 3 + 6:3 + 12], 0.0)  # Octaves 2 and 3 of the sines, closed.
