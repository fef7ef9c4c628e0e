"""A code per training image for its appearance (NeRF-W's appearance embeddings, Martin-Brualla et al. 2021,
Sec. 4.1; nerfacto's): photos that disagree in exposure and white balance get a learnt vector each, read by
the colour network, so that the scene's geometry and colour need not explain the disagreement.

Config `model.appearance_embedding` (registered below with models/conditioning.py): `dim` > 0 turns it on
for every colour network (NeRF's, the hash grid's, Ref-NeRF's). Rays of a training image read its code;
rays of any other camera (camera.ANY_CAMERA: val and test views, camera paths, the viewer) read the mean of
the training images' codes, and camera.NO_CAMERA rays a zero code (render.py --appearance).

Held-out views are scored twice: with the mean code (the usual metrics), and as NeRF-W scores them
(Sec. 5.1): a code is fitted to the left half of each view, the model held fixed, and the right half is
scored with it ('psnr_fitted_code'), beside the right half with the mean code ('psnr_right_half').
"""

from typing import Callable, Dict, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
from jaxnerf import metrics
from jaxnerf.models import conditioning
from jaxnerf.ops import camera
from jaxnerf.ops import compositing
from jaxnerf import parallel
from jaxnerf import values

PARAM = 'appearance_codes'  # The table's name in every field that has one.


class AppearanceEmbedding(nn.Module):
  """One `dim`-vector per training image, initialised N(0, init_std^2): (cam_idx [..., 1]) -> [..., dim]: the
  image's own, the mean for camera.ANY_CAMERA (and an index past the table), zero for camera.NO_CAMERA."""

  num_images: int
  dim: int
  init_std: float = 0.01

  @nn.compact
  def __call__(self, cam_idx):
    if self.num_images <= 0:
      raise ConfigError('config.model.appearance_embedding.num_images is 0: it is the number of training '
                        'images, set when training starts (models.with_training_split); build the model from '
                        "a run's saved config, or set it.")
    table = self.param(PARAM, nn.initializers.normal(self.init_std), (self.num_images, self.dim))
    index = cam_idx[..., 0]
    codes = table[jnp.clip(index, 0, self.num_images - 1)]
    # Any other camera, and an index past the table (another scene's training image), read the mean.
    other = (index == camera.ANY_CAMERA) | (index >= self.num_images)
    codes = jnp.where(other[..., None], jnp.mean(table, axis=0), codes)
    return jnp.where((index == camera.NO_CAMERA)[..., None], 0.0, codes)


