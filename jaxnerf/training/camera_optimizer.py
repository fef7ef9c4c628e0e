"""Learned cameras: a correction in SE(3) of every training camera, trained with the scene.

COLMAP's poses are never exact; a capture trained on them renders blur where the cameras disagree. As
nerfstudio's camera optimizer and BARF (Lin et al. 2021) do, each training camera i gets a twist xi_i in
se(3), zero at first, and its rays are made from the corrected pose camtoworld_i . exp(xi_i) (ops/rigid.py),
turning about a pivot pivot_depth in front of the camera, with the translation in units of that depth: a
pan and an orbit about the scene are then separate coordinates, which Adam steps alike. Rays are made inside
the compiled step from the camera table (training/steps.py: batch_rays), so the data term's gradient
reaches every xi_i; an Adam of its own, with its own learning rate and schedule (config.camera_optimizer),
trains them, and the term `camera_correction` pulls them toward zero (mean over cameras of |xi_i|^2,
rotations in radians and translations in units of the pivot's depth).

This module is a parameter group (training/parameter_groups.py): the training state, step, loss and
checkpoints read the registry, and evaluation aligns the refined cameras to the given ones before rendering
held-out views (training/camera_alignment.py).
"""

import jax.numpy as jnp
import numpy as np

from jaxnerf.config_groups import Setting
from jaxnerf.datasets import pose_noise
from jaxnerf.errors import ConfigError
from jaxnerf import losses
from jaxnerf.ops import rigid
from jaxnerf.training import parameter_groups
from jaxnerf import values

MODES = ('off', 'SE3')
NAME = 'camera_optimizer'

SETTINGS = dict(
    mode=Setting('off', "'SE3': learn a correction of every training camera's pose while the scene trains "
                 "(nerfstudio's camera optimizer); 'off': train on the poses as given.",
                 values.one_of(MODES, ordered=True)),
    lr_init=Setting(1e-3, "Learning rate of the cameras' corrections at the start (BARF's 1e-3).", values.POSITIVE),
    lr_final=Setting(1e-5, "Learning rate of the cameras' corrections at the end: log-linear decay over the run "
                     "(BARF's 1e-5).", values.POSITIVE),
    lr_decay_start=Setting(0.0, 'Fraction of the run for which lr_init is held before its decay.',
                           (values.is_probability, 'a fraction of the run in [0, 1)')),
    pivot_depth=Setting(-1.0, 'Each correction turns the camera about the point this far in front of it (scene '
                        'units): at the scene\'s distance, an orbit about the scene and a pan are apart, and Adam '
                        'steps along each alike (0: about the camera\'s centre; -1: the median distance from the '
                        'training cameras to the scene centre, filled in when training starts).',
                        (lambda v: values.is_number(v) and (v >= 0 or v == -1), 'a distance >= 0, or -1')),
    num_cameras=Setting(0, 'The number of training cameras corrected (filled in from the training split when '
                        'training starts; saved with the run).', values.NON_NEGATIVE_INT),
)


def _init(group_config, key):
  del key  # Zero: the poses as given.
  return {'twists': jnp.zeros((group_config.num_cameras, 6), jnp.float32)}


def corrected_cameras(group_config, arrays, cameras, progress=1.0):
  """The camera table with every pose corrected by its twist: camtoworld_i . exp(xi_i), turning about the
  point pivot_depth in front of the camera (ops/rigid.py: about_pivot)."""
  del progress
  twists = arrays['twists']
  if twists.shape[0] != cameras.camtoworlds.shape[0]:
    raise ConfigError(f'config.camera_optimizer.num_cameras={twists.shape[0]} corrections, for '
                      f'{cameras.camtoworlds.shape[0]} training cameras: the scene is not the one the run trained on.')
  # Translations are learnt in units of the pivot's distance, as fractions of the scene's (Adam steps every
  # coordinate alike: a pan by a translation then takes as many steps as a turn by the same angle).
  depth = max(group_config.pivot_depth, 0.0)
  unit = depth if depth > 0 else 1.0
  twists = jnp.concatenate([twists[:, :3] * unit, twists[:, 3:]], axis=-1)
  deltas = rigid.about_pivot(rigid.exp_se3(twists, jnp), depth, jnp)
  return cameras._replace(camtoworlds=rigid.compose(cameras.camtoworlds, deltas, jnp))


def _complete(group_config, train_split):
  values_of_split = {'num_cameras': int(train_split.num_images)}
  if group_config.pivot_depth == -1:
    centre = pose_noise.scene_centre(train_split)
    distances = np.linalg.norm(train_split.camtoworlds[:, :, 3] - centre, axis=-1)
    values_of_split['pivot_depth'] = float(np.median(distances))
  return values_of_split


parameter_groups.register(parameter_groups.ParameterGroup(
    name=NAME, settings=SETTINGS, enabled=lambda group_config: group_config.mode != 'off', init=_init,
    complete=_complete, split_keys=('num_cameras', 'pivot_depth'), state_keys=('mode', 'num_cameras', 'pivot_depth'),
    adjust_cameras=corrected_cameras))


@losses.register_loss_term('camera_correction', default_weight=1e-3, reads_params=NAME,
                           meaning="Pull of the cameras' learned corrections toward zero (camera_optimizer): "
                           'weight of the mean squared twist per camera.')
def camera_correction_term(history, batch, loss_config, arrays):
  """mean_i |xi_i|^2 of the cameras' twists (rotation in radians, translation in units of the pivot's depth)."""
  del history, batch, loss_config
  return jnp.mean(jnp.sum(arrays['twists']**2, axis=-1))
