"""What every field shares: the contract renderers rely on, and FieldBase (fields.py: NeRF's MLP and
instant-ngp's hash grid on it).

A field is a `FieldBase`: geometry (`geometry(inputs)` -> raw density and features) apart from appearance
(`color(features, viewdirs, condition)` -> raw colour), with the attributes every field shares in one place.

The contract every field keeps (renderers rely on nothing else):
- a field is called with the samples of a renderer's level, `field(samples, rng=None)` (ops/ray_samples.py:
  RaySamples), and reads their positions as points [..., 3] or `Gaussians` (mean [..., 3] and the diagonal
  of the covariance [..., 3], a conical frustum's stand-in), whichever the samples stand for
  (`RaySamples.positions`); a field reads what it needs (the hash grid reads the means);
  `field.at_positions(positions, viewdirs, rng=None, cam_idx=None)` does the same at any positions (mesh
  colours, probes);
- `geometry(positions)` -> (raw density [...], features): before the bias and activation, differentiable
  everywhere (normals are its gradient); `density(positions)` -> (density [...], features): the activated
  density (occupancy grids and proposal levels call it) and whatever the colour network reads;
- the outputs are FieldOutputs(density [...], rgb [..., 3], extras), activations applied; extras hold
  'normals' [..., 3] when the field's `normals` is 'density'
  (`geometry_and_normals`: the negative, normalised gradient of the raw density). With
  `rng` (training) Gaussian noise of std `density_noise_std` is added to the raw density (the paper's
  regulariser for real scenes). `density_bias` is added to every raw density: a negative bias starts
  training from nearly empty space, where an untrained field would fill the first units before the camera
  with fog (unbounded scenes, whose rays are long).
- the colour network also reads the field's `conditioning` (models/conditioning.py: per-image inputs such as
  an appearance code, from the samples' camera index), concatenated to its view-dependent input.
- `warp` maps positions before encoding: 'none', or 'contract' (mip-NeRF 360's contraction of space beyond
  `contract_radius` into a ball of twice that radius, Eq. 10; Gaussians go through its linearisation, Eq. 9).

Layers are built by `layers.make_dense` from the field's `layers` ('dense', or 'ternary' for BitNet b1.58's
quantisation-aware layers) and `full_precision_layers` (roles 'input', 'hidden', 'output' or layer names kept
in full precision); each field gives its layers' roles.

Compute runs in `dtype` (bfloat16 or float16 for mixed precision); parameters, encodings, and everything
after the last layer stay float32.
"""

from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
from jaxnerf.models.activations import density_activation
from jaxnerf.models.activations import DENSITY_ACTIVATIONS
from jaxnerf.models.activations import TONE_MAPPINGS
from jaxnerf.models import layers as layers_lib
from jaxnerf.ops.camera import ANY_CAMERA
from jaxnerf.ops import coord
from jaxnerf.ops import encoding
from jaxnerf.ops.ray_samples import Gaussians
from jaxnerf.ops.ray_samples import RaySamples
from jaxnerf import values


class FieldOutputs(NamedTuple):
  density: jnp.ndarray  # [...], activated, float32.
  rgb: Optional[jnp.ndarray]  # [..., 3], in [-rgb_padding, 1 + rgb_padding], float32; None: density only.
  # Other per-sample outputs by name, [..., D] (normals, ...): renderers keep them in the ray history and
  # composite them per ray like colour.
  extras: Optional[Dict[str, jnp.ndarray]] = None


WARPS = ('none', 'contract')
NORMALS = ('none', 'density')


def _check_predicted_normals(config) -> Optional[str]:
  """The predicted-normal head learns only from its loss term: predicted_normals needs that term's weight."""
  if config.model.get('predicted_normals') and not config.loss.predicted_normals_weight > 0:
    return ('config.model.predicted_normals=True: the predicted-normal head learns only from its tie to the '
            'density\'s normals; set config.loss.predicted_normals_weight > 0 (Ref-NeRF\'s 3e-4) and '
            'config.model.normals=\'density\', or predicted_normals=False.')
  return None


