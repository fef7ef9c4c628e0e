"""The Blender reader: compositing, downsampling, intrinsics, and a clear error for every kind of bad input."""

import json
import math
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxnerf.datasets import blender
from jaxnerf.errors import DatasetError
from tests.scenes import write_blender_scene


def test_composites_straight_alpha_on_the_background(tmp_path):
  directory, images = write_blender_scene(tmp_path)
  for white in (True, False):
    split = blender.load_blender_split(directory, 'train', white_background=white)
    rgba = images['train'][1].astype(np.float32) / 255
    expected = rgba[..., :3] * rgba[..., 3:] + float(white) * (1 - rgba[..., 3:])
    np.testing.assert_allclose(split.images[1], expected, atol=1e-6)
    np.testing.assert_allclose(split.alphas[1], rgba[..., 3], atol=1e-6)


def test_reads_poses_focal_and_names(tmp_path):
  directory, _ = write_blender_scene(tmp_path, size=(8, 6))
  split = blender.load_blender_split(directory, 'val', near=1.5, far=7.0)
  meta = json.loads((directory / 'transforms_val.json').read_text())
  np.testing.assert_allclose(split.camtoworlds[2], np.array(meta['frames'][2]['transform_matrix'])[:3],
                             atol=1e-6)
  np.testing.assert_allclose(split.intrinsics.focal_x, 0.5 * 8 / math.tan(0.5 * 0.6911), rtol=1e-6)
  assert (split.width, split.height, split.num_images) == (8, 6, 3)
  assert split.names == ('r_0', 'r_1', 'r_2')
  assert (split.near, split.far) == (1.5, 7.0)


def test_factor_averages_areas_and_scales_focal(tmp_path):
  directory, _ = write_blender_scene(tmp_path, size=(8, 6))
  full = blender.load_blender_split(directory, 'train')
  half = blender.load_blender_split(directory, 'train', factor=2)
  assert half.images.shape == (3, 3, 4, 3)
  np.testing.assert_allclose(half.images[0, 1, 2], full.images[0, 2:4, 4:6].mean(axis=(0, 1)), atol=1e-6)
  np.testing.assert_allclose(half.intrinsics.focal_x, full.intrinsics.focal_x / 2, rtol=1e-6)
  np.testing.assert_allclose(half.intrinsics.center_x, full.intrinsics.center_x / 2, rtol=1e-6)
  np.testing.assert_allclose(half.alphas[2, 2, 3], full.alphas[2, 4:6, 6:8].mean(), atol=1e-6)


def _expect_error(match, *args, **kwargs):
  with pytest.raises(DatasetError, match=match):
    blender.load_blender_split(*args, **kwargs)


def test_missing_directory_names_it_and_where_to_download(tmp_path):
  _expect_error(r'nowhere does not exist.*nerf_synthetic.*--config.data_dir', tmp_path / 'nowhere', 'train')


def test_missing_split_lists_the_available_ones(tmp_path):
  directory, _ = write_blender_scene(tmp_path)
  _expect_error(r"transforms_test.json is missing.*no 'test' split.*train, val", directory, 'test')


def test_directory_without_any_split_points_to_the_download(tmp_path):
  _expect_error(r'holds no transforms_\*.json.*nerf_synthetic', tmp_path, 'train')


def test_malformed_json_names_the_file(tmp_path):
  directory, _ = write_blender_scene(tmp_path)
  (directory / 'transforms_train.json').write_text('{"camera_angle_x": 0.69, "frames": [')
  _expect_error(r'transforms_train.json is not valid JSON', directory, 'train')


