"""Checks of a config's values before anything runs: each failure is one ConfigError naming the key, its
value and what was expected. (Names of models, fields and activations are checked where they are looked up.)
"""

import math
from typing import Any, Callable, Sequence, Tuple

import jax
import ml_collections

from jaxnerf.datasets.capture import NORMALIZATIONS
from jaxnerf.datasets import procedural
from jaxnerf.errors import ConfigError
from jaxnerf import losses
from jaxnerf.models.activations import TONE_MAPPINGS
from jaxnerf.models.appearance import APPEARANCES
from jaxnerf.models.appearance import REFLECT_ABOUT
from jaxnerf.models import conditioning
from jaxnerf.models import fields
from jaxnerf.models.layers import LAYER_KINDS
from jaxnerf.ops import camera_paths
from jaxnerf import perceptual
from jaxnerf.training.pruning import LEVELS
from jaxnerf.training.train_state import LOSS_SCALE_MODES
from jaxnerf import values
from jaxnerf.values import NON_NEGATIVE
from jaxnerf.values import NON_NEGATIVE_INT
from jaxnerf.values import POSITIVE
from jaxnerf.values import POSITIVE_INT


# (key, (test, what is expected)). Keys missing from a config are skipped.
RULES: Sequence[Tuple[str, Tuple[Callable[[Any], bool], str]]] = (
    ('factor', POSITIVE_INT),
    ('near', NON_NEGATIVE),
    ('far', POSITIVE),
    ('procedural.resolution', (lambda v: values.is_positive_int(v) and v >= 8, 'an integer >= 8 (pixels)')),
    ('procedural.num_train', POSITIVE_INT),
    ('procedural.num_val', NON_NEGATIVE_INT),
    ('procedural.num_test', NON_NEGATIVE_INT),
    ('procedural.camera_radius', POSITIVE),
    ('procedural.camera_angle_x', (lambda v: values.is_number(v) and 0 < v < math.pi, 'an angle in (0, pi) radians')),
    ('procedural.supersampling', POSITIVE_INT),
    *((f'procedural.{key}', rule) for key, rule in procedural.DRIFT_RULES.items()),  # The spec's own rules.
    ('batching.precrop_steps', NON_NEGATIVE_INT),
    ('batching.precrop_fraction', (values.is_fraction, 'a fraction in (0, 1]')),
    ('model.num_coarse_samples', POSITIVE_INT),
    ('model.num_fine_samples', NON_NEGATIVE_INT),
    ('model.density_noise_std', NON_NEGATIVE),
    ('model.rgb_padding', NON_NEGATIVE),
    ('model.normals', (lambda v: v in fields.NORMALS, f'one of {list(fields.NORMALS)}')),
    ('model.predicted_normals', (lambda v: isinstance(v, bool), 'True or False')),
    ('model.mlp.use_viewdirs', (lambda v: isinstance(v, bool), 'True or False')),
    ('model.remat', (lambda v: isinstance(v, bool), 'True or False')),
    ('model.hash_grid.table_bits', (lambda v: v in fields.TABLE_BITS, f'one of {list(fields.TABLE_BITS)}')),
    ('model.appearance', (lambda v: v in APPEARANCES, f'one of {sorted(APPEARANCES)}')),
    ('model.tone_mapping', (lambda v: v in TONE_MAPPINGS, f'one of {sorted(TONE_MAPPINGS)}')),
    ('model.refnerf.reflect_about', (lambda v: v in REFLECT_ABOUT, f'one of {list(REFLECT_ABOUT)}')),
    ('model.occupancy_grid.grid_resolution', POSITIVE_INT),
    ('model.occupancy_grid.step_size', POSITIVE),
    ('model.occupancy_grid.march_samples_per_ray', POSITIVE),
    ('model.occupancy_grid.render_samples_per_ray', POSITIVE),
    ('model.occupancy_grid.eval_march_samples_per_ray', POSITIVE),
    ('model.occupancy_grid.eval_render_samples_per_ray', POSITIVE),
    ('model.occupancy_grid.eval_steps_per_round', NON_NEGATIVE_INT),
    ('model.occupancy_grid.update_every', POSITIVE_INT),
    *((f'model.{group}.layers', (lambda v: v in LAYER_KINDS, f'one of {list(LAYER_KINDS)}'))
      for group in ('mlp', 'hash_grid', 'proposal.mlp', 'proposal.hash_grid')),
    *((f'model.{group}.activation_bits', (lambda v: values.is_positive_int(v) and 2 <= v <= 8, 'an integer in [2, 8]'))
      for group in ('mlp', 'hash_grid')),
    ('optim.lr_init', POSITIVE),
    ('optim.lr_final', POSITIVE),
    ('optim.lr_decay_start', (values.is_probability, 'a fraction of the run in [0, 1)')),
    ('optim.lr_delay_steps', NON_NEGATIVE_INT),
    ('optim.lr_delay_mult', POSITIVE),
    ('optim.adam_b1', (values.is_probability, 'a number in [0, 1)')),
    ('optim.adam_b2', (values.is_probability, 'a number in [0, 1)')),
    ('optim.adam_eps', NON_NEGATIVE),
    ('optim.grad_clip_norm', NON_NEGATIVE),
    ('optim.loss_scale.mode', (lambda v: v in LOSS_SCALE_MODES, f'one of {list(LOSS_SCALE_MODES)}')),
    ('optim.loss_scale.initial', POSITIVE),
    ('optim.loss_scale.growth_interval', POSITIVE_INT),
    ('optim.loss_scale.minimum', POSITIVE),
    ('optim.pruned_levels', (lambda v: v in ('none',) + LEVELS, f"one of {['none', *LEVELS]}")),
    ('loss.data', (lambda v: v in losses.DATA_PENALTIES, f'one of {sorted(losses.DATA_PENALTIES)}')),
    ('loss.charbonnier_eps', POSITIVE),
    ('loss.coarse_weight', NON_NEGATIVE),
    ('loss.orientation_target', (lambda v: v in losses.ORIENTATION_TARGETS,
                                 f'one of {sorted(losses.ORIENTATION_TARGETS)}')),
    *((f'loss.{term}_weight', NON_NEGATIVE) for term in losses.LOSS_TERMS),  # Every registered term's.
    ('train.batch_size', POSITIVE_INT),
    ('train.num_steps', POSITIVE_INT),
    ('train.max_seconds', NON_NEGATIVE),
    ('train.log_every', POSITIVE_INT),
    ('train.checkpoint_every', POSITIVE_INT),
    ('train.keep_checkpoints', POSITIVE_INT),
    ('train.stall_warning_steps', NON_NEGATIVE_INT),
    ('train.keep_best', (lambda v: isinstance(v, bool), 'True or False')),
    ('train.init_from', (lambda v: isinstance(v, str), "a workdir's path, or '' (none)")),
    ('train.init_from_step', (lambda v: isinstance(v, str) and (v in ('newest', 'best') or v.isdigit()),
                              "'newest', 'best' or a checkpoint's step such as '3000'")),
    ('eval.every_steps', NON_NEGATIVE_INT),
    ('eval.at_train_seconds', (lambda v: all(values.is_non_negative(t) for t in v), 'a list of seconds >= 0')),
    ('eval.num_images', NON_NEGATIVE_INT),
    ('eval.final_num_images', (lambda v: isinstance(v, int) and v >= -1, 'an integer >= -1 (-1: all)')),
    ('eval.chunk_size', POSITIVE_INT),
    ('eval.memory_budget_mb', POSITIVE),
    ('eval.lpips', (lambda v: isinstance(v, (tuple, list)) and len(set(v)) == len(v)
                    and all(net in perceptual.NETS for net in v),
                    f"a tuple of distinct LPIPS networks from {perceptual.NETS}, e.g. \"('alex',)\" or ()")),
    ('eval.video_frames', NON_NEGATIVE_INT),
    ('eval.video_every', NON_NEGATIVE_INT),
    ('train.viewer_port', (lambda v: isinstance(v, int) and 0 <= v <= 65535, 'a port from 1 to 65535, or 0 (none)')),
    ('train.viewer_host', (lambda v: isinstance(v, str) and bool(v.strip()), "an address such as '127.0.0.1'")),
    ('eval.video_fps', POSITIVE_INT),
    ('eval.video_min_size', NON_NEGATIVE_INT),
    ('eval.path', (lambda v: v in camera_paths.PATHS, f'one of {camera_paths.PATHS}')),
    ('capture.test_every', (lambda v: values.is_positive_int(v) and v >= 2, 'an integer >= 2')),
    ('capture.normalize', (lambda v: v in NORMALIZATIONS, f'one of {NORMALIZATIONS}')),
    ('capture.near', NON_NEGATIVE),
    ('capture.far', NON_NEGATIVE),
    *conditioning.rules(),  # Each registered component's, beside it.
)


