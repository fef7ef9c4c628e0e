"""Rigid and similarity transforms of cameras: the exponential map of SE(3), composing corrections with
camera-to-world matrices, fitting a similarity between two sets of cameras, and the errors between them.

Naming conventions:
- `camtoworld`: [..., 3, 4] camera-to-world matrices [R | t] (ops/camera.py's convention).
- `xi`: [..., 6] a twist in se(3): (v, w), translation part v first, then the rotation's axis-angle w (radians).
- `delta`: [..., 3, 4] a rigid transform [dR | dt] in the camera's own frame: a camera corrected by it is
  camtoworld . delta, [R dR | R dt + t] (it turns about its own centre; its centre moves by R dt).
- A similarity (scale s, rotation Q [3, 3], translation u [3]) maps points p to s Q p + u, and cameras
  [R | t] to [Q R | s Q t + u].
Functions take `xnp` (numpy or jax.numpy): the same maths runs on the host and inside a compiled step.
"""

from typing import NamedTuple

import numpy as np

# Below this angle (radians) the exponential map's coefficients use their Taylor series: the closed forms
# divide by the angle's square and cube, which lose all precision (and give NaN gradients) near zero.
_SMALL_ANGLE = 1e-3


def skew(w, xnp=np):
  """[..., 3, 3] matrices of the cross product with w [..., 3]: skew(w) @ x = w x x."""
  zero = xnp.zeros_like(w[..., 0])
  return xnp.stack([xnp.stack([zero, -w[..., 2], w[..., 1]], -1),
                    xnp.stack([w[..., 2], zero, -w[..., 0]], -1),
                    xnp.stack([-w[..., 1], w[..., 0], zero], -1)], -2)


def _coefficients(w, xnp):
  """(sin a / a, (1 - cos a) / a^2, (a - sin a) / a^3) of a = |w|, finite with finite gradients at 0."""
  a2 = xnp.sum(w * w, axis=-1)[..., None, None]
  small = a2 < _SMALL_ANGLE**2
  safe_a2 = xnp.where(small, 1.0, a2)  # (The closed forms are evaluated, and discarded, for small angles too.)
  a = xnp.sqrt(safe_a2)
  closed = (xnp.sin(a) / a, (1 - xnp.cos(a)) / safe_a2, (a - xnp.sin(a)) / (safe_a2 * a))
  taylor = (1 - a2 / 6, 0.5 - a2 / 24, 1 / 6 - a2 / 120)
  return tuple(xnp.where(small, t, c) for t, c in zip(taylor, closed))


def exp_so3(w, xnp=np):
  """Rotation matrices [..., 3, 3] of axis-angles w [..., 3] (Rodrigues' formula)."""
  a, b, _ = _coefficients(w, xnp)
  k = skew(w, xnp)
  return xnp.eye(3, dtype=w.dtype) + a * k + b * (k @ k)


def exp_se3(xi, xnp=np):
  """Rigid transforms [..., 3, 4] of twists xi [..., 6] (v, w): [exp(w) | V(w) v], V = I + b K + c K^2 (the
  exponential of the Lie algebra se(3); Barfoot, State Estimation for Robotics, Eq. 7.86)."""
  v, w = xi[..., :3], xi[..., 3:]
  a, b, c = _coefficients(w, xnp)
  k = skew(w, xnp)
  eye = xnp.eye(3, dtype=xi.dtype)
  rotation = eye + a * k + b * (k @ k)
  translation = (eye + b * k + c * (k @ k)) @ v[..., None]
  return xnp.concatenate([rotation, translation], axis=-1)