@pytest.mark.parametrize('meta, match', [
    ({'frames': []}, 'camera_angle_x'),
    ({'camera_angle_x': 0.7, 'frames': []}, '"frames" must be a non-empty list'),
    ({'camera_angle_x': 0.7, 'frames': [{'transform_matrix': np.eye(4).tolist()}]}, 'frame 0 has no "file_path"'),
    ([1, 2], 'expected a JSON object'),
])
def test_malformed_metadata_names_the_field(tmp_path, meta, match):
  directory, _ = write_blender_scene(tmp_path)
  (directory / 'transforms_train.json').write_text(json.dumps(meta))
  _expect_error(match, directory, 'train')


def _edit_frame(directory, index, **fields):
  path = directory / 'transforms_train.json'
  meta = json.loads(path.read_text())
  meta['frames'][index].update(fields)
  path.write_text(json.dumps(meta))


def test_missing_image_names_frame_and_file(tmp_path):
  directory, _ = write_blender_scene(tmp_path)
  (directory / 'train' / 'r_1.png').unlink()
  _expect_error(r'frame 1 refers to .*r_1.png, which does not exist', directory, 'train')


def test_unreadable_image_names_the_file(tmp_path):
  directory, _ = write_blender_scene(tmp_path)
  (directory / 'train' / 'r_2.png').write_bytes(b'not a png at all')
  _expect_error(r'r_2.png could not be read as an image', directory, 'train')


def test_inconsistent_image_sizes_name_both_files(tmp_path):
  directory, _ = write_blender_scene(tmp_path, size=(8, 6))
  Image.new('RGBA', (10, 6)).save(directory / 'train' / 'r_1.png')
  _expect_error(r'r_1.png: image is 10x6, but .*r_0.png is 8x6', directory, 'train')


@pytest.mark.parametrize('matrix, match', [
    (np.eye(3).tolist(), 'must be a 4x4 matrix'),
    ('identity', 'must be a 4x4 matrix'),
    ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, float('nan')], [0, 0, 0, 1]], 'non-finite'),
])
def test_bad_pose_names_the_frame(tmp_path, matrix, match):
  directory, _ = write_blender_scene(tmp_path)
  _edit_frame(directory, 2, transform_matrix=matrix)
  _expect_error(f'frame 2 "transform_matrix" .*{match}|frame 2 "transform_matrix" {match}', directory,
                'train')


def _rotation_z(degrees):
  c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
  return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _pose(linear, translation=(0.0, 0.0, 4.0), bottom=(0, 0, 0, 1)):
  return np.concatenate([np.concatenate([linear, np.reshape(translation, (3, 1))], 1), [bottom]]).tolist()


@pytest.mark.parametrize('matrix, match', [
    (_pose(np.zeros((3, 3))), r'is singular \(its 3x3 part has determinant 0\)'),
    (_pose(_rotation_z(30) @ np.diag([1.0, 1.0, 0.0])), 'is singular'),  # Rank 2.
    (_pose(2.0 * _rotation_z(30)), r'scales \(its 3x3 part has columns of lengths 2, 2, 2\).*no scale'),
    (_pose(_rotation_z(30) @ np.diag([1.0, 1.0, 1.1])), r'scales .*lengths 1, 1, 1\.1'),
    (_pose(np.array([[1, np.sin(0.3), 0], [0, np.cos(0.3), 0], [0, 0, 1.0]])),  # Unit columns, sheared.
     r'is not a rotation \(its 3x3 part shears or mirrors'),
    (_pose(np.array([[1, 0.0, 0], [0, 0.8, 0.6], [0, 0.6, -0.8]])), r'is not a rotation .*mirrors'),
    (_pose(np.eye(3), bottom=(0, 0, 1, 1)), r'must end in the row \(0, 0, 0, 1\)'),
])
def test_non_rigid_pose_names_the_frame_and_what_was_expected(tmp_path, matrix, match):
  directory, _ = write_blender_scene(tmp_path)
  _edit_frame(directory, 1, transform_matrix=matrix)
  _expect_error(f'frame 1 "transform_matrix" {match}', directory, 'train')