def _check_normals_step(config) -> Optional[str]:
  """A step for the normals' differences means nothing where no normals are computed."""
  if config.model.get('normals_step', 0) > 0 and config.model.normals != 'density':
    return (f'config.model.normals_step={config.model.normals_step} takes the density normals by central '
            f"differences, but config.model.normals={config.model.normals!r} computes none: set "
            "config.model.normals='density', or normals_step=0.")
  return None


_ANNEALING_RULE = (lambda v: isinstance(v, (tuple, list)) and len(v) == 2 and all(values.is_number(x) for x in v)
                   and 0 <= v[0] <= v[1] <= 1, 'a pair (start, end) with 0 <= start <= end <= 1')

# The keys of config.model that every field reads (make_model hands them to each field it builds).
config_groups.register('model', owner=__name__, settings=dict(
    density_activation=Setting(
        'relu', "Activation of the raw density: 'relu' (NeRF), 'softplus' (mip-NeRF's, shifted by -1) or "
        "'trunc_exp' (instant-ngp's exp with a gradient clipped at exp(15)).", values.one_of(DENSITY_ACTIVATIONS)),
    density_bias=Setting(0.0, 'Added to the raw density before its activation: a negative bias starts training '
                         'from nearly empty space (0: none).'),
    density_noise_std=Setting(0.0, 'Std of Gaussian noise added to the raw density while training (0: none; the '
                              'NeRF paper uses 1 for LLFF scenes).', values.NON_NEGATIVE),
    rgb_padding=Setting(0.0, "Widens the colour's sigmoid to [-padding, 1 + padding] (0: a plain sigmoid; "
                        'mip-NeRF uses 0.001).', values.NON_NEGATIVE),
    warp=Setting('none', "How fields map positions before encoding them: 'none', or 'contract' (mip-NeRF 360's "
                 'contraction of space beyond contract_radius into a ball of twice that radius; unbounded '
                 'scenes).', values.one_of(WARPS, ordered=True)),
    contract_radius=Setting(1.0, "warp='contract': radius in world units of the ball left as it is; everything "
                            'beyond it is contracted into the ball of twice this radius.'),
    normals=Setting('none', "'density': fields also output normals, the negative gradient of their raw density "
                    "with respect to the position (normal maps in renders); 'none': no normals.",
                    values.one_of(NORMALS, ordered=True)),
    normals_step=Setting(0.0, "normals='density': 0, the exact gradient; > 0, central differences of the raw "
                         'density this far apart (world units, before any warp), as Neuralangelo takes them: '
                         'normals smoothed over that scale, whose gradients reach every grid cell the '
                         'differences touch.', values.NON_NEGATIVE),
    predicted_normals=Setting(False, "True: fields also predict normals from their geometry features "
                              "('normals_pred'), tied to the density's (normals='density') by "
                              "loss.predicted_normals_weight. Ref-NeRF's appearance predicts its own.", values.BOOL),
    tone_mapping=Setting('none', "How the fields' linear colour becomes the pixel's: 'none', or 'srgb' (the sRGB "
                         "curve, Ref-NeRF's tone mapping).", values.one_of(TONE_MAPPINGS)),
    encoding_annealing=Setting((0.0, 0.0), "(start, end) fractions of the run over which the position "
                               "encoding's bands open, lowest first (BARF's coarse-to-fine annealing, for "
                               'learned cameras: octaves of the MLP fields, levels of the hash grid beyond its '
                               'first); (0, 0): all of them from the start.', _ANNEALING_RULE),
), checks=(_check_predicted_normals, _check_normals_step))


def safe_normalize(x, eps: float = 1e-20):
  """x [..., D] / |x|, with a finite value and gradient where x is 0 (the norm is floored at sqrt(eps))."""
  return x / jnp.sqrt(jnp.maximum(jnp.sum(x**2, axis=-1, keepdims=True), eps))


def warp_inputs(inputs, warp: str, contract_radius: float = 1.0):
  """Points [..., 3] or Gaussians, mapped by `warp` (see the module's docstring); of the same kind."""
  if warp not in WARPS:
    raise ConfigError(f'config.model.warp must be one of {list(WARPS)}, got {warp!r}.')
  if warp == 'none':
    return inputs
  if isinstance(inputs, Gaussians):
    mean, cov_diag = coord.contract_gaussian(inputs.mean / contract_radius,
                                             inputs.cov_diag / contract_radius**2)
    return Gaussians(mean * contract_radius, cov_diag * contract_radius**2)
  return coord.contract(inputs / contract_radius) * contract_radius


