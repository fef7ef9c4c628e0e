"""Image-quality metrics: PSNR and SSIM.

Naming: `mse` mean squared error; images are [..., height, width, 3] in [0, 1].
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def mse_to_psnr(mse):
  """PSNR in dB of images with peak value 1."""
  return -10.0 / np.log(10.0) * jnp.log(mse)


def psnr(image, reference):
  return mse_to_psnr(jnp.mean((jnp.asarray(image) - jnp.asarray(reference)) ** 2))


def _gaussian_kernel(size: int, sigma: float):
  x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2
  kernel = jnp.exp(-0.5 * (x / sigma) ** 2)
  return kernel / kernel.sum()


@functools.partial(jax.jit, static_argnames=('filter_size',))  # It sets the kernel's shape.
def ssim(image, reference, max_value: float = 1.0, filter_size: int = 11, filter_sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03):
  """Structural similarity (Wang et al. 2004) of [H, W, C] images, averaged over pixels and channels.

  Local statistics use an 11x11 Gaussian window (sigma 1.5) over the valid region, as the NeRF papers'
  evaluation code does.
  """
  kernel = _gaussian_kernel(filter_size, filter_sigma)

  def blur(z):  # [H, W] -> [H - size + 1, W - size + 1]: separable Gaussian filter, valid region.
    z = jax.vmap(lambda column: jnp.convolve(column, kernel, mode='valid'), in_axes=1, out_axes=1)(z)
    return jax.vmap(lambda row: jnp.convolve(row, kernel, mode='valid'))(z)

  blur = jax.vmap(blur, in_axes=-1, out_axes=-1)  # Channels independently.
  x = jnp.asarray(image, jnp.float32)
  y = jnp.asarray(reference, jnp.float32)
  mu_x, mu_y = blur(x), blur(y)
  var_x = jnp.maximum(blur(x * x) - mu_x**2, 0.0)
  var_y = jnp.maximum(blur(y * y) - mu_y**2, 0.0)
  cov = blur(x * y) - mu_x * mu_y
  c1, c2 = (k1 * max_value) ** 2, (k2 * max_value) ** 2
  ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
  return jnp.mean(ssim_map)
