"""Tests of the procedural default scene: geometry, depth, alpha, view dependence, the files on disk and the
training photos' drift in exposure and white balance."""

import dataclasses
import json
import re

import numpy as np
import pytest
from PIL import Image

from jaxnerf import datasets
from jaxnerf.datasets import blender
from jaxnerf.datasets import procedural
from jaxnerf.datasets import procedural_layouts
from jaxnerf.datasets import raytracing as rt
from jaxnerf.errors import ConfigError
from jaxnerf.errors import DatasetError
from jaxnerf import metrics
from jaxnerf.ops import camera
from jaxnerf.training import default_config

TINY = procedural.ProceduralSceneSpec(resolution=24, num_train=3, num_val=2, num_test=2, supersampling=2)
VIEW = camera.spherical_pose(35.0, 40.0, 4.0)


# Depth and alpha of rendered views, checked against a brute-force march written independently.


def _surface_residuals(points):
  """[N, num_objects] implicit functions of every object (0 on its surface, negative inside)."""
  residuals = []
  for obj in procedural_layouts.DEFAULT_OBJECTS:
    p = obj.to_local(points)
    shape = obj.shape
    if isinstance(shape, rt.Sphere):
      residuals.append(np.linalg.norm(p, axis=-1) - shape.radius)
    elif isinstance(shape, rt.Box):
      residuals.append(np.max(np.abs(p) - np.asarray(shape.half_extents), axis=-1))
    elif isinstance(shape, rt.Cylinder):
      residuals.append(np.maximum(np.hypot(p[:, 0], p[:, 1]) - shape.radius,
                                  np.abs(p[:, 2]) - shape.half_height))
    elif isinstance(shape, rt.Torus):
      tube = np.hypot(np.hypot(p[:, 0], p[:, 1]) - shape.major_radius, p[:, 2])
      residuals.append(tube - shape.minor_radius)
    else:
      raise AssertionError(f'untested shape {shape}')
  return np.stack(residuals, axis=-1)


def _first_inside_t(origins, directions, step):
  """t of the first point inside any object when marching in steps of `step` from near to far."""
  ts = np.arange(procedural_layouts.NEAR, procedural_layouts.FAR, step)
  first = np.full(len(origins), np.inf)
  for i, (origin, direction) in enumerate(zip(origins, directions)):
    points = origin + ts[:, None] * direction
    inside = np.flatnonzero(np.min(_surface_residuals(points), axis=-1) <= 0.0)
    if inside.size:
      first[i] = ts[inside[0]]
  return first


@pytest.fixture(scope='module')
def tiny_view():
  rgba, depth, _, _ = procedural.render_view(TINY, VIEW)
  rays = camera.image_rays(VIEW, TINY.resolution, TINY.resolution, procedural.focal_length(TINY),
                           procedural_layouts.NEAR, procedural_layouts.FAR)
  return rgba, depth, rays


def test_render_view_shapes(tiny_view):
  rgba, depth, _ = tiny_view
  assert rgba.shape == (24, 24, 4) and rgba.dtype == np.float32
  assert depth.shape == (24, 24) and depth.dtype == np.float32
  assert 0.0 <= rgba.min() and rgba.max() <= 1.0
  hits = np.isfinite(depth)
  assert 0.1 < hits.mean() < 0.9, 'the view should show both objects and background'
  assert np.all((depth[hits] > procedural_layouts.NEAR) & (depth[hits] < procedural_layouts.FAR))
  assert np.all(np.isinf(depth[~hits]) & (depth[~hits] > 0))


def test_depth_points_lie_on_a_surface(tiny_view):
  _, depth, rays = tiny_view
  hits = np.isfinite(depth)
  points = rays.origins[hits] + depth[hits][:, None].astype(np.float64) * rays.directions[hits]
  distance_to_nearest_surface = np.min(np.abs(_surface_residuals(points)), axis=-1)
  assert np.max(distance_to_nearest_surface) < 1e-4


def test_depth_is_the_first_hit(tiny_view):
  _, depth, rays = tiny_view
  step = 2e-3
  brute = _first_inside_t(rays.origins.reshape(-1, 3).astype(np.float64),
                          rays.directions.reshape(-1, 3).astype(np.float64), step).reshape(depth.shape)
  both = np.isfinite(brute) & np.isfinite(depth)
  # The march can only differ on silhouettes grazed more thinly than its step.
  assert np.mean(np.isfinite(brute) != np.isfinite(depth)) <= 0.01
  np.testing.assert_array_less(np.abs(brute[both] - depth[both]), step + 1e-5)