class PredictedNormals(nn.Module):
  """A predicted-normal head: unit normals [..., 3] from a field's geometry features [..., F] by one dense
  layer (Ref-NeRF's n' for any field; trained only by the predicted-normal loss, which ties it to the
  density's normals). RefNeRFAppearance keeps its own head of the same form, so that its checkpoints keep
  their parameter names."""

  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features):
    head = nn.Dense(3, dtype=self.dtype, param_dtype=jnp.float32, name='normals_pred')
    return safe_normalize(head(features).astype(jnp.float32))


def with_condition(x, condition):
  """x [..., D] with the condition [..., E] concatenated (x itself where there is none)."""
  return x if condition is None else jnp.concatenate([x, condition.astype(x.dtype)], axis=-1)


def _activate_rgb(raw_rgb, padding: float):
  """mip-NeRF's widened sigmoid (padding 0.001 there): keeps colour gradients alive near 0 and 1."""
  return nn.sigmoid(raw_rgb.astype(jnp.float32)) * (1 + 2 * padding) - padding


def _activate_density(field, raw_density, rng: Optional[jax.Array]):
  """The field's density activation of raw_density [...] plus the field's `density_bias`, after the field's
  noise when rng is given."""
  raw_density = raw_density.astype(jnp.float32) + field.density_bias
  if rng is not None and field.density_noise_std > 0:
    raw_density += field.density_noise_std * jax.random.normal(rng, raw_density.shape)
  return density_activation(field.density_activation)(raw_density)


