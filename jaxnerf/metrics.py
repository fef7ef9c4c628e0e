"""Metrics of rendered views against a scene's ground truth, registered per kind of ground truth.

Naming: `mse` mean squared error; images are [..., height, width, 3] in [0, 1]. A view's `rendering` is a dict
of [H, W, ...] arrays ('rgb', 'depth', ...: what the renderer produces) and its `truth` a dict of what the
scene holds for it ('rgb' always; 'depth' [H, W], inf where the ray hits nothing, 'normals' [H, W, 3], 0 there,
and 'regions' [H, W], each pixel's kind of surface as an index into REGIONS, where the scene knows them).

Scores by region: a scene that knows what each pixel shows (the procedural scenes: background, matte, glossy or
mirror-like material) is also scored on each region alone, `psnr_<region>` and `normal_mae_deg_<region>`, and on
the shiny pixels together (`psnr_shiny`: glossy and mirror-like), where view-dependent appearance matters;
a whole-image mean hides them (on the glossy scene they are 14% of the val pixels).

`IMAGE_METRICS` maps a metric's name to its function and the ground truth it needs; `view_metrics` computes
every metric whose ground truth a view has, so a scene with depth maps is scored on depth too, and a new
metric is one `register_image_metric`. Optional metrics (LPIPS: a network per view) are computed only when
asked for by name (`config.eval.lpips`).
"""

import functools
from typing import Callable, Collection, Dict, NamedTuple, Sequence, Tuple

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxnerf import perceptual


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


# The kinds of surface a region map [H, W] names, by index (uint8): what the pixel centre's ray hits first.
REGIONS = ('background', 'matte', 'glossy', 'mirror')
# Regions scored together under one name: their union.
REGION_UNIONS = {'shiny': ('glossy', 'mirror')}


def region_mask(regions, name: str) -> np.ndarray:
  """[H, W] bool: the pixels of region `name` (REGIONS, or a union of REGION_UNIONS) in a region map
  [H, W]."""
  members = REGION_UNIONS.get(name, (name,))
  return np.isin(np.asarray(regions), [REGIONS.index(member) for member in members])


class ImageMetric(NamedTuple):
  compute: Callable  # (rendering, truth) -> float.
  needs: Tuple[str, ...]  # The ground truth it compares with: keys of `truth`.
  renders: str  # What it scores: a key of the rendering.
  optional: bool = False  # Computed only when named in view_metrics(..., optional=...).


IMAGE_METRICS: Dict[str, ImageMetric] = {}


def register_image_metric(name: str, needs='rgb', renders: str = '', optional: bool = False):
  """Registers the decorated function (rendering, truth) -> float as metric `name` of views whose ground
  truth holds `needs` (a key, or a tuple of keys) and whose rendering holds `renders` (default: the first key
  of `needs`); an `optional` one only where asked for."""
  needs = (needs,) if isinstance(needs, str) else tuple(needs)

  def register(compute):
    IMAGE_METRICS[name] = ImageMetric(compute, needs, renders or needs[0], optional)
    return compute

  return register


@register_image_metric('psnr')
def _view_psnr(rendering, truth) -> float:
  return float(psnr(rendering['rgb'], truth['rgb']))


@register_image_metric('ssim')
def _view_ssim(rendering, truth) -> float:
  return float(ssim(rendering['rgb'], truth['rgb']))


@register_image_metric('depth_mae', needs='depth')
def depth_mean_absolute_error(rendering, truth) -> float:
  """Mean |expected depth - true depth| in scene units over the pixels whose ray hits the scene (finite true
  depth); NaN when none does."""
  true_depth = np.asarray(truth['depth'], np.float64)
  hits = np.isfinite(true_depth)
  if not hits.any():
    return float('nan')
  return float(np.mean(np.abs(np.asarray(rendering['depth'], np.float64)[hits] - true_depth[hits])))


def _mean_angular_error(normals, true_normals, where=None) -> float:
  """Mean angle in degrees between normals [H, W, 3] (normalised here) and the true ones over the pixels whose
  ray hits the scene (a non-zero true normal), of those only the ones `where` [H, W] holds (None: all); NaN
  where there are none."""
  true_normals = np.asarray(true_normals, np.float64)
  hits = np.linalg.norm(true_normals, axis=-1) > 0.5
  if where is not None:
    hits &= where
  if not hits.any():
    return float('nan')
  normals = np.asarray(normals, np.float64)[hits]
  normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-10)
  cosine = np.clip(np.sum(normals * true_normals[hits], axis=-1), -1.0, 1.0)
  return float(np.mean(np.degrees(np.arccos(cosine))))


@register_image_metric('normal_mae_deg', needs='normals')
def normal_mean_angular_error(rendering, truth) -> float:
  """The density's normals (composited) against the true ones: `_mean_angular_error`."""
  return _mean_angular_error(rendering['normals'], truth['normals'])


@register_image_metric('normal_pred_mae_deg', needs='normals', renders='normals_pred')
def predicted_normal_mean_angular_error(rendering, truth) -> float:
  """Ref-NeRF's predicted normals (those it shades with, composited) against the true ones."""
  return _mean_angular_error(rendering['normals_pred'], truth['normals'])


def _register_region_metrics(region: str):
  """psnr_<region> and, for surfaces, normal_mae_deg_<region>: the whole-image metrics on one region's pixels
  (region_mask); NaN for a view without such pixels, which the means over views leave out."""

  @register_image_metric(f'psnr_{region}', needs=('rgb', 'regions'))
  def region_psnr(rendering, truth) -> float:
    where = region_mask(truth['regions'], region)
    if not where.any():
      return float('nan')
    error = np.asarray(rendering['rgb'], np.float64)[where] - np.asarray(truth['rgb'], np.float64)[where]
    return float(-10.0 * np.log10(np.mean(error**2)))

  if region != 'background':
    register_image_metric(f'normal_mae_deg_{region}', needs=('normals', 'regions'))(
        lambda rendering, truth: _mean_angular_error(rendering['normals'], truth['normals'],
                                                     region_mask(truth['regions'], region)))


for _region in REGIONS + tuple(REGION_UNIONS):
  _register_region_metrics(_region)

for _net in perceptual.NETS:
  register_image_metric(f'lpips_{_net}', optional=True)(
      lambda rendering, truth, net=_net: perceptual.lpips(rendering['rgb'], truth['rgb'], net))


def lpips_metric_names(nets: Sequence[str]) -> Tuple[str, ...]:
  """The optional metrics' names of LPIPS on `nets` ('alex', 'vgg')."""
  return tuple(f'lpips_{net}' for net in nets)


def view_metrics(rendering: Dict, truth: Dict, optional: Collection[str] = ()) -> Dict[str, float]:
  """{name: value} of every registered metric whose ground truth (`needs`) the view holds and whose quantity
  (`renders`) the rendering holds (normals are scored only for models that render them), the optional ones
  only where named in `optional`."""
  unknown = set(optional) - {name for name, metric in IMAGE_METRICS.items() if metric.optional}
  if unknown:
    raise ValueError(f'unknown optional metrics {sorted(unknown)}')
  return {name: metric.compute(rendering, truth) for name, metric in IMAGE_METRICS.items()
          if all(truth.get(key) is not None for key in metric.needs) and metric.renders in rendering
          and (not metric.optional or name in optional)}