def test_alpha_is_coverage(tiny_view):
  rgba, depth, _ = tiny_view
  hits = np.pad(np.isfinite(depth), 1, constant_values=False)
  neighbourhood = np.stack([hits[1 + dy:1 + dy + 24, 1 + dx:1 + dx + 24]
                            for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
  interior, background = neighbourhood.all(axis=0), ~neighbourhood.any(axis=0)
  assert interior.sum() > 20 and background.sum() > 20
  np.testing.assert_array_equal(rgba[..., 3][interior], 1.0)
  np.testing.assert_array_equal(rgba[..., 3][background], 0.0)
  edges = ~interior & ~background
  assert np.any((rgba[..., 3][edges] > 0.0) & (rgba[..., 3][edges] < 1.0)), 'edges should be antialiased'


# View dependence.


def _colours_of_point_from(point, azimuths_deg, elevation_deg=70.0):
  """Traces rays from two directions at one world point; returns colours and the hit objects' names."""
  az, el = np.deg2rad(azimuths_deg), np.deg2rad(elevation_deg)
  towards_camera = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az),
                             np.full_like(az, np.sin(el))], axis=-1)
  origins = point + 3.0 * towards_camera
  colours, t = rt.trace_colours(procedural_layouts.DEFAULT_OBJECTS, origins, -towards_camera)
  np.testing.assert_allclose(t, 3.0, atol=1e-9)
  return colours


def _top_of(name):
  obj = next(o for o in procedural_layouts.DEFAULT_OBJECTS if o.name == name)
  return np.asarray(obj.centre) + [0.0, 0.0, obj.shape.radius]


def test_glossy_ball_colour_depends_on_view_and_matte_does_not():
  key_azimuth = np.rad2deg(np.arctan2(rt.LIGHTING.key_direction[1],
                                      rt.LIGHTING.key_direction[0]))
  azimuths = np.array([key_azimuth + 180.0, key_azimuth])  # Seeing the highlight, then not.
  glossy = _colours_of_point_from(_top_of('glossy_ball'), azimuths)
  assert np.max(np.abs(glossy[0] - glossy[1])) > 0.1
  matte = _colours_of_point_from(_top_of('beach_ball'), azimuths)
  np.testing.assert_allclose(matte[0], matte[1], atol=1e-6)


# Cameras and files.


def test_sample_poses_on_upper_hemisphere():
  for split in procedural.SPLITS:
    poses = procedural.sample_poses(TINY, split)
    centres = poses[:, :, 3]
    np.testing.assert_allclose(np.linalg.norm(centres, axis=-1), TINY.camera_radius, rtol=1e-5)
    elevation = np.rad2deg(np.arcsin(centres[:, 2] / TINY.camera_radius))
    assert np.all((elevation >= 15.0 - 1e-3) & (elevation <= 65.0 + 1e-3))
    # Looking at the origin: the camera's -z axis points from the centre towards it.
    np.testing.assert_allclose(-poses[:, :, 2], -centres / TINY.camera_radius, atol=1e-5)
  train, val = procedural.sample_poses(TINY, 'train'), procedural.sample_poses(TINY, 'val')
  assert not np.allclose(train[:2], val[:2])
  np.testing.assert_array_equal(train, procedural.sample_poses(TINY, 'train'))


