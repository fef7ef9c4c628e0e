"""The embedded default scene: a small procedural still life, ray traced here, in the Blender layout.

A new user's first `python train.py` trains on this scene, so it needs no download: `ensure_scene` renders
it once into a cache directory (a few seconds on a laptop CPU) and the Blender reader loads it like any
NeRF-synthetic scene. It is small enough for a small NeRF to learn in minutes on a CPU at 64-100 px, yet it
exercises what a NeRF has to get right:

- a tilted beach ball with six coloured wedges (smooth texture on a curved surface);
- a box turned about the vertical, each face its own colour (flat faces, sharp edges);
- an upright ring (torus) with soft bands;
- a thin pole (radius 0.035) topped by a small ball (thin structure, easy to blur away);
- a glossy red ball with a Blinn-Phong highlight (view-dependent colour);
- a pedestal disc under them all, catching hard shadows from a fixed key light;
- a white (transparent) background, like the Blender scenes.

Everything lies in about [-1.15, 1.15] x [-1.15, 1.15] x [-0.5, 0.75] (Blender-like scale, z up). Cameras sit
on the upper hemisphere at radius 4 (`ProceduralSceneSpec.camera_radius`) looking at the origin, so the
usual Blender bounds near=2 and far=6 apply.

A second layout, 'unbounded' (`ProceduralSceneSpec.layout`), is mip-NeRF 360's kind of capture: the same
still life on a checkered ground 25 units across, under an unlit sky dome of radius 30 with hills along its
horizon, seen by cameras standing low around the objects (elevation 2-15 degrees), so that every pixel shows
content, from 2 to 30 units away (bounds near=0.5, far=40).

The training photos may also disagree in exposure and white balance, as a real capture's do, for measuring
per-image appearance codes (NeRF-W): each training view's colour is multiplied by its own exposure gain
(`ProceduralSceneSpec.train_gain_range`, drawn log-uniformly) times per-channel white-balance factors
(`train_white_balance`), and clipped to [0, 1] as a camera saturates; alpha, depth and normals are
unchanged. The draws are seeded by the spec's seed and recorded, the truth, in each training frame of
transforms_train.json ("exposure_gain", "white_balance": [r, g, b]). The val and test views stay clean, so
they measure the scene itself. By default nothing drifts and the frames hold no such keys.

Conventions:
- Rays come from `jaxnerf.ops.camera` (OpenGL camera, pixel centres at +0.5; directions have unit length along
  the viewing axis, so the ray parameter t is depth). Arrays of rays are flattened: origins and directions
  [N, 3], ray parameters [N].
- The objects are analytic primitives, traced by `raytracing.py` (intersections, textures, shading).
- Images are RGBA with straight (not premultiplied) colour: colour is the average over the covered
  supersamples of a pixel and alpha is the covered fraction, as in Blender's PNGs.
- Depth maps hold the t of the first hit of the ray through each pixel centre, inf where nothing is hit.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import tempfile
from typing import NamedTuple

import numpy as np
from PIL import Image

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf import console
from jaxnerf.datasets import raytracing as rt
from jaxnerf.datasets.procedural_layouts import LAYOUTS
from jaxnerf.datasets.procedural_layouts import layout_of
from jaxnerf.errors import ConfigError
from jaxnerf.ops import camera
from jaxnerf import values
from jaxnerf import workdirs

# Bump when the scene's content or rendering changes, so that cached scenes are regenerated.
SCENE_VERSION = 2  # 2: region maps beside the depth and normal maps.
SPLITS = ('train', 'val', 'test')


def _is_gain_range(value) -> bool:
  return (isinstance(value, (tuple, list)) and len(value) == 2 and all(values.is_number(v) and v > 0 for v in value)
          and value[0] <= value[1])


# (test, what is expected) of the keys that make the training photos drift. They are the rules of those keys
# of config.procedural too (registered below), so that train.py refuses a bad value with the other keys; the
# spec refuses them before writing.
DRIFT_RULES = {
    'train_gain_range': (_is_gain_range, 'two finite numbers > 0, (min, max) with min <= max'),
    'train_white_balance': (lambda v: values.is_number(v) and 0 <= v < 1, 'a finite number in [0, 1)'),
}


@dataclasses.dataclass(frozen=True)
class ProceduralSceneSpec:
  """What to render: image size, number of views per split, camera orbit, random seed, and how the training
  photos drift in exposure and white balance (see the module docstring).

  Raises:
    ConfigError: train_gain_range or train_white_balance cannot work (DRIFT_RULES).
  """

  resolution: int = 80  # width = height, in pixels.
  num_train: int = 100
  num_val: int = 20
  num_test: int = 20
  camera_radius: float = 4.0
  camera_angle_x: float = 0.6911  # horizontal field of view in radians, as the Blender scenes.
  supersampling: int = 3  # samples per pixel along each axis (3 -> 3 x 3 per pixel).
  seed: int = 0
  layout: str = 'still_life'  # 'still_life' (bounded, white background), 'unbounded' or 'glossy' (LAYOUTS).
  # Training views only: (min, max) exposure gain, drawn log-uniformly per view; (1, 1) for none.
  train_gain_range: tuple = (1.0, 1.0)
  train_white_balance: float = 0.0  # Training views only: R, G, B factors uniform in [1 - w, 1 + w] per view.

  def __post_init__(self):
    for name, (test, expected) in DRIFT_RULES.items():
      value = getattr(self, name)
      if not test(value):
        raise ConfigError(f'config.procedural.{name}={value!r}: expected {expected}.')
    # As floats in a tuple, so that (1, 2) and [1.0, 2.0] (a config read back from JSON) name one scene.
    object.__setattr__(self, 'train_gain_range', tuple(float(v) for v in self.train_gain_range))
    object.__setattr__(self, 'train_white_balance', float(self.train_white_balance))

  @property
  def drifts(self) -> bool:
    """Whether the training photos differ in exposure or white balance."""
    return any(getattr(self, name) != value for name, value in NO_DRIFT.items())


# The drift keys' defaults: a spec with these renders the clean scene.
NO_DRIFT = {field.name: field.default for field in dataclasses.fields(ProceduralSceneSpec) if field.name in DRIFT_RULES}


# config.procedural: the ProceduralSceneSpec of the scene that dataset='procedural' generates and reads.
config_groups.register('procedural', owner=__name__, settings=dict(
    resolution=Setting(80, 'Width = height of the rendered images, in pixels.',
                       (lambda v: values.is_positive_int(v) and v >= 8, 'an integer >= 8 (pixels)')),
    num_train=Setting(100, 'Views rendered for the train split.', values.POSITIVE_INT),
    num_val=Setting(20, 'Views rendered for the val split.', values.NON_NEGATIVE_INT),
    num_test=Setting(20, 'Views rendered for the test split.', values.NON_NEGATIVE_INT),
    camera_radius=Setting(4.0, 'Distance of the cameras from the origin they look at, in world units.',
                          values.POSITIVE),
    camera_angle_x=Setting(0.6911, "Horizontal field of view in radians (the Blender scenes').",
                           (lambda v: values.is_number(v) and 0 < v < math.pi, 'an angle in (0, pi) radians')),
    supersampling=Setting(3, 'Ray-traced samples per pixel along each axis (3: 3 x 3 per pixel), averaged.',
                          values.POSITIVE_INT),
    seed=Setting(0, "Seeds the scene's random camera poses and the training photos' drift."),
    layout=Setting('still_life', "The embedded scene (LAYOUTS): 'still_life' (bounded, white background), "
                   "'unbounded' (mip-NeRF 360's kind) or 'glossy' (Ref-NeRF's kind).", values.one_of(LAYOUTS)),
    train_gain_range=Setting((1.0, 1.0), "(min, max) of each training view's exposure gain, drawn log-uniformly; "
                             '(1, 1): none. Val and test views stay clean.', DRIFT_RULES['train_gain_range']),
    train_white_balance=Setting(0.0, "w: each training view's R, G, B are multiplied by factors uniform in "
                                '[1 - w, 1 + w]; 0: none. Val and test views stay clean.',
                                DRIFT_RULES['train_white_balance']),
), small=dict(resolution=24, num_train=12, num_val=2, num_test=2, supersampling=2))


# ---------------------------------------------------------------------------------------------------------
# Images.


def focal_length(spec: ProceduralSceneSpec) -> float:
  """Focal length in pixels from the horizontal field of view."""
  return 0.5 * spec.resolution / np.tan(0.5 * spec.camera_angle_x)


def supersample_rays(spec: ProceduralSceneSpec, camtoworld) -> camera.Rays:
  """Rays through a regular s x s grid inside each pixel, each field [H, W, s * s, C]."""
  s, size = spec.supersampling, spec.resolution
  pix_x, pix_y = camera.pixel_grid(size, size)
  offsets = (np.arange(s) + 0.5) / s - 0.5  # Sub-pixel offsets from the pixel centre.
  offset_x, offset_y = (o.reshape(-1) for o in np.meshgrid(offsets, offsets, indexing='xy'))
  layout = layout_of(spec)
  return camera.pixels_to_rays(pix_x[..., None] + offset_x, pix_y[..., None] + offset_y, camtoworld,
                               camera.Intrinsics.pinhole(focal_length(spec), size, size), layout.near, layout.far)


def average_supersamples(colours, covered) -> np.ndarray:
  """Straight-alpha RGBA [H, W, 4] from supersample colours [H, W, S, 3] and coverage [H, W, S]."""
  alpha = covered.mean(axis=-1)
  colour_sum = np.sum(colours * covered[..., None], axis=-2)
  colour = colour_sum / np.maximum(covered.sum(axis=-1), 1.0)[..., None]
  return np.concatenate([colour, alpha[..., None]], axis=-1)


class View(NamedTuple):
  """One rendered view and what it shows at each pixel centre."""

  rgba: np.ndarray  # [H, W, 4] float32: colour averaged over the covered supersamples, alpha the covered fraction.
  depth: np.ndarray  # [H, W] float32 t of the first hit of the ray through the pixel centre, inf for background.
  normals: np.ndarray  # [H, W, 3] float32 unit world normal of the surface at that hit, 0 for background.
  regions: np.ndarray  # [H, W] uint8 index into metrics.REGIONS of that surface's material.


def render_view(spec: ProceduralSceneSpec, camtoworld) -> View:
  """One view: RGBA (straight, not premultiplied alpha), depth, normals and material regions (View).

  Args:
    spec: the scene spec (resolution, field of view, supersampling).
    camtoworld: [3, 4] or [4, 4] camera-to-world matrix.
  """
  size, layout = spec.resolution, layout_of(spec)
  rays = supersample_rays(spec, camtoworld)
  origins = rays.origins.reshape(-1, 3).astype(np.float64)
  directions = rays.directions.reshape(-1, 3).astype(np.float64)
  colours, t = rt.trace_colours(layout.objects, origins, directions, layout.environment)
  samples = spec.supersampling**2
  rgba = average_supersamples(colours.reshape(size, size, samples, 3),
                              np.isfinite(t).reshape(size, size, samples).astype(np.float64))

  centre_rays = camera.image_rays(camtoworld, size, size, focal_length(spec), layout.near, layout.far)
  hit = rt.nearest_hit(layout.objects, centre_rays.origins.reshape(-1, 3).astype(np.float64),
                       centre_rays.directions.reshape(-1, 3).astype(np.float64))
  return View(rgba.astype(np.float32), hit.t.reshape(size, size).astype(np.float32),
              hit.normal.reshape(size, size, 3).astype(np.float32),
              rt.hit_regions(layout.objects, hit).reshape(size, size))


# ---------------------------------------------------------------------------------------------------------
# Cameras and files.


def sample_poses(spec: ProceduralSceneSpec, split: str) -> np.ndarray:
  """[N, 3, 4] cameras on the upper hemisphere looking at the origin, random per (seed, split).

  Azimuth is uniform in [0, 360) degrees; elevation covers the layout's range uniformly by area.
  """
  num = {'train': spec.num_train, 'val': spec.num_val, 'test': spec.num_test}[split]
  rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
  azimuths = rng.uniform(0.0, 360.0, num)
  low, high = np.sin(np.deg2rad(layout_of(spec).elevation_range_deg))
  elevations = np.rad2deg(np.arcsin(rng.uniform(low, high, num)))
  return np.stack([camera.spherical_pose(a, e, spec.camera_radius) for a, e in zip(azimuths, elevations)])


# The training photos' drift draws from its own stream, beside the splits' poses: poses stay as they were.
DRIFT_STREAM = 1


def photo_drift(spec: ProceduralSceneSpec) -> tuple:
  """Exposure gains [num_train] and white-balance factors [num_train, 3] of the training views, random per
  seed (1 and 1 when the spec does not drift). Each gain and each factor has its own uniform draw, so that
  the gains do not change with train_white_balance nor the factors with train_gain_range."""
  rng = np.random.default_rng([spec.seed, SPLITS.index('train'), DRIFT_STREAM])
  uniforms = rng.uniform(size=(spec.num_train, 4))
  low, high = np.log(spec.train_gain_range)
  gains = np.exp(low + (high - low) * uniforms[:, 0])
  white_balance = 1.0 + spec.train_white_balance * (2.0 * uniforms[:, 1:] - 1.0)
  return gains, white_balance


def _drifted(rgba, gain: float, white_balance) -> np.ndarray:
  """RGBA float32 with the straight colour scaled by gain x white balance and clipped to [0, 1] (a camera
  saturates), alpha as it was."""
  colour = np.clip(rgba[..., :3] * (gain * np.asarray(white_balance)), 0.0, 1.0)
  return np.concatenate([colour, rgba[..., 3:]], axis=-1).astype(np.float32)


def write_split(directory: pathlib.Path, spec: ProceduralSceneSpec, split: str) -> None:
  """Renders one split: `{split}/r_{i}.png`, `{split}/r_{i}_depth.npy`, `{split}/r_{i}_normals.npy`,
  `{split}/r_{i}_regions.npy` and `transforms_{split}.json`; training views drift in exposure and white
  balance as the spec says, each
  frame recording its gain and factors."""
  (directory / split).mkdir(parents=True, exist_ok=True)
  poses = sample_poses(spec, split)
  # Only a drifting spec's training views are touched, so that a clean scene stays byte for byte as it was.
  gains, white_balances = photo_drift(spec) if split == 'train' and spec.drifts else (None, None)
  # numpy releases the GIL inside its array loops, so a few threads render views in parallel.
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
  try:
    views = console.progress(pool.map(lambda camtoworld: render_view(spec, camtoworld), poses),
                               f'ray tracing the {split} views of the demo scene', total=len(poses),
                               unit='view')
    frames = []
    for index, (camtoworld, view) in enumerate(zip(poses, views)):
      truth = {}  # What the photo's drift was, for measuring what appearance codes learn.
      if gains is not None:
        view = view._replace(rgba=_drifted(view.rgba, gains[index], white_balances[index]))
        truth = {'exposure_gain': float(gains[index]), 'white_balance': white_balances[index].tolist()}
      frames.append({**_write_frame(directory, split, index, camtoworld, view), **truth})
  finally:
    pool.shutdown(cancel_futures=True)  # On an interrupt, do not render the remaining views first.
  with open(directory / f'transforms_{split}.json', 'w') as f:
    json.dump({'camera_angle_x': spec.camera_angle_x, 'frames': frames}, f, indent=2)


def _write_frame(directory: pathlib.Path, split: str, index: int, camtoworld, view: View) -> dict:
  """Saves one view's PNG, depth, normal and region maps; returns its frame entry for
  transforms_{split}.json."""
  name = f'r_{index}'
  pixels = np.round(np.clip(view.rgba, 0.0, 1.0) * 255.0).astype(np.uint8)
  Image.fromarray(pixels).save(directory / split / f'{name}.png')
  np.save(directory / split / f'{name}_depth.npy', view.depth)
  np.save(directory / split / f'{name}_normals.npy', view.normals)
  np.save(directory / split / f'{name}_regions.npy', view.regions)
  matrix = np.concatenate([camtoworld, [[0.0, 0.0, 0.0, 1.0]]], axis=0)
  return {'file_path': f'./{split}/{name}', 'transform_matrix': matrix.tolist()}


def write_scene(directory, spec: ProceduralSceneSpec) -> None:
  """Writes the scene in the Blender layout into `directory` (created if needed).

  Files: transforms_{train,val,test}.json with 'camera_angle_x' and 'frames' (each {'file_path':
  './train/r_0', 'transform_matrix': 4x4 list}), RGBA PNGs train/r_0.png, ..., float32 depth maps
  train/r_0_depth.npy, ... ([H, W], inf for background), normal maps train/r_0_normals.npy ([H, W, 3]) and
  region maps train/r_0_regions.npy ([H, W] uint8 indices into metrics.REGIONS: the material's kind).
  """
  directory = pathlib.Path(directory)
  for split in SPLITS:
    write_split(directory, spec, split)


def scene_name(spec: ProceduralSceneSpec) -> str:
  """Directory name of a spec's scene: changes with the spec and with SCENE_VERSION."""
  fields = dataclasses.asdict(spec)
  for name, value in NO_DRIFT.items():  # Clean scenes keep the names they had before the drift existed.
    if fields[name] == value:
      del fields[name]
  key = json.dumps({'version': SCENE_VERSION, **fields}, sort_keys=True)
  return f'procedural_{spec.resolution}px_{hashlib.sha256(key.encode()).hexdigest()[:10]}'


def ensure_scene(cache_dir, spec: ProceduralSceneSpec = ProceduralSceneSpec()) -> pathlib.Path:
  """Returns the scene directory `cache_dir/<scene_name(spec)>`, generating it first if missing.

  Generation writes to a temporary sibling directory and renames it into place at the end, so an
  interrupted generation never leaves a half-written scene (a leftover temporary directory is harmless).
  """
  cache_dir = pathlib.Path(cache_dir)
  target = cache_dir / scene_name(spec)
  if target.is_dir():
    return target
  workdirs.check_writable(cache_dir, 'the scene cache ($JAXNERF_CACHE, or config.data_dir)')
  cache_dir.mkdir(parents=True, exist_ok=True)
  partial = pathlib.Path(tempfile.mkdtemp(prefix=f'.{target.name}.partial-', dir=cache_dir))
  partial.chmod(0o755)  # mkdtemp makes it private; the scene is ordinary data.
  try:
    write_scene(partial, spec)
    os.rename(partial, target)
  except OSError:
    if not target.is_dir():  # Not a concurrent generation that finished first: a real failure.
      raise
  finally:
    if partial.exists():
      shutil.rmtree(partial, ignore_errors=True)
  return target