def test_rotations_within_rounding_are_accepted(tmp_path):
  directory, _ = write_blender_scene(tmp_path)
  rotation = _rotation_z(30) + 2e-4  # Rounding as files written with few digits have it.
  _edit_frame(directory, 1, transform_matrix=_pose(rotation))
  split = blender.load_blender_split(directory, 'train')
  np.testing.assert_allclose(split.camtoworlds[1, :, :3], rotation, atol=1e-6)


def _write_png16(path, pixels):
  """A 16-bit PNG of uint16 pixels [H, W, C] (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA)."""
  import png  # pypng; Pillow writes no 16-bit colour PNGs.
  height, width, channels = pixels.shape
  writer = png.Writer(width, height, greyscale=channels <= 2, alpha=channels in (2, 4), bitdepth=16)
  with open(path, 'wb') as f:
    writer.write(f, pixels.reshape(height, width * channels))


@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_16_bit_images_are_read_at_full_precision(tmp_path, channels):
  directory, _ = write_blender_scene(tmp_path, size=(8, 6))
  rng = np.random.default_rng(channels)
  pixels = rng.integers(0, 65536, (6, 8, channels), dtype=np.uint16)
  pixels[0, 0] = 1  # Values an 8-bit reading would round to 0...
  pixels[0, 1] = 65534  # ...or clip to white.
  for i in range(3):
    _write_png16(directory / 'train' / f'r_{i}.png', pixels)
  split = blender.load_blender_split(directory, 'train', white_background=False)
  values = pixels.astype(np.float64) / 65535
  colour = np.repeat(values[..., :1], 3, -1) if channels <= 2 else values[..., :3]
  alpha = values[..., -1:] if channels in (2, 4) else np.ones_like(values[..., :1])
  np.testing.assert_allclose(split.images[0], colour * alpha, atol=1e-6)
  np.testing.assert_allclose(split.alphas[0], alpha[..., 0], atol=1e-6)


def test_8_bit_grey_images_are_read_as_grey(tmp_path):
  directory, _ = write_blender_scene(tmp_path, size=(8, 6))
  grey = np.random.default_rng(0).integers(0, 256, (6, 8), dtype=np.uint8)
  for i in range(3):
    Image.fromarray(grey, 'L').save(directory / 'train' / f'r_{i}.png')
  split = blender.load_blender_split(directory, 'train')
  np.testing.assert_allclose(split.images[2], np.repeat(grey[..., None] / 255.0, 3, -1), atol=1e-6)
  np.testing.assert_array_equal(split.alphas[2], 1.0)


def test_factor_must_divide_the_image_size(tmp_path):
  directory, _ = write_blender_scene(tmp_path, size=(8, 6))
  _expect_error(r'config.factor=4 does not divide the image size 8x6', directory, 'train', factor=4)
  _expect_error(r'config.factor must be a positive integer', directory, 'train', factor=0)


LEGO = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'nerf_synthetic' / 'lego'


@pytest.mark.skipif(not LEGO.is_dir(), reason='the lego scene is not in ../shared/data')
def test_reads_the_real_lego_scene():
  split = blender.load_blender_split(LEGO, 'val', factor=8)
  assert split.images.shape == (100, 100, 100, 3)
  np.testing.assert_allclose(split.intrinsics.focal_x, 1111.11 / 8, rtol=1e-4)  # 400 / tan(0.6911 / 2), over 8.
  assert 0.0 <= split.images.min() and split.images.max() <= 1.0
  # The lego sits at the origin: every camera is about 4 units away, looking at it.
  distances = np.linalg.norm(split.camtoworlds[:, :, 3], axis=-1)
  np.testing.assert_allclose(distances, 4.031, atol=0.01)
  # The viewing direction (-z axis) points from the camera centre towards the origin.
  cosine = np.sum(-split.camtoworlds[:, :, 2] * -split.camtoworlds[:, :, 3], axis=-1) / distances
  assert np.all(cosine > 0.999)