def test_ensure_scene_writes_blender_layout_once(tmp_path):
  scene = procedural.ensure_scene(tmp_path, TINY)
  assert scene.parent == tmp_path and scene.is_dir()
  assert [p.name for p in tmp_path.iterdir()] == [scene.name], 'no temporary directory is left behind'
  for split, count in [('train', 3), ('val', 2), ('test', 2)]:
    meta = json.loads((scene / f'transforms_{split}.json').read_text())
    assert meta['camera_angle_x'] == pytest.approx(TINY.camera_angle_x)
    assert len(meta['frames']) == count
    for i, frame in enumerate(meta['frames']):
      assert frame['file_path'] == f'./{split}/r_{i}'
      matrix = np.array(frame['transform_matrix'])
      assert matrix.shape == (4, 4)
      np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])
      with Image.open(scene / split / f'r_{i}.png') as image:
        assert image.size == (24, 24) and image.mode == 'RGBA'
      depth = np.load(scene / split / f'r_{i}_depth.npy')
      assert depth.shape == (24, 24) and depth.dtype == np.float32
  # The saved image matches a fresh render of the saved pose.
  meta = json.loads((scene / 'transforms_val.json').read_text())
  pose = np.array(meta['frames'][1]['transform_matrix'])[:3]
  rgba, depth, _, _ = procedural.render_view(TINY, pose)
  with Image.open(scene / 'val' / 'r_1.png') as image:
    np.testing.assert_allclose(np.asarray(image) / 255.0, rgba, atol=0.5 / 255 + 1e-6)
  np.testing.assert_array_equal(np.load(scene / 'val' / 'r_1_depth.npy'), depth)

  mtime = (scene / 'transforms_train.json').stat().st_mtime_ns
  assert procedural.ensure_scene(tmp_path, TINY) == scene
  assert (scene / 'transforms_train.json').stat().st_mtime_ns == mtime
  other = procedural.ensure_scene(tmp_path, procedural.ProceduralSceneSpec(
      resolution=24, num_train=3, num_val=2, num_test=2, supersampling=2, seed=1))
  assert other != scene and other.is_dir()


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
  def fail_on_val(directory, spec, split):
    if split == 'val':
      raise KeyboardInterrupt
    write_split(directory, spec, split)

  write_split = procedural.write_split
  monkeypatch.setattr(procedural, 'write_split', fail_on_val)
  with pytest.raises(KeyboardInterrupt):
    procedural.ensure_scene(tmp_path, TINY)
  assert list(tmp_path.iterdir()) == []


def test_blender_reader_loads_the_scene(tmp_path):
  from jaxnerf.datasets import blender
  scene = procedural.ensure_scene(tmp_path, TINY)
  split = blender.load_blender_split(scene, 'train')
  assert split.images.shape == (3, 24, 24, 3)
  assert split.depths is not None and split.depths.shape == (3, 24, 24)
  np.testing.assert_allclose(split.intrinsics.focal_x, procedural.focal_length(TINY), rtol=1e-6)
  with Image.open(scene / 'train' / 'r_0.png') as image:
    alpha = np.asarray(image)[..., 3]
  np.testing.assert_allclose(split.images[0][alpha == 0], 1.0)  # Background composites to white.


def test_unbounded_layout_has_content_at_every_distance_and_exact_depth():
  spec = procedural.ProceduralSceneSpec(resolution=24, supersampling=2, layout='unbounded')
  layout = procedural_layouts.LAYOUTS['unbounded']
  pose = procedural.sample_poses(spec, 'train')[0]
  rgba, depth, _, _ = procedural.render_view(spec, pose)
  # No background: every pixel is covered, every depth finite, from the objects out to the sky dome.
  assert np.all(rgba[..., 3] == 1.0) and np.all(np.isfinite(depth))
  assert depth.min() < 5.0 and depth.max() > 15.0 and depth.max() < layout.far
  rays = camera.image_rays(pose, 24, 24, procedural.focal_length(spec), layout.near, layout.far)
  points = rays.origins + depth[..., None].astype(np.float64) * rays.directions
  # Pixels beyond the objects land exactly on the ground's top or on the dome.
  ground_top = procedural_layouts.GROUND_Z - 0.1
  far = depth > 6.0
  on_ground = np.abs(points[..., 2] - ground_top) < 1e-4
  on_dome = np.abs(np.linalg.norm(points, axis=-1) - procedural_layouts.DOME_RADIUS) < 1e-3
  assert np.all((on_ground | on_dome)[far]) and on_ground[far].any() and on_dome.any()
  # The dome is unlit and casts no shadow: rays to it show its texture as it is, whatever the light.
  objects = layout.objects
  dome = objects[-1]
  directions = np.array([[0.0, 0.3, 1.0], [1.0, 0.0, 0.05], [-0.6, 0.8, 0.1]])
  origins = np.tile([[0.0, 0.0, 2.0]], (3, 1))
  colours, t = rt.trace_colours(objects, origins, directions)
  normals = (origins + t[:, None] * directions) / procedural_layouts.DOME_RADIUS
  np.testing.assert_allclose(colours, dome.material.texture(normals * procedural_layouts.DOME_RADIUS, normals),
                             atol=1e-12)
  assert len({tuple(c) for c in np.round(colours, 6)}) == 3  # Sky and two hill sectors, all differing.
  # Cameras stand low around the objects, above the ground, and see over its horizon.
  poses = procedural.sample_poses(spec, 'train')
  heights = poses[:, 2, 3]
  assert np.all(heights > ground_top) and np.all(heights < 4.0 * np.sin(np.deg2rad(15.0)) + 1e-6)