def about_pivot(delta, depth, xnp=np):
  """The rigid transform [..., 3, 4] that turns as `delta` does, about the point `depth` in front of the camera
  (camera coordinates (0, 0, -depth)) instead of about its centre: P delta P^-1, P the translation to that
  point, [dR | dt + (I - dR) p]. A correction about a pivot at the scene's distance separates what images tell
  apart easily (a pan: the picture shifts) from what they barely tell (an orbit about the scene)."""
  pivot = xnp.asarray([[0.0], [0.0], [-1.0]], delta.dtype) * depth
  rotation = delta[..., :3, :3]
  return xnp.concatenate([rotation, delta[..., :3, 3:] + pivot - rotation @ pivot], axis=-1)


def compose(camtoworld, delta, xnp=np):
  """camtoworld . delta: cameras [..., 3, 4] corrected in their own frames by rigid transforms [..., 3, 4]."""
  rotation, centre = camtoworld[..., :3, :3], camtoworld[..., :3, 3:]
  return xnp.concatenate([rotation @ delta[..., :3, :3], rotation @ delta[..., :3, 3:] + centre], axis=-1)


class Similarity(NamedTuple):
  scale: float
  rotation: np.ndarray  # [3, 3]
  translation: np.ndarray  # [3]

  def apply(self, camtoworld: np.ndarray) -> np.ndarray:
    """Cameras [..., 3, 4] moved by the similarity: [Q R | s Q t + u] (their scale is the scene's)."""
    camtoworld = np.asarray(camtoworld, np.float64)
    rotation = self.rotation @ camtoworld[..., :3, :3]
    centre = self.scale * camtoworld[..., :3, 3] @ self.rotation.T + self.translation
    return np.concatenate([rotation, centre[..., None]], axis=-1)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
  """The similarity that best maps cameras `source` [N, 3, 4] onto cameras `target` [N, 3, 4]: its rotation
  maximises the agreement of both the centred camera centres (Umeyama 1991, Eq. 40) and the orientations
  (sum_i tr(Q^T R_target_i R_source_i^T), weighted by the centres' spread so that neither term's units
  dominate); its scale and translation are the least-squares ones of the centres given that rotation. With
  fewer than three distinct centres the scale is 1 (it is not determined by them)."""
  source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
  x, y = source[:, :3, 3], target[:, :3, 3]
  x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
  xc, yc = x - x_mean, y - y_mean
  spread_x, spread_y = np.sqrt(np.mean(np.sum(xc**2, -1))), np.sqrt(np.mean(np.sum(yc**2, -1)))
  covariance = yc.T @ xc / len(x) + spread_x * spread_y * np.mean(
      target[:, :3, :3] @ np.swapaxes(source[:, :3, :3], -1, -2), axis=0)
  u, _, vt = np.linalg.svd(covariance)
  sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])  # A rotation, not a reflection.
  rotation = u @ sign @ vt
  rank = np.linalg.matrix_rank(xc, tol=1e-9 * max(spread_x, 1e-30)) if len(x) > 2 else 0
  scale = float(np.sum(yc * (xc @ rotation.T)) / np.sum(xc**2)) if rank >= 2 else 1.0
  return Similarity(scale, rotation, y_mean - scale * rotation @ x_mean)


def rotation_errors_deg(camtoworld_a: np.ndarray, camtoworld_b: np.ndarray) -> np.ndarray:
  """[...] angles in degrees of the rotations R_a^T R_b between cameras [..., 3, 4] (their geodesic distance
  in SO(3))."""
  relative = np.swapaxes(np.asarray(camtoworld_a, np.float64)[..., :3, :3], -1, -2) @ np.asarray(
      camtoworld_b, np.float64)[..., :3, :3]
  cosine = (np.trace(relative, axis1=-2, axis2=-1) - 1) / 2
  return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def centre_errors(camtoworld_a: np.ndarray, camtoworld_b: np.ndarray) -> np.ndarray:
  """[...] distances between the centres of cameras [..., 3, 4]."""
  return np.linalg.norm(np.asarray(camtoworld_a, np.float64)[..., :3, 3]
                        - np.asarray(camtoworld_b, np.float64)[..., :3, 3], axis=-1)
