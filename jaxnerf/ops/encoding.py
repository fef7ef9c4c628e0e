"""Input encodings for coordinate networks.

Naming: `x` are the points or directions to encode, [..., D]; `min_deg`/`max_deg` bound the octaves; `d`
unit directions [..., 3]; `l`, `m` a spherical harmonic's degree and order; `roughness` [..., 1] the width
of a von Mises-Fisher lobe, 1 / its concentration kappa (Ref-NeRF).
"""

import math

import jax.numpy as jnp
import numpy as np


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


def annealing_window(progress, num_bands: int, start: float, end: float):
  """BARF's coarse-to-fine weights [num_bands] of an encoding's bands at training progress in [0, 1] (Lin et
  al. 2021, Eq. 14): alpha = num_bands * (progress - start) / (end - start), clipped to [0, num_bands], and
  band k weighs (1 - cos(pi * clip(alpha - k, 0, 1))) / 2: none of them open before `start`, then each in
  turn, the lowest first, all of them from `end` on. With end <= start every band weighs 1."""
  if end <= start:
    return jnp.ones((num_bands,), jnp.float32)
  alpha = num_bands * jnp.clip((progress - start) / (end - start), 0.0, 1.0)
  opening = jnp.clip(alpha - jnp.arange(num_bands, dtype=jnp.float32), 0.0, 1.0)
  return (1.0 - jnp.cos(jnp.pi * opening)) / 2.0


def windowed_features(features, window, num_dims: int, include_input: bool = True):
  """`positional_encoding`'s (or the integrated one's) features [..., E] of [..., num_dims] inputs with each
  octave k's sines and cosines weighted by window[k] (`annealing_window`); the input itself, where it leads,
  is kept whole."""
  per_octave = jnp.repeat(window, num_dims)
  weights = jnp.concatenate([jnp.ones((num_dims,) if include_input else (0,)), per_octave, per_octave])
  return features * weights.astype(features.dtype)


def integrated_positional_encoding(mean, variance, min_deg: int, max_deg: int):
  """mip-NeRF's integrated positional encoding (Barron et al. 2021, Eq. 14): the expected value of
  `positional_encoding` (without the input) over a Gaussian with diagonal covariance.

  For y ~ N(mu, s^2), E[sin(y)] = sin(mu) exp(-s^2 / 2), and likewise for cos: frequencies whose period is
  small against the Gaussian's extent fade to zero instead of aliasing.

  Args:
    mean: [..., D] Gaussian means.
    variance: [..., D] the diagonal of their covariances.
    min_deg, max_deg: the octaves k run over [min_deg, max_deg).

  Returns:
    [..., 2 * D * (max_deg - min_deg)], laid out as `positional_encoding`'s features.
  """
  scales = 2.0 ** jnp.arange(min_deg, max_deg, dtype=mean.dtype)
  scaled_mean = (mean[..., None, :] * scales[:, None]).reshape(mean.shape[:-1] + (-1,))
  scaled_variance = (variance[..., None, :] * scales[:, None]**2).reshape(variance.shape[:-1] + (-1,))
  damping = jnp.exp(-0.5 * jnp.concatenate([scaled_variance, scaled_variance], axis=-1))
  return damping * jnp.sin(jnp.concatenate([scaled_mean, scaled_mean + 0.5 * jnp.pi], axis=-1))


def encoded_size(num_dims: int, min_deg: int, max_deg: int, include_input: bool = True) -> int:
  """Length of the last axis of `positional_encoding` for [..., num_dims] inputs."""
  return num_dims * (2 * (max_deg - min_deg) + int(include_input))


def spherical_harmonics(d, degree: int = 4):
  """Real spherical harmonics Y_l^m(d), l < degree, of unit directions d [..., 3]: [..., degree^2].

  instant-ngp encodes view directions this way (Mueller et al. 2022, Sec. 5.4): a smooth, orthonormal basis
  of functions on the sphere, cheaper and better conditioned than sinusoids of the coordinates. Written out
  as polynomials (Sloan, "Stupid Spherical Harmonics Tricks", App. A2), ordered by l, then m = -l..l.
  """
  if not 1 <= degree <= 5:
    raise ValueError(f'spherical harmonics are implemented for degrees 1 to 5, got {degree}.')
  x, y, z = d[..., 0], d[..., 1], d[..., 2]
  xx, yy, zz = x * x, y * y, z * z
  bands = [[jnp.full_like(x, 0.28209479177387814)]]
  bands.append([-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x])
  bands.append([1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
                0.94617469575755997 * zz - 0.31539156525251999, -1.0925484305920792 * x * z,
                0.54627421529603959 * (xx - yy)])
  bands.append([0.59004358992664352 * y * (yy - 3.0 * xx), 2.8906114426405538 * x * y * z,
                0.45704579946446572 * y * (1.0 - 5.0 * zz), 0.3731763325901154 * z * (5.0 * zz - 3.0),
                0.45704579946446572 * x * (1.0 - 5.0 * zz), 1.4453057213202769 * z * (xx - yy),
                0.59004358992664352 * x * (3.0 * yy - xx)])
  bands.append([2.5033429417967046 * x * y * (xx - yy), 1.7701307697799304 * y * z * (yy - 3.0 * xx),
                0.94617469575756008 * x * y * (7.0 * zz - 1.0), 0.66904654355728921 * y * z * (3.0 - 7.0 * zz),
                3.7024941420321507 * zz * zz - 3.1735664074561294 * zz + 0.31735664074561293,
                0.66904654355728921 * x * z * (3.0 - 7.0 * zz), 0.47308734787878004 * (xx - yy) * (7.0 * zz - 1.0),
                1.7701307697799304 * x * z * (3.0 * yy - xx),
                0.62583573544917614 * (xx * xx + yy * yy) - 3.7550144126950569 * xx * yy])
  return jnp.stack([f for band in bands[:degree] for f in band], axis=-1)