def test_layouts_name_their_scenes_apart_and_unknown_ones_are_refused():
  still = procedural.ProceduralSceneSpec(resolution=24)
  unbounded = procedural.ProceduralSceneSpec(resolution=24, layout='unbounded')
  assert procedural.scene_name(still) != procedural.scene_name(unbounded)
  with pytest.raises(ValueError,
                     match=r"config.procedural.layout must be one of \['glossy', 'mirror', 'still_life', 'unbounded'\]"):
    procedural.render_view(procedural.ProceduralSceneSpec(resolution=4, layout='dome'), VIEW)


def test_the_glossy_layout_writes_exact_normals_and_reflects_its_environment(tmp_path):
  spec = procedural.ProceduralSceneSpec(resolution=24, num_train=2, num_val=1, num_test=1, supersampling=1,
                                        layout='glossy')
  pose = procedural.sample_poses(spec, 'val')[0]
  rgba, depth, normals, regions = procedural.render_view(spec, pose)
  hits = np.isfinite(depth)
  assert 0.1 < hits.mean() < 0.9
  np.testing.assert_allclose(np.linalg.norm(normals[hits], axis=-1), 1.0, atol=1e-5)
  assert np.all(normals[~hits] == 0)
  # Each normal is the surface's at the hit: on the mirror ball, the direction from its centre to the hit.
  rays = camera.image_rays(pose, 24, 24, procedural.focal_length(spec), 2.0, 6.0)
  points = rays.origins + depth[..., None] * rays.directions
  ball = next(o for o in procedural_layouts.LAYOUTS['glossy'].objects if o.name == 'mirror_ball')
  offsets = points - np.asarray(ball.centre)
  on_ball = hits & (np.abs(np.linalg.norm(np.where(hits[..., None], offsets, 0.0), axis=-1) - 0.3) < 1e-4)
  assert on_ball.sum() > 3
  np.testing.assert_allclose(normals[on_ball], offsets[on_ball] / 0.3, atol=1e-4)
  # The mirror ball's colour is its environment's: it differs from its own grey albedo under any lighting.
  assert np.std(rgba[on_ball][:, :3], axis=0).max() > 0.05
  procedural.write_scene(tmp_path, spec)  # The Blender reader finds the normal maps beside the images.
  split = blender.load_blender_split(tmp_path, 'val')
  assert split.normals.shape == (1, 24, 24, 3) and split.depths.shape == (1, 24, 24)
  np.testing.assert_array_equal(split.normals[0], normals)


# Training photos that drift in exposure and white balance (for appearance codes); val and test stay clean.

CLEAN = procedural.ProceduralSceneSpec(resolution=16, num_train=3, num_val=1, num_test=1, supersampling=1)
DRIFTING = dataclasses.replace(CLEAN, train_gain_range=(0.5, 2.0), train_white_balance=0.2)


@pytest.fixture(scope='module')
def clean_and_drifting(tmp_path_factory):
  cache = tmp_path_factory.mktemp('drift')
  return procedural.ensure_scene(cache, CLEAN), procedural.ensure_scene(cache, DRIFTING)


def _pixels(path):
  with Image.open(path) as image:
    return np.asarray(image) / 255.0