def _code_tables(params) -> Dict[tuple, jnp.ndarray]:
  """{path: table} of every appearance table in `params`."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {tuple(k.key for k in path): leaf for path, leaf in flat if getattr(path[-1], 'key', None) == PARAM}


def _with_first_row(params, codes: Dict[tuple, jnp.ndarray]):
  """`params` whose appearance tables hold codes[path] in their row 0."""

  def replace(path, leaf):
    key = tuple(k.key for k in path)
    return leaf.at[0].set(codes[key]) if key in codes else leaf

  return jax.tree_util.tree_map_with_path(replace, params)


class CodeFitter:
  """NeRF-W's test-time optimisation for `model`: the codes that best render given pixels, the model held
  fixed (Adam at `learning_rate` on the codes alone, from the mean codes). Its step compiles once for every
  view of an evaluation."""

  def __init__(self, model, background, learning_rate: float):
    self._optimizer = optax.adam(learning_rate)

    def step(variables, codes, opt_state, rays, rgb):
      def loss(codes):
        params = _with_first_row(variables['params'], codes)
        final = model.apply({**variables, 'params': params}, None, rays, background)[-1]
        return compositing.complete_rays_mse(final, rgb)

      updates, opt_state = self._optimizer.update(jax.grad(loss)(codes), opt_state, codes)
      return optax.apply_updates(codes, updates), opt_state

    self._step = jax.jit(step)

  def __call__(self, variables, rays: camera.Rays, rgb, num_steps: int, batch_size: int, seed: int = 0):
    """`variables` whose appearance tables hold, in row 0, the codes fitted to pixels rgb [N, 3] of rays [N]
    in `num_steps` steps on batches of `batch_size` of them (render them with cam_idx 0)."""
    codes = {path: jnp.mean(table, axis=0) for path, table in _code_tables(variables['params']).items()}
    opt_state = self._optimizer.init(codes)
    codes, opt_state = parallel.placed_like((codes, opt_state), variables)  # (Else the step compiles twice.)
    rays = rays._replace(cam_idx=np.zeros_like(rays.cam_idx))
    draws = np.random.default_rng(seed)
    for _ in range(num_steps):
      chosen = draws.choice(rgb.shape[0], min(batch_size, rgb.shape[0]), replace=False)
      codes, opt_state = self._step(variables, codes, opt_state, jax.tree.map(lambda x: x[chosen], rays),
                                    rgb[chosen])
    return {**variables, 'params': _with_first_row(variables['params'], codes)}


def make_scorer(model, group_config, background) -> Optional[Callable]:
  """The held-out scorer (conditioning.Conditioning.scorer): NeRF-W's half-image score, when
  group_config.fit_steps > 0."""
  if group_config.fit_steps <= 0:
    return None
  fit = CodeFitter(model, jnp.full(3, background, jnp.float32), group_config.fit_learning_rate)

  def score(render_view, variables, rays: camera.Rays, truth, rendering) -> conditioning.Scores:
    """render_view(variables, rays [H, W]) -> {'rgb': [H, W, 3], ...}; truth [H, W, 3]; rendering: the view's,
    with the mean code (a held-out view's rays are camera.ANY_CAMERA)."""
    width = truth.shape[1]
    left = jax.tree.map(lambda x: np.asarray(x)[:, :width // 2].reshape(-1, x.shape[-1]), rays)
    fitted = fit(variables, left, np.asarray(truth)[:, :width // 2].reshape(-1, 3), group_config.fit_steps,
                 group_config.fit_rays)
    with_fitted = render_view(fitted, rays._replace(cam_idx=np.zeros_like(rays.cam_idx)))['rgb']
    with_mean = rendering['rgb']
    right = np.asarray(truth)[:, width // 2:]
    return {'psnr_fitted_code': float(metrics.psnr(with_fitted[:, width // 2:], right)),
            'psnr_right_half': float(metrics.psnr(with_mean[:, width // 2:], right))}

  return score


SETTINGS = {
    'dim': Setting(0, "Length of each training image's appearance code (0: off; NeRF-W uses 48, nerfacto 32).",
                   (values.is_non_negative_int, 'an integer >= 0 (0: off)')),
    'init_std': Setting(0.01, "Standard deviation of the codes' initial values.", values.POSITIVE),
    'num_images': Setting(0, 'Codes in the table: the number of training images, set when training starts.',
                          (values.is_non_negative_int, 'an integer >= 0 (set from the training split)')),
    'fit_steps': Setting(100, "Adam steps fitting a held-out view's code to its left half (0: no such score).",
                         (values.is_non_negative_int, 'an integer >= 0 (0: no fitted-code score)')),
    'fit_learning_rate': Setting(0.05, 'Learning rate of that fit.', values.POSITIVE),
    'fit_rays': Setting(1024, 'Rays of the left half per step of that fit.', values.POSITIVE_INT),
}

conditioning.register(conditioning.Conditioning(
    group='appearance_embedding',
    settings=SETTINGS,
    enabled=lambda group: group.dim > 0,
    build=lambda group, dtype: AppearanceEmbedding(num_images=group.num_images, dim=group.dim,
                                                   init_std=group.init_std),
    complete=lambda group, train_split: {'num_images': train_split.num_images},
    scorer=make_scorer,
    split_keys=('num_images',),
    evaluation_keys=('fit_steps', 'fit_learning_rate', 'fit_rays'),
))