def spherical_harmonics_of_degrees(d, degrees):
  """Real, orthonormal spherical harmonics of unit directions d [..., 3] for each degree l in `degrees`:
  [..., sum(2 l + 1)], per degree ordered m = 0, then (cos, sin) pairs for m = 1..l.

  Any degree (Ref-NeRF's directional encoding reaches l = 16, beyond `spherical_harmonics`' tables). With
  z = cos(theta) and (x + i y)^m = sin(theta)^m e^{i m phi}, Y_l^m = N_lm Q_l^m(z) (x + i y)^m, where
  Q_l^m = P_l^m / sin(theta)^m is a polynomial in z given by the associated Legendre recurrence
  Q_m^m = (-1)^m (2m - 1)!!, Q_{m+1}^m = (2m + 1) z Q_m^m,
  (l - m) Q_l^m = (2l - 1) z Q_{l-1}^m - (l + m - 1) Q_{l-2}^m; the real basis takes N_l0 Q_l^0 and
  sqrt(2) N_lm Q_l^m times the real and imaginary parts of (x + i y)^m. Polynomials only: no angles, so no
  singularity at the poles for values or gradients.
  """
  x, y, z = d[..., 0], d[..., 1], d[..., 2]
  max_degree = max(degrees)
  # (x + i y)^m for m = 0..max_degree, as real and imaginary parts.
  powers = [(jnp.ones_like(x), jnp.zeros_like(x))]
  for _ in range(max_degree):
    re, im = powers[-1]
    powers.append((re * x - im * y, re * y + im * x))
  features = {l: [] for l in degrees}
  for m in range(max_degree + 1):
    # Q_l^m for l = m, m + 1, ...: the recurrence in l at fixed m.
    double_factorial = float(np.prod(np.arange(2 * m - 1, 0, -2))) if m > 0 else 1.0
    q_previous, q = None, (-1.0)**m * double_factorial * jnp.ones_like(z)
    for l in range(m, max_degree + 1):
      if l == m + 1:
        q_previous, q = q, (2 * m + 1) * z * q
      elif l > m + 1:
        q_previous, q = q, ((2 * l - 1) * z * q - (l + m - 1) * q_previous) / (l - m)
      if l not in features:
        continue
      norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
      if m == 0:
        features[l].append(norm * q)
      else:
        re, im = powers[m]
        features[l].extend([math.sqrt(2.0) * norm * q * re, math.sqrt(2.0) * norm * q * im])
  return jnp.stack([f for l in degrees for f in features[l]], axis=-1)


def ide_degrees(num_levels: int):
  """Ref-NeRF's degrees of the directional encoding: l = 1, 2, 4, ..., 2^(num_levels - 1)."""
  return [2**i for i in range(num_levels)]


def integrated_directional_encoding(directions, roughness, num_levels: int = 5):
  """Ref-NeRF's integrated directional encoding (Verbin et al. 2022, Eq. 7-8): the expected spherical
  harmonics of a direction drawn from a von Mises-Fisher lobe about unit `directions` [..., 3] with
  concentration kappa = 1 / roughness [..., 1], for degrees `ide_degrees(num_levels)`.

  E[Y_l^m(w)] = A_l(kappa) Y_l^m(directions), with A_l(kappa) ~ exp(-l (l + 1) / (2 kappa)) (the paper's
  approximation of the exact Bessel-function ratio): rough surfaces blur the high degrees away; as roughness
  goes to 0 the encoding tends to the plain spherical harmonics of the direction.

  Returns:
    [..., sum(2 l + 1)] (67 for the paper's 5 levels), ordered as `spherical_harmonics_of_degrees`.
  """
  degrees = ide_degrees(num_levels)
  harmonics = spherical_harmonics_of_degrees(directions, degrees)
  attenuation = jnp.concatenate([jnp.full((2 * l + 1,), -0.5 * l * (l + 1)) for l in degrees])
  return harmonics * jnp.exp(attenuation * roughness)


def reflect(viewdirs, normals):
  """Directions [..., 3] of unit viewdirs (from the camera) mirrored about unit normals [..., 3] (Ref-NeRF,
  Eq. 4: w_r = 2 (w_o . n) n - w_o, with w_o = -viewdirs pointing back to the camera)."""
  towards_camera = -viewdirs
  return 2.0 * jnp.sum(towards_camera * normals, axis=-1, keepdims=True) * normals - towards_camera