class FieldBase(nn.Module):
  """What every field shares: the warp of positions, the density's activation, bias and noise, the colour's
  activation, the kind of its layers and the compute dtype; and the split of a field into geometry and
  appearance that renderers, occupancy grids and normals rely on.

  A field defines, beside `setup`:
  - `geometry(inputs, progress)` -> (raw density [...], features [..., F]): the density before its bias and
    activation (differentiable everywhere: normals are its gradient), and the features the colour reads, with
    its encoding's bands weighted by `encoding_window(progress, num_bands)` (BARF's annealing);
  - `color(features, viewdirs)` -> raw colour [..., 3], before the sigmoid.
  """

  warp: str = 'none'
  contract_radius: float = 1.0
  density_activation: str = 'relu'
  density_bias: float = 0.0
  density_noise_std: float = 0.0
  rgb_padding: float = 0.0
  layers: str = 'dense'
  full_precision_layers: Sequence[str] = ('input', 'output')
  activation_bits: int = 8
  dtype: Any = jnp.float32
  # 'density': also output 'normals' [..., 3], the density's normals (`density_normals`), kept per sample in
  # the ray history and composited per ray; 'none': no normals (they cost a backward pass of the geometry).
  normals: str = 'none'
  # 0: the normals are the exact gradient of the raw density (by NORMALS_AUTODIFF); > 0: its central
  # differences over this step along each axis (Neuralangelo's numerical gradient, Li et al. 2023, Sec. 3.2):
  # smoother normals, and the losses on them update the grid around each sample, not only its own cells.
  normals_step: float = 0.0
  # Another colour model over this geometry (appearance.py: Ref-NeRF's), called as appearance(features,
  # viewdirs) -> (linear rgb, extras); None: the field's own `color`, through a sigmoid.
  appearance: Optional[nn.Module] = None
  # How linear colour becomes the pixel's (activations.TONE_MAPPINGS): 'none', or 'srgb'.
  tone_mapping: str = 'none'
  # A head that predicts normals from the features (PredictedNormals), output as 'normals_pred'; None: none
  # (Ref-NeRF's appearance predicts its own).
  predicted_normals: Optional[nn.Module] = None
  # Per-image inputs of the colour network (models/conditioning.py), each called as module(cam_idx [..., 1])
  # -> [..., D]; their outputs are concatenated to the colour network's view-dependent input.
  conditioning: Sequence[nn.Module] = ()
  # (start, end): BARF's coarse-to-fine annealing of the position's encoding over that part of the run
  # (`encoding_window`); (0, 0): every band from the start.
  encoding_annealing: Tuple[float, float] = (0.0, 0.0)
  # How `geometry_and_normals` differentiates the geometry. The normal losses (and Ref-NeRF's reflection
  # about the density's normals) differentiate the normals once more, and the cheaper order depends on the
  # field. Measured on the 2-core CPU, normals and the gradient of a loss on them: the hash grid (2048 x 16
  # samples) 3.3 s reverse-over-reverse, through the transposed table gathers, and 0.20 s
  # reverse-over-forward; the 8x256 MLP (1024 x 16) 1.07 s and 2.6 s.
  NORMALS_AUTODIFF = 'reverse'
  # Gradient checkpointing (config.model.remat): MLPField recomputes its trunk's activations in the backward
  # pass, REMAT_CHUNK samples at a time, instead of keeping them: memory for compute; the same parameters.
  remat: bool = False
  REMAT_CHUNK = 16384
  # What make_model gives a field of this kind: whether it recomputes activations with `remat` (a model
  # whose fields all ignore it refuses remat=True), and whether it covers the scene box (it then needs
  # config.scene_box or the contraction, and gets the box as `scene_box`).
  REMATS = False
  COVERS_BOX = False

  def encoding_window(self, progress, num_bands: int):
    """Weights [num_bands] of the position encoding's bands (octaves, hash-grid levels) at training
    progress `progress` (encoding.annealing_window over `encoding_annealing`)."""
    start, end = self.encoding_annealing
    return encoding.annealing_window(progress, num_bands, start, end)

  def _make_layers(self, specs):
    """The field's layers from specs [(name, units, role)], by its `layers` and `full_precision_layers`
    (after checking its density activation)."""
    density_activation(self.density_activation)
    names = [name for name, _, _ in specs]
    layers_lib.check_layers(self.layers, self.full_precision_layers, names,
                            f'{type(self).__name__} (config.model.<field>)')
    return {name: layers_lib.make_dense(self.layers, self.full_precision_layers, units, name, role, self.dtype,
                                        self.activation_bits)
            for name, units, role in specs}

  def provides(self) -> set:
    """What this field adds to a renderer's ray history for loss terms (losses.NEEDS): 'normals' where it
    outputs density normals, 'predicted_normals' where it or its appearance predicts normals."""
    provided = {'normals'} if self.normals == 'density' else set()
    if self.predicted_normals is not None or (self.appearance is not None and hasattr(self.appearance, 'provides')
                                              and 'predicted_normals' in self.appearance.provides()):
      provided.add('predicted_normals')
    return provided

  def density(self, inputs, rng: Optional[jax.Array] = None, progress=1.0):
    """Density [...] at points [..., 3] or Gaussians (activated, after `density_bias` and, with rng, the
    field's noise), and the geometry features the colour reads, at training progress `progress` (the
    encoding's annealing reads it; 1: all of it)."""
    raw_density, features = self.geometry(inputs, progress)
    return _activate_density(self, raw_density, rng), features

  def geometry_and_normals(self, inputs, progress=1.0):
    """(raw density [...], features, normals [..., 3]) at points [..., 3] or Gaussians (at their means): the
    normals are the negative gradient of the raw density with respect to the position, normalised (Ref-NeRF,
    Eq. 2: they point out of the surface), through the warp and the encoding, by the field's
    `NORMALS_AUTODIFF`: 'reverse' (one backward pass) or 'forward' (three tangents of one linearisation); or,
    with `normals_step` > 0, its central differences (f(x + h e_i) - f(x - h e_i)) / 2h."""
    points = inputs.mean if isinstance(inputs, Gaussians) else inputs

    def geometry_at(x):
      raw_density, features = self.geometry(inputs._replace(mean=x) if isinstance(inputs, Gaussians) else x,
                                            progress)
      return raw_density.astype(jnp.float32), features

    if self.normals_step > 0:
      raw_density, features = geometry_at(points)
      step = self.normals_step
      gradient = jnp.stack([(geometry_at(points + step * axis)[0] - geometry_at(points - step * axis)[0]) / (2 * step)
                            for axis in jnp.eye(3, dtype=points.dtype)], axis=-1)
    elif self.NORMALS_AUTODIFF == 'reverse':
      raw_density, pullback, features = jax.vjp(geometry_at, points, has_aux=True)
      gradient = pullback(jnp.ones_like(raw_density))[0]
    else:
      raw_density, along, features = jax.linearize(geometry_at, points, has_aux=True)
      gradient = jnp.stack([along(jnp.broadcast_to(axis, points.shape))
                            for axis in jnp.eye(3, dtype=points.dtype)], axis=-1)
    return raw_density, features, -safe_normalize(gradient)

  def density_normals(self, inputs):
    """Unit normals [..., 3] of the density at points [..., 3] or Gaussians (`geometry_and_normals`)."""
    return self.geometry_and_normals(inputs)[2]

  def __call__(self, samples: RaySamples, rng: Optional[jax.Array] = None) -> FieldOutputs:
    """Density and colour at a renderer's samples [...] (ops/ray_samples.py), and 'normals' among the extras
    when the field's `normals` is 'density'."""
    return self.at_positions(samples.positions(), samples.per_sample(samples.viewdirs), rng,
                             samples.per_sample(samples.cam_idx), samples.progress)

  def density_at(self, samples: RaySamples, rng: Optional[jax.Array] = None):
    """`density` at a renderer's samples (proposal levels)."""
    return self.density(samples.positions(), rng, samples.progress)

  def at_positions(self, inputs, viewdirs, rng: Optional[jax.Array] = None, cam_idx=None,
                   progress=1.0) -> FieldOutputs:
    """Density and colour at points [..., 3] or Gaussians, seen along unit viewdirs [..., 3] from the
    training image cam_idx [..., 1] (None: camera.ANY_CAMERA), at training progress `progress`."""
    if self.normals not in NORMALS:
      raise ConfigError(f'config.model.normals must be one of {NORMALS}, got {self.normals!r}.')
    if self.tone_mapping not in TONE_MAPPINGS:
      raise ConfigError(f'config.model.tone_mapping must be one of {sorted(TONE_MAPPINGS)}, '
                        f'got {self.tone_mapping!r}.')
    if self.normals == 'density':
      raw_density, features, normals = self.geometry_and_normals(inputs, progress)
      return self.shade(_activate_density(self, raw_density, rng), features, viewdirs, normals, cam_idx)
    density, features = self.density(inputs, rng, progress)
    return self.shade(density, features, viewdirs, cam_idx=cam_idx)

  def condition(self, cam_idx, shape):
    """The conditioning's inputs [..., D] of the colour network for samples of `shape` [...] from the
    training images cam_idx [..., 1] (None: camera.ANY_CAMERA); None when the field has none."""
    if not self.conditioning:
      return None
    if cam_idx is None:
      cam_idx = jnp.full(tuple(shape) + (1,), ANY_CAMERA, jnp.int32)
    return jnp.concatenate([module(cam_idx) for module in self.conditioning], axis=-1).astype(self.dtype)

  def shade(self, density, features, viewdirs, normals=None, cam_idx=None) -> FieldOutputs:
    """The field's outputs from its geometry already computed: density [...] (activated) and features
    [..., F] as `density` returns them, seen along viewdirs [..., 3] from the training images cam_idx
    [..., 1] (None: camera.ANY_CAMERA); `normals` [..., 3], the density's, where the field outputs them.
    Renderers that have the density at every sample before they need colour (the occupancy grid's,
    rendering images) call this instead of evaluating the geometry twice."""
    extras = {} if normals is None else {'normals': normals}
    if self.predicted_normals is not None:
      extras['normals_pred'] = self.predicted_normals(features)
    condition = self.condition(cam_idx, density.shape)
    if self.appearance is None:
      linear = _activate_rgb(self.color(features, viewdirs, condition), self.rgb_padding)
    else:
      linear, appearance_extras = self.appearance(features, viewdirs, normals, condition)
      extras.update(appearance_extras)
    return FieldOutputs(density, TONE_MAPPINGS[self.tone_mapping](linear), extras or None)