def _lookup(config, key: str):
  value = config
  for part in key.split('.'):
    if part not in value:
      raise KeyError(key)
    value = value[part]
  return value


def check_values(config: ml_collections.ConfigDict):
  """Raises ConfigError for the first value of RULES (or relation between values) that cannot work."""
  for key, (test, expected) in RULES:
    try:
      value = _lookup(config, key)
    except KeyError:
      continue
    if not test(value):
      raise ConfigError(f'config.{key}={value!r}: expected {expected}.')
  if config.model.get('predicted_normals') and not config.loss.predicted_normals_weight > 0:
    raise ConfigError('config.model.predicted_normals=True: the predicted-normal head learns only from its tie '
                      'to the density\'s normals; set config.loss.predicted_normals_weight > 0 (Ref-NeRF\'s '
                      '3e-4) and config.model.normals=\'density\', or predicted_normals=False.')
  if (config.model.get('appearance') == 'refnerf' and config.model.refnerf.get('reflect_about') == 'density'
      and config.model.normals != 'density'):
    raise ConfigError("config.model.refnerf.reflect_about='density' reflects the view direction about the "
                      f"density's normals, which config.model.normals={config.model.normals!r} does not compute: "
                      "set config.model.normals='density'.")
  validates = (config.eval.every_steps > 0 or config.eval.at_train_seconds) and config.eval.num_images > 0
  if config.train.get('keep_best') and not validates:
    raise ConfigError('config.train.keep_best=True keeps the checkpoint of the best validation: set '
                      'config.eval.every_steps > 0 (or eval.at_train_seconds) and eval.num_images > 0, or '
                      'keep_best=False.')
  if not config.near < config.far:
    raise ConfigError(f'config.near={config.near} must be less than config.far={config.far}.')
  box = tuple(config.scene_box)
  if box and (len(box) != 6 or not all(values.is_number(v) for v in box) or
              not all(lo < hi for lo, hi in zip(box[:3], box[3:]))):
    raise ConfigError(f'config.scene_box={box}: expected () or 6 numbers (x_min, y_min, z_min, x_max, y_max, '
                      'z_max) with each min below its max.')


def check_divisible(size: int, key: str):
  """Raises if `size` rows cannot be split evenly over all devices."""
  count = jax.device_count()
  if size % count:
    raise ConfigError(f'{key}={size} must be divisible by the number of devices ({count}).')


def check_training(config: ml_collections.ConfigDict):
  """`check_values`, and that batches split evenly over the devices and processes of this run."""
  check_values(config)
  check_divisible(config.train.batch_size, 'config.train.batch_size')
  check_divisible(config.eval.chunk_size, 'config.eval.chunk_size')
  if config.train.batch_size % jax.process_count():
    raise ConfigError(f'config.train.batch_size={config.train.batch_size} must be divisible by the number '
                      f'of processes ({jax.process_count()}).')
