"""Flax models: fields and the renderers that sample and composite them, found by name.

They wire the pure functions of ops/ (encoding.py, hash_grid.py, sampling.py, marching.py, compositing.py):
- activations.py: density activations;
- field_base.py: the contract of fields (FieldBase); fields.py: networks from points or Gaussians (and view
  directions) to density and colour (`FIELDS`);
- conditioning.py: per-image inputs of the colour networks (a code per training image, ...), registered with
  their config groups;
- renderers (`RENDERERS`): sampling, field calls and compositing along rays, and the update of a renderer's
  non-trained state: coarse_to_fine.py (NeRF, mip-NeRF), proposal.py (mip-NeRF 360's proposal sampling),
  occupancy_grid.py (instant-ngp's marching).

The renderer contract: model.apply(variables, rng, rays, background, progress) returns the ray history, a list
of compositing.RenderedRays, one per level, the final output last (rgb None on density-only levels; s_edges and
w are what the interlevel and distortion losses read); rng is None when rendering images, and progress is the
fraction of training done (1 when rendering). `model.update_state(params, model_state, rng, step)` returns the
non-trained variables for a training step.
Fields are called with the samples of a level (ops/ray_samples.py: RaySamples), built once per level by the
renderer from its rays, which carry the index of their training image (camera.Rays.cam_idx).
`make_model(config.model, scene_box)` builds the renderer a config names.
"""

from typing import FrozenSet, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf.errors import ConfigError
from jaxnerf.models.activations import density_activation
from jaxnerf.models.activations import DENSITY_ACTIVATIONS
from jaxnerf.models.activations import trunc_exp
from jaxnerf.models import appearance_embedding  # noqa: F401  (It registers itself in conditioning.)
from jaxnerf.models.appearance import APPEARANCES
from jaxnerf.models.coarse_to_fine import MipNeRF
from jaxnerf.models.coarse_to_fine import NeRF
from jaxnerf.models import conditioning
from jaxnerf.models.fields import FieldOutputs
from jaxnerf.models.fields import Gaussians
from jaxnerf.models.fields import HashGridField
from jaxnerf.models.fields import MLPField
from jaxnerf.models.fields import PredictedNormals
from jaxnerf.models.fields import WARPS
from jaxnerf.models.occupancy_grid import OccupancyGridNeRF
from jaxnerf.models.proposal import ProposalNeRF
from jaxnerf.ops import coord
from jaxnerf import values

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16}
FIELDS = {'mlp': MLPField, 'hash_grid': HashGridField}


def _occupancy_grid(model_config, make_field, scene_box) -> nn.Module:
  """instant-ngp's marching over any field (the grid measures its `density` alone, which every field has)."""
  if scene_box is None:
    raise ConfigError('config.model.name=occupancy_grid needs config.scene_box: the grid covers that box.')
  return OccupancyGridNeRF(field=make_field(), scene_box=scene_box, **model_config.occupancy_grid)


def _nerf(model_config, make_field, scene_box) -> nn.Module:
  return NeRF(
      coarse_field=make_field(),
      fine_field=make_field() if model_config.num_fine_samples > 0 else None,
      num_coarse_samples=model_config.num_coarse_samples,
      num_fine_samples=model_config.num_fine_samples,
      lindisp=model_config.lindisp,
      scene_box=scene_box)


def _mipnerf(model_config, make_field, scene_box) -> nn.Module:
  return MipNeRF(field=make_field(), lindisp=model_config.lindisp, scene_box=scene_box,
                 **model_config.mipnerf)


