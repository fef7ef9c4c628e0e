"""Flax models. They wire the pure functions of encoding.py, sampling.py and rendering.py together.

`NeRF` is the paper's model (Mildenhall et al. 2020): a coarse and a fine MLP, each mapping positionally
encoded points and view directions to density and colour, with the fine samples drawn from the coarse
weights. Compute runs in `dtype` (bfloat16 for mixed precision); parameters, encodings and everything after
the last layer stay float32.
"""

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import encoding
from jaxnerf import rendering
from jaxnerf import sampling
from jaxnerf.camera import Rays
from jaxnerf.errors import ConfigError

DENSITY_ACTIVATIONS = {
    'relu': nn.relu,
    # mip-NeRF's shifted softplus: smooth, and starts near zero density.
    'softplus': lambda x: nn.softplus(x - 1.0),
}


class RadianceMLP(nn.Module):
  """NeRF's MLP (paper, Fig. 7): a trunk of `depth` ReLU layers of `width` units, re-reading the encoded
  point after every `skip_every` layers; density from the trunk; colour from a `width_view`-unit layer that
  also sees the encoded view direction."""

  depth: int = 8
  width: int = 256
  skip_every: int = 4
  width_view: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, point_features, view_features):
    """Raw outputs for [..., Fp] encoded points and [..., Fv] encoded directions.

    Returns:
      raw_rgb: [..., 3] (pre-sigmoid); raw_density: [...] (pre-activation); both float32.
    """
    dense = lambda units, name: nn.Dense(units, dtype=self.dtype, param_dtype=jnp.float32, name=name)
    inputs = point_features.astype(self.dtype)
    x = inputs
    for i in range(self.depth):
      if i > 0 and i % self.skip_every == 0:
        x = jnp.concatenate([x, inputs], axis=-1)
      x = nn.relu(dense(self.width, f'trunk_{i}')(x))
    raw_density = dense(1, 'density')(x)[..., 0]
    bottleneck = dense(self.width, 'bottleneck')(x)
    x = jnp.concatenate([bottleneck, view_features.astype(self.dtype)], axis=-1)
    x = nn.relu(dense(self.width_view, 'view')(x))
    raw_rgb = dense(3, 'rgb')(x)
    return raw_rgb.astype(jnp.float32), raw_density.astype(jnp.float32)


class NeRF(nn.Module):
  """Coarse-to-fine NeRF. Calling it renders a batch of rays once per level (coarse, then fine)."""

  num_coarse_samples: int = 64
  num_fine_samples: int = 128
  lindisp: bool = False
  point_min_deg: int = 0
  point_max_deg: int = 10
  view_min_deg: int = 0
  view_max_deg: int = 4
  mlp_depth: int = 8
  mlp_width: int = 256
  mlp_skip_every: int = 4
  mlp_width_view: int = 128
  density_activation: str = 'relu'
  density_noise_std: float = 0.0
  rgb_padding: float = 0.0  # mip-NeRF's widened sigmoid, which keeps colour gradients alive near 0 and 1.
  dtype: Any = jnp.float32

  def setup(self):
    if self.density_activation not in DENSITY_ACTIVATIONS:
      raise ConfigError(f'config.model.density_activation must be one of {sorted(DENSITY_ACTIVATIONS)}, '
                       f'got {self.density_activation!r}.')
    mlp = lambda name: RadianceMLP(self.mlp_depth, self.mlp_width, self.mlp_skip_every,
                                   self.mlp_width_view, self.dtype, name=name)
    self.coarse_mlp = mlp('coarse')
    self.fine_mlp = mlp('fine') if self.num_fine_samples > 0 else None

  def _render_samples(self, mlp, rng, rays: Rays, t, background):
    points = rays.origins[..., None, :] + t[..., None] * rays.directions[..., None, :]
    point_features = encoding.positional_encoding(points, self.point_min_deg, self.point_max_deg)
    view_features = encoding.positional_encoding(rays.viewdirs, self.view_min_deg, self.view_max_deg)
    view_features = jnp.broadcast_to(view_features[..., None, :],
                                     t.shape + view_features.shape[-1:])
    raw_rgb, raw_density = mlp(point_features, view_features)
    if rng is not None and self.density_noise_std > 0:
      raw_density += self.density_noise_std * jax.random.normal(rng, raw_density.shape)
    density = DENSITY_ACTIVATIONS[self.density_activation](raw_density)
    rgb = nn.sigmoid(raw_rgb) * (1 + 2 * self.rgb_padding) - self.rgb_padding
    return rendering.volume_render(rgb, density, t, rays.directions, background)

  def __call__(self, rng: Optional[jax.Array], rays: Rays, background):
    """Renders rays [...] with each level.

    Args:
      rng: key for stratified jitter, hierarchical draws and density noise; None for deterministic
        evaluation.
      rays: Rays with fields [..., C].
      background: [3] or [..., 3] colour composited behind the scene.

    Returns:
      A list of RenderedRays, coarse first, then fine when num_fine_samples > 0.
    """
    keys = [None] * 4 if rng is None else list(jax.random.split(rng, 4))
    t = sampling.stratified_samples(keys[0], rays.near, rays.far, self.num_coarse_samples, self.lindisp)
    renderings = [self._render_samples(self.coarse_mlp, keys[1], rays, t, background)]
    if self.fine_mlp is not None:
      t = sampling.hierarchical_samples(keys[2], t, renderings[0].w, self.num_fine_samples)
      renderings.append(self._render_samples(self.fine_mlp, keys[3], rays, t, background))
    return renderings


def make_model(model_config) -> NeRF:
  """Builds the model named by `model_config` (a ConfigDict of NeRF's fields plus `name` and `dtype`)."""
  fields = dict(model_config)
  name = fields.pop('name')
  if name != 'nerf':
    raise ConfigError(f"config.model.name: unknown model {name!r}; expected 'nerf'.")
  dtypes = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
  dtype_name = fields.pop('dtype')
  if dtype_name not in dtypes:
    raise ConfigError(f'config.model.dtype must be one of {sorted(dtypes)}, got {dtype_name!r}.')
  return NeRF(dtype=dtypes[dtype_name], **fields)