def test_training_photos_are_the_clean_ones_times_their_recorded_drift(clean_and_drifting):
  clean, drifting = clean_and_drifting
  frames = json.loads((drifting / 'transforms_train.json').read_text())['frames']
  clean_frames = json.loads((clean / 'transforms_train.json').read_text())['frames']
  gains, white_balances = procedural.photo_drift(DRIFTING)
  assert [f['exposure_gain'] for f in frames] == gains.tolist()
  assert [f['white_balance'] for f in frames] == white_balances.tolist()
  assert np.all((gains >= 0.5) & (gains <= 2.0)) and np.ptp(gains) > 0.2
  assert np.all(np.abs(white_balances - 1.0) <= 0.2) and np.ptp(white_balances) > 0.05
  for frame, clean_frame in zip(frames, clean_frames):
    assert frame['transform_matrix'] == clean_frame['transform_matrix']  # The draws leave the poses alone.
    assert set(clean_frame) == {'file_path', 'transform_matrix'}  # A clean scene records no drift.
    factor = frame['exposure_gain'] * np.asarray(frame['white_balance'])
    name = frame['file_path'].removeprefix('./')
    before, after = _pixels(clean / f'{name}.png'), _pixels(drifting / f'{name}.png')
    np.testing.assert_array_equal(after[..., 3], before[..., 3])
    # Each PNG is within half a level of the rendered colour, which the factor scaled before rounding;
    # saturated channels clip at 1.
    atol = 0.5 * (1.0 + factor.max()) / 255.0 + 1e-9
    np.testing.assert_allclose(after[..., :3], np.clip(before[..., :3] * factor, 0.0, 1.0), atol=atol)
    assert np.abs(after[..., :3] - before[..., :3]).max() > 5 / 255
    for suffix in ('_depth.npy', '_normals.npy', '_regions.npy'):
      assert (drifting / f'{name}{suffix}').read_bytes() == (clean / f'{name}{suffix}').read_bytes()
  # The Blender reader passes over the recorded drift.
  assert blender.load_blender_split(drifting, 'train').images.shape == (3, 16, 16, 3)


def test_val_and_test_views_stay_clean(clean_and_drifting):
  clean, drifting = clean_and_drifting
  for split in ('val', 'test'):
    names = sorted(p.name for p in (clean / split).iterdir())
    # Image, depth, normals, regions.
    assert names == sorted(p.name for p in (drifting / split).iterdir()) and len(names) == 4
    for name in [f'{split}/{n}' for n in names] + [f'transforms_{split}.json']:
      assert (drifting / name).read_bytes() == (clean / name).read_bytes(), name


def test_the_drift_is_seeded_and_each_key_draws_apart():
  gains, white_balances = procedural.photo_drift(DRIFTING)
  again = procedural.photo_drift(dataclasses.replace(DRIFTING))
  np.testing.assert_array_equal(gains, again[0])
  np.testing.assert_array_equal(white_balances, again[1])
  other_gains, other_white_balances = procedural.photo_drift(dataclasses.replace(DRIFTING, seed=1))
  assert not np.allclose(gains, other_gains) and not np.allclose(white_balances, other_white_balances)
  # Turning one kind of drift off leaves the other's draws as they were.
  np.testing.assert_array_equal(procedural.photo_drift(dataclasses.replace(DRIFTING, train_white_balance=0.0))[0],
                                gains)
  np.testing.assert_array_equal(procedural.photo_drift(dataclasses.replace(DRIFTING, train_gain_range=(1, 1)))[1],
                                white_balances)
  clean_gains, clean_white_balances = procedural.photo_drift(CLEAN)
  assert np.all(clean_gains == 1.0) and np.all(clean_white_balances == 1.0)


def test_clean_scenes_keep_their_names():
  # The names since SCENE_VERSION 2 (region maps), which the drift keys leave alone: a changed name would render
  # every user's cached scene again.
  assert procedural.scene_name(procedural.ProceduralSceneSpec()) == 'procedural_80px_63c59ffbe5'
  assert procedural.scene_name(dataclasses.replace(CLEAN, num_val=2, num_test=2)) == 'procedural_16px_3ee2a784d5'
  from_config = procedural.ProceduralSceneSpec(**default_config.get_config().procedural)
  assert procedural.scene_name(from_config) == 'procedural_80px_63c59ffbe5'
  # A config read back from JSON holds lists, and integers name the same scene as floats.
  as_read = dataclasses.replace(CLEAN, train_gain_range=[1, 1], train_white_balance=0)
  assert procedural.scene_name(as_read) == procedural.scene_name(CLEAN) and not as_read.drifts
  drifting_names = {procedural.scene_name(dataclasses.replace(CLEAN, **change))
                    for change in ({'train_gain_range': (0.5, 2)}, {'train_gain_range': [0.5, 2.0]},
                                   {'train_white_balance': 0.2})}
  assert len(drifting_names) == 2 and procedural.scene_name(CLEAN) not in drifting_names