def _proposal(model_config, make_field, scene_box) -> nn.Module:
  proposal = model_config.proposal
  if proposal.field not in FIELDS:
    raise ConfigError(f'config.model.proposal.field must be one of {sorted(FIELDS)}, got {proposal.field!r}.')
  if proposal.spacing not in coord.SPACINGS:
    raise ConfigError(f'config.model.proposal.spacing must be one of {list(coord.SPACINGS)}, '
                      f'got {proposal.spacing!r}.')
  proposal_fields = [make_field(proposal.field, proposal[proposal.field]) for _ in proposal.num_proposal_samples]
  return ProposalNeRF(field=make_field(), proposal_fields=proposal_fields,
                      num_proposal_samples=tuple(proposal.num_proposal_samples),
                      num_samples=proposal.num_nerf_samples, spacing=proposal.spacing,
                      spacing_pivot=proposal.spacing_pivot,
                      gradient_scaling_distance=proposal.gradient_scaling_distance,
                      opaque_background=proposal.opaque_background,
                      anneal_slope=proposal.anneal_slope, resample_padding=proposal.resample_padding,
                      single_jitter=proposal.single_jitter, scene_box=scene_box)


# config.model.name -> (model_config, make_field, scene_box) -> renderer, where make_field(kind=None,
# overrides=None) builds a field of config.model.field (or `kind`) from its config group, updated by
# `overrides`.
RENDERERS = {'nerf': _nerf, 'mipnerf': _mipnerf, 'proposal': _proposal, 'occupancy_grid': _occupancy_grid}

# The keys of config.model that choose the renderer and its fields and that concern the model as a whole.
config_groups.register('model', owner=__name__, settings=dict(
    name=Setting('nerf', "The renderer: 'nerf' (coarse-to-fine point samples), 'mipnerf' (coarse-to-fine "
                 "frustums, one shared field), 'proposal' (mip-NeRF 360's proposal sampling) or 'occupancy_grid' "
                 "(instant-ngp's marching).", values.one_of(RENDERERS)),
    field=Setting('mlp', "The kind of its fields (FIELDS): 'mlp' (NeRF's MLPField, config.model.mlp) or "
                  "'hash_grid' (instant-ngp's HashGridField, config.model.hash_grid).", values.one_of(FIELDS)),
    dtype=Setting('float32', "Compute dtype: 'float32', or 'bfloat16' or 'float16' (GPUs without bfloat16 "
                  'tensor cores; with optim.loss_scale) for mixed precision; parameters, optimizer state and '
                  'loss stay float32.', values.one_of(DTYPES)),
    remat=Setting(False, "Gradient checkpointing of the MLP fields' trunks (nn.remat): the backward pass "
                  'recomputes their activations, for less memory and a second forward pass; the parameters are '
                  'the same.', values.BOOL),
))


