"""The capture pipeline shared by the COLMAP and transforms.json readers: normalisation, ray bounds from the
sparse points, split protocol, image sizes against the cameras, and detection of a capture's format."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxnerf import datasets
from jaxnerf.datasets import capture
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

TARGET = np.array([2.0, -1.0, 0.5])


def _inward_capture(tmp_path, num=12, size=(8, 6), tilt_up=(0.3, 0.1, 1.0)):
  """Cameras around TARGET in a world whose up is `tilt_up`, with sparse points around the target."""
  rng = np.random.default_rng(0)
  up = np.asarray(tilt_up) / np.linalg.norm(tilt_up)
  rotation = capture.rotation_taking(up).T  # Takes +z to `up`.
  poses = []
  for azimuth in np.linspace(0, 300, num):
    eye = TARGET + rotation @ (3.0 * np.array([np.cos(np.radians(azimuth)), np.sin(np.radians(azimuth)), 0.4]))
    poses.append(camera.look_at(eye, TARGET, up=up))
  paths = []
  for i in range(num):
    paths.append(tmp_path / f'{i:02d}.png')
    Image.fromarray(np.full((size[1], size[0], 3), 10 * i, np.uint8)).save(paths[-1])
  intrinsics = camera.Intrinsics(10.0, 10.0, size[0] / 2, size[1] / 2).repeated(num)
  points = TARGET + rng.normal(size=(500, 3)) * 0.3
  return capture.Capture(tuple(paths), np.stack(poses).astype(np.float64), intrinsics,
                         np.tile(np.array(size, float), (num, 1)), points=points, source='test')


def test_normalize_cameras_centres_levels_and_scales(tmp_path):
  raw = _inward_capture(tmp_path)
  result, transform, scale = capture.normalize(raw, 'cameras')
  np.testing.assert_allclose(camera.focus_point(result.camtoworlds), 0.0, atol=1e-6)
  up = result.camtoworlds[:, :, 1].mean(axis=0)
  np.testing.assert_allclose(up / np.linalg.norm(up), [0, 0, 1], atol=1e-6)
  np.testing.assert_allclose(np.percentile(np.linalg.norm(result.camtoworlds[:, :, 3], axis=-1), 90), 1.0)
  # The same similarity transform moves cameras and points: a point keeps its pixel in every image.
  for i in (0, 5):
    np.testing.assert_allclose(camera.project(result.points[:5], result.camtoworlds[i], raw.intrinsics.take(i)),
                               camera.project(raw.points[:5], raw.camtoworlds[i], raw.intrinsics.take(i)),
                               atol=1e-6)
  np.testing.assert_allclose(transform[:, :3] @ TARGET + transform[:, 3], 0.0, atol=1e-6)
  assert scale == pytest.approx(1 / (3.0 * np.hypot(1.0, 0.4)), rel=1e-6)  # Cameras 3 x (cos, sin, 0.4) away.


def test_normalize_points_fits_the_box_and_bounds_come_from_points(tmp_path):
  result, _, _ = capture.normalize(_inward_capture(tmp_path), 'points')
  extent = np.abs(np.percentile(result.points, [1, 99], axis=0))
  assert extent.max() == pytest.approx(1.0)
  near, far = capture.ray_bounds(result, 0.0, 0.0)
  distance = np.linalg.norm(result.camtoworlds[0, :, 3])
  assert 0 < near < distance - 1.0 and distance + 1.0 < far < 3 * distance
  assert capture.ray_bounds(result, 0.5, 0.0)[0] == 0.5


def test_split_sizes_and_aspect_checks(tmp_path):
  raw = _inward_capture(tmp_path, num=10)
  split = capture.load_capture_split(raw, 'train', factor=1, test_every=8)
  assert split.num_images == 8 and split.images.shape == (8, 6, 8, 3)
  assert split.depth_range is not None
  with pytest.raises(DatasetError, match='too few'):
    capture.load_capture_split(capture.Capture(raw.image_paths[1:2], raw.camtoworlds[1:2],
                                               raw.intrinsics.take(slice(1, 2)), raw.sizes[1:2], source='x'),
                               'train', 1, 8)  # One image: held out, none left to train on.
  rotated = capture.Capture(raw.image_paths, raw.camtoworlds, raw.intrinsics, raw.sizes[:, ::-1].copy(),
                            source='cams.bin')
  with pytest.raises(DatasetError, match='cams.bin.*another aspect ratio'):
    capture.load_capture_split(rotated, 'train', 1, 8)
  with pytest.raises(DatasetError, match='unknown split'):
    capture.split_indices(10, 'holdout', 8)


def test_sizes_that_round_are_read_and_files_of_another_size_refused(tmp_path):
  raw = _inward_capture(tmp_path, num=4, size=(8, 6))
  split = capture.load_capture_split(raw, 'train', factor=4, test_every=2)
  # 6 / 4 = 1.5 rows: one, the ragged half cropped, which moves neither the focal length nor the centre.
  assert split.images.shape == (2, 1, 2, 3)
  np.testing.assert_allclose(split.intrinsics.focal_x, 10.0 / 4)
  np.testing.assert_allclose(split.intrinsics.center_y, 6 / 2 / 4)
  described_larger = capture.Capture(raw.image_paths, raw.camtoworlds, raw.intrinsics, raw.sizes * 2,
                                     source='cameras.bin')
  with pytest.raises(DatasetError, match=r'01.png is 8x6, but cameras.bin describes 16x12: expected that size'):
    capture.load_capture_split(described_larger, 'train', factor=2, test_every=2)


def test_a_copy_beside_the_images_is_found_by_name(tmp_path):
  (tmp_path / 'images').mkdir()
  raw = _inward_capture(tmp_path / 'images', num=4, size=(8, 6))
  (tmp_path / 'images_2').mkdir()
  for path in raw.image_paths:  # Another suffix, and content told apart from the full-size images.
    Image.fromarray(np.full((3, 4, 3), 255, np.uint8)).save(tmp_path / 'images_2' / f'{path.stem}.jpg')
  assert capture.image_source(raw, 2)[0][0] == tmp_path / 'images_2' / '00.jpg'
  assert capture.image_source(raw, 4) == (raw.image_paths, 1)  # The full-size images before a copy.
  split = capture.load_capture_split(raw, 'train', factor=2, test_every=2)
  np.testing.assert_allclose(split.images, 1.0, atol=2 / 255)
  np.testing.assert_allclose(split.intrinsics.focal_x, 10.0 / 2)
  (tmp_path / 'images_2' / '03.jpg').unlink()  # An incomplete copy is passed over.
  assert capture.image_source(raw, 2) == (raw.image_paths, 1)


def test_capture_format_is_told_by_the_files(tmp_path):
  with pytest.raises(DatasetError, match='transforms.json, a COLMAP model'):
    datasets.capture_format(tmp_path)
  (tmp_path / 'poses_bounds.npy').write_bytes(b'')
  assert datasets.capture_format(tmp_path) == 'llff'
  (tmp_path / 'sparse' / '0').mkdir(parents=True)
  (tmp_path / 'sparse' / '0' / 'cameras.txt').write_text('')
  assert datasets.capture_format(tmp_path) == 'colmap'
  (tmp_path / 'transforms.json').write_text('{}')
  assert datasets.capture_format(pathlib.Path(tmp_path)) == 'transforms'


def test_bounds_without_points_come_from_the_cameras_focus(tmp_path):
  raw = _inward_capture(tmp_path)
  no_points = capture.Capture(raw.image_paths, raw.camtoworlds, raw.intrinsics, raw.sizes, source='t.json')
  distance = 3.0 * np.hypot(1.0, 0.4)  # Every camera's distance to the target it looks at.
  assert capture.content_depths(no_points) == pytest.approx((0.1 * distance, 10 * distance))
  parallel = capture.Capture(raw.image_paths, np.repeat(raw.camtoworlds[:1], len(raw.image_paths), axis=0),
                             raw.intrinsics, raw.sizes, source='t.json')
  with pytest.raises(DatasetError, match='t.json: .* look at no common point'):
    capture.ray_bounds(parallel, 0.0, 0.0)
