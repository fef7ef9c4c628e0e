"""Image-quality metrics: PSNR and SSIM.

Naming: `mse` mean squared error; images are [..., height, width, 3] in [0, 1].
"""

import functools

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np


def mse_to_psnr(mse):
  """PSNR in dB of images with peak value 1."""
  return -10.0 / np.log(10.0) * jnp.log(mse)


def psnr(image, reference):
  return mse_to_psnr(jnp.mean((jnp.asarray(image) - jnp.asarray(reference)) ** 2))


@functools.partial(jax.jit, static_argnames=('filter_size',))  # It sets the kernel's shape.
def ssim(image, reference, max_value: float = 1.0, filter_size: int = 11, filter_sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03):
  """Structural similarity (Wang et al. 2004) of [H, W, C] images, averaged over pixels and channels.

  dm-pix's SSIM: local statistics over an 11x11 Gaussian window (sigma 1.5) in the valid region, as the NeRF
  papers' evaluation code computes them.
  """
  return pix.ssim(jnp.asarray(image, jnp.float32), jnp.asarray(reference, jnp.float32), max_val=max_value,
                  filter_size=filter_size, filter_sigma=filter_sigma, k1=k1, k2=k2)