EXPECTED = {'train_gain_range': 'two finite numbers > 0, (min, max) with min <= max',
            'train_white_balance': 'a finite number in [0, 1)'}


@pytest.mark.parametrize('key, value', [
    ('train_gain_range', (0.0, 2.0)), ('train_gain_range', (2.0, 0.5)), ('train_gain_range', (1.0, float('inf'))),
    ('train_gain_range', (1.5,)),
    ('train_white_balance', 1.0), ('train_white_balance', -0.1), ('train_white_balance', float('nan')),
])
def test_drift_that_cannot_work_is_refused_before_anything_is_written(tmp_path, key, value):
  message = '^' + re.escape(f'config.procedural.{key}={value!r}: expected {EXPECTED[key]}.') + '$'
  with pytest.raises(ConfigError, match=message):
    procedural.ProceduralSceneSpec(**{key: value})
  config = default_config.get_config()
  config.data_dir = str(tmp_path / 'cache')
  config.procedural[key] = value
  with pytest.raises(ConfigError, match=message):
    datasets.scene_directory(config)
  assert not any(tmp_path.iterdir())


def test_region_maps_name_each_pixels_material_and_are_read_back_with_the_views(tmp_path):
  spec = procedural.ProceduralSceneSpec(resolution=32, num_train=1, num_val=2, num_test=1, supersampling=1,
                                        layout='mirror')
  objects = procedural_layouts.LAYOUTS['mirror'].objects
  assert [o.material.region for o in objects] == ['matte', 'mirror', 'mirror', 'glossy', 'glossy', 'matte']
  view = procedural.render_view(spec, procedural.sample_poses(spec, 'val')[0])
  rays = camera.image_rays(procedural.sample_poses(spec, 'val')[0], 32, 32, procedural.focal_length(spec), 2.0, 6.0)
  hit = rt.nearest_hit(objects, rays.origins.reshape(-1, 3).astype(np.float64),
                       rays.directions.reshape(-1, 3).astype(np.float64))
  # Pixel by pixel, the region is the material's of the object hit, background where nothing is.
  expected = [metrics.REGIONS.index(objects[k].material.region) if k >= 0 else 0 for k in hit.object_index]
  np.testing.assert_array_equal(view.regions.reshape(-1), expected)
  assert view.regions.dtype == np.uint8 and np.array_equal(view.regions == 0, ~np.isfinite(view.depth))
  shares = np.bincount(view.regions.reshape(-1), minlength=4) / view.regions.size
  assert shares[metrics.REGIONS.index('mirror')] > 0.1 and shares[metrics.REGIONS.index('glossy')] > 0.05
  # The unbounded layout's sky is its background; the still life's highlighted ball is glossy.
  assert {o.name: o.material.region for o in procedural_layouts.LAYOUTS['unbounded'].objects}['sky'] == 'background'
  assert {o.name: o.material.region for o in procedural_layouts.DEFAULT_OBJECTS}['glossy_ball'] == 'glossy'
  procedural.write_scene(tmp_path, spec)
  split = blender.load_blender_split(tmp_path, 'val')
  np.testing.assert_array_equal(split.regions[0], view.regions)
  assert blender.load_blender_split(tmp_path, 'val', factor=2).regions is None  # Maps only at full size.
  # A region map that does not fit its image, or names no region, is refused with its path.
  np.save(tmp_path / 'val' / 'r_1_regions.npy', view.regions[:16])
  with pytest.raises(DatasetError, match=r"r_1_regions.npy holds an array of shape \(16, 32\); expected \(32, 32\)"):
    blender.load_blender_split(tmp_path, 'val')
  np.save(tmp_path / 'val' / 'r_1_regions.npy', np.full((32, 32), 7, np.uint8))
  with pytest.raises(DatasetError, match=r"r_1_regions.npy must hold integer indices into .* from 7 to 7"):
    blender.load_blender_split(tmp_path, 'val')