def make_model(model_config, scene_box: Sequence[float] = ()) -> nn.Module:
  """Builds the renderer that `model_config` (config.model) describes, for a scene inside `scene_box`
  ((x_min, y_min, z_min, x_max, y_max, z_max); empty for unbounded sampling between near and far).

  config.model.name picks the renderer in RENDERERS: 'nerf' (coarse-to-fine, `NeRF`), 'mipnerf'
  (`MipNeRF`, settings in config.model.mipnerf), 'proposal' (mip-NeRF 360's proposal sampling,
  `ProposalNeRF`, settings in config.model.proposal) or 'occupancy_grid' (instant-ngp's marching,
  `OccupancyGridNeRF`, settings in config.model.occupancy_grid); config.model.field picks its field in
  FIELDS, with its settings in config.model.<field>, and the activations and warp in config.model.
  """
  if model_config.name not in RENDERERS:
    raise ConfigError(f'config.model.name: unknown model {model_config.name!r}; expected one of '
                      f'{sorted(RENDERERS)}.')
  if model_config.dtype not in DTYPES:
    raise ConfigError(f'config.model.dtype must be one of {sorted(DTYPES)}, got {model_config.dtype!r}.')
  if model_config.field not in FIELDS:
    raise ConfigError(f'config.model.field must be one of {sorted(FIELDS)}, got {model_config.field!r}.')
  if model_config.warp not in WARPS:
    raise ConfigError(f'config.model.warp must be one of {list(WARPS)}, got {model_config.warp!r}.')
  density_activation(model_config.density_activation)
  scene_box = tuple(float(v) for v in scene_box) or None
  if scene_box is not None and len(scene_box) != 6:
    raise ConfigError(f'config.scene_box must hold 6 numbers (min x, y, z, then max x, y, z), got {scene_box}.')
  shared = dict(dtype=DTYPES[model_config.dtype], density_activation=model_config.density_activation,
                density_bias=model_config.density_bias,
                density_noise_std=model_config.density_noise_std, rgb_padding=model_config.rgb_padding,
                warp=model_config.warp, contract_radius=model_config.contract_radius,
                normals=model_config.normals, normals_step=model_config.normals_step,
                tone_mapping=model_config.tone_mapping, remat=model_config.remat,
                encoding_annealing=tuple(model_config.encoding_annealing))
  if model_config.appearance not in APPEARANCES:
    raise ConfigError(f'config.model.appearance must be one of {sorted(APPEARANCES)}, '
                      f'got {model_config.appearance!r}.')
  appearance = APPEARANCES[model_config.appearance]
  if (model_config.predicted_normals and appearance is not None
      and 'predicted_normals' in appearance(**model_config[model_config.appearance]).provides()):
    raise ConfigError(f"config.model.predicted_normals=True: the appearance config.model.appearance="
                      f"{model_config.appearance!r} predicts its own normals; set predicted_normals=False.")

  built = []  # The classes of the fields built.

  def make_field(kind=None, overrides=None):
    kind = kind or model_config.field
    field_class = FIELDS[kind]
    if field_class.COVERS_BOX and scene_box is None and model_config.warp != 'contract':
      raise ConfigError(f'config.model.field={kind} needs config.scene_box (the grid covers that box) or '
                        "config.model.warp='contract' (the grid covers the contracted space).")
    kwargs = dict(model_config[kind], **shared, **(overrides or {}))
    if field_class.COVERS_BOX and scene_box is not None:
      kwargs['scene_box'] = scene_box
    if appearance is not None:  # Each field its own (density-only proposal fields never call it).
      kwargs['appearance'] = appearance(dtype=shared['dtype'], **model_config[model_config.appearance])
    if model_config.predicted_normals:
      kwargs['predicted_normals'] = PredictedNormals(dtype=shared['dtype'])
    # (Density-only fields never call their colour network, so theirs make no parameters.)
    kwargs['conditioning'] = conditioning.build_modules(model_config, shared['dtype'])
    built.append(field_class)
    return field_class(**kwargs)

  model = RENDERERS[model_config.name](model_config, make_field, scene_box)
  if model_config.remat and not any(field_class.REMATS for field_class in built):
    raise ConfigError('config.model.remat=True recomputes the trunk activations of MLP fields in the backward '
                      f'pass; this model has none (config.model.field={model_config.field!r}, whose small '
                      'networks keep little): set remat=False.')
  return model


def model_provides(model, model_config=None) -> FrozenSet[str]:
  """What the ray history of `model` holds for loss terms (losses.NEEDS): its renderer's PROVIDES and what
  its fields declare (FieldBase.provides: 'normals' where they give density normals, 'predicted_normals'
  where they or their appearance predict normals). (`model_config` is not needed: the components say.)"""
  del model_config
  provided = set(type(model).PROVIDES)
  for names in type(model).LEVEL_FIELDS.values():
    for name in names:
      for field in _as_list(getattr(model, name, None)):
        provided |= field.provides() if hasattr(field, 'provides') else set()
  return frozenset(provided)


def _as_list(fields) -> list:
  if fields is None:
    return []
  return list(fields) if isinstance(fields, (list, tuple)) else [fields]


def with_training_split(config, train_split):
  """A copy of `config` with the values its conditioning components take from the training split (the
  number of training images, ...): what a run saves and renders with. `config` itself is unchanged."""
  completed = config.copy_and_resolve_references()
  for group, split_values in conditioning.training_split_values(config.model, train_split).items():
    completed.model[group].update(split_values)
  return completed
