"""The LLFF reader and the capture pipeline it feeds: pose conventions, scaling by the bounds, recentring,
spherify, the held-out split, images_<N> directories, NDC, and a clear error for each kind of bad input."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxnerf import camera
from jaxnerf.datasets import capture
from jaxnerf.datasets import llff
from jaxnerf.errors import DatasetError

FERN = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'nerf_llff_data' / 'fern'
WIDTH, HEIGHT, FOCAL = 16, 12, 14.0


def _poses_bounds(camtoworlds, near, far):
  """LLFF's rows from OpenGL camera-to-worlds: columns (down, right, backward, centre, (H, W, f))."""
  rows = []
  for pose in camtoworlds:
    matrix = np.stack([-pose[:, 1], pose[:, 0], pose[:, 2], pose[:, 3], [HEIGHT, WIDTH, FOCAL]], axis=1)
    rows.append(np.concatenate([matrix.reshape(-1), [near, far]]))
  return np.stack(rows)


def _forward_cameras(num, rng):
  return np.stack([camera.look_at([rng.uniform(-1, 1), 5 + rng.uniform(-0.5, 0.5), rng.uniform(-1, 1)],
                                  [0.0, 0.0, 0.0]) for _ in range(num)]).astype(np.float64)


def _write_scene(directory, camtoworlds, near=3.0, far=9.0, images_dir='images', size=(WIDTH, HEIGHT)):
  directory.mkdir(parents=True, exist_ok=True)
  np.save(directory / 'poses_bounds.npy', _poses_bounds(camtoworlds, near, far))
  (directory / images_dir).mkdir(exist_ok=True)
  colours = []
  for i in range(len(camtoworlds)):
    colour = np.uint8([(37 * i) % 256, 100, 200])
    colours.append(colour)
    Image.fromarray(np.broadcast_to(colour, (size[1], size[0], 3)).copy()).save(
        directory / images_dir / f'img{i:03d}.png')
  return colours


def test_conventions_scale_and_recentring(tmp_path):
  cams = _forward_cameras(10, np.random.default_rng(0))
  _write_scene(tmp_path, cams)
  result = llff.read_llff(tmp_path, forward_facing=True)
  scale = 1 / (3.0 * llff.BOUNDS_MARGIN)
  np.testing.assert_allclose(result.depth_bounds, np.array([[3.0, 9.0]] * 10) * scale)
  # Recentred: the mean camera is the identity.
  np.testing.assert_allclose(camera.average_pose(result.camtoworlds), np.eye(3, 4), atol=1e-9)
  # A rigid motion and the bounds' scale: distances between cameras scale, relative rotations stay.
  original = cams[:, :, 3]
  distances = np.linalg.norm(original[:, None] - original[None], axis=-1) * scale
  new = result.camtoworlds[:, :, 3]
  np.testing.assert_allclose(np.linalg.norm(new[:, None] - new[None], axis=-1), distances, atol=1e-9)
  relative = np.einsum('ji,jk->ik', cams[0, :, :3], cams[1, :, :3])
  np.testing.assert_allclose(np.einsum('ji,jk->ik', result.camtoworlds[0, :, :3], result.camtoworlds[1, :, :3]),
                             relative, atol=1e-6)
  assert result.ndc == camera.NDCSpace(FOCAL, FOCAL, WIDTH, HEIGHT, 1.0)
  np.testing.assert_allclose(result.intrinsics.center_x, WIDTH / 2)


def test_held_out_split_and_images_of_a_factor(tmp_path):
  cams = _forward_cameras(10, np.random.default_rng(1))
  colours = _write_scene(tmp_path, cams, images_dir='images_2', size=(WIDTH // 2, HEIGHT // 2))
  result = llff.read_llff(tmp_path, factor=2)
  test = capture.load_capture_split(result, 'test', factor=2, test_every=8)
  train = capture.load_capture_split(result, 'train', factor=2, test_every=8)
  assert test.names == ('img000', 'img008') and len(train.names) == 8 and 'img001' in train.names
  assert capture.load_capture_split(result, 'val', factor=2, test_every=8).names == test.names
  np.testing.assert_allclose(test.images[1, 0, 0], colours[8] / 255, atol=1e-6)
  assert test.images.shape == (2, HEIGHT // 2, WIDTH // 2, 3)
  np.testing.assert_allclose(test.intrinsics.focal_x, FOCAL / 2)
  assert (test.near, test.far) == (0.0, 1.0) and test.ndc.width == WIDTH // 2
  # The NDC rays of the reference view at the near plane fill [-1, 1]^2.
  rays = test.rays_of_view(np.eye(3, 4), test.intrinsics.take(0), test.width, test.height)
  np.testing.assert_allclose(np.abs(rays.origins[[0, -1]][:, [0, -1], :2]), 1 - 1 / (WIDTH // 2), atol=0.1)


def test_factor_without_its_directory_downsamples(tmp_path):
  cams = _forward_cameras(3, np.random.default_rng(2))
  _write_scene(tmp_path, cams)
  split = capture.load_capture_split(llff.read_llff(tmp_path, factor=4), 'train', factor=4, test_every=2)
  assert split.images.shape == (1, HEIGHT // 4, WIDTH // 4, 3)
  np.testing.assert_allclose(split.intrinsics.focal_y, FOCAL / 4)


def test_world_rays_without_ndc_use_the_bounds(tmp_path):
  _write_scene(tmp_path, _forward_cameras(4, np.random.default_rng(3)))
  split = capture.load_capture_split(llff.read_llff(tmp_path, forward_facing=False), 'train', 1, 2)
  assert split.ndc is None
  assert split.near == pytest.approx(0.9 / llff.BOUNDS_MARGIN) and split.far == pytest.approx(3 / llff.BOUNDS_MARGIN)


def test_spherify_centres_inward_cameras(tmp_path):
  target = np.array([1.0, -2.0, 0.5])
  cams = np.stack([camera.spherical_pose(a, 30.0, 4.0, target) for a in range(0, 360, 40)]).astype(np.float64)
  _write_scene(tmp_path, cams)
  result = llff.read_llff(tmp_path, spherify=True)
  assert result.ndc is None
  np.testing.assert_allclose(np.sqrt(np.mean(np.sum(result.camtoworlds[:, :, 3]**2, -1))), 1.0, rtol=1e-6)
  np.testing.assert_allclose(camera.focus_point(result.camtoworlds), 0.0, atol=1e-6)
  with pytest.raises(DatasetError, match='nearly parallel'):
    _write_scene(tmp_path / 'forward', _forward_cameras(4, np.random.default_rng(4)))
    llff.read_llff(tmp_path / 'forward', spherify=True)


def test_bad_input_names_the_file(tmp_path):
  with pytest.raises(DatasetError, match='poses_bounds.npy is missing'):
    tmp_path.joinpath('images').mkdir()
    llff.read_llff(tmp_path)
  np.save(tmp_path / 'poses_bounds.npy', np.zeros((3, 15)))
  with pytest.raises(DatasetError, match=r'N x 17.*\(3, 15\)'):
    llff.read_llff(tmp_path)
  _write_scene(tmp_path, _forward_cameras(3, np.random.default_rng(5)))
  np.save(tmp_path / 'poses_bounds.npy', _poses_bounds(_forward_cameras(4, np.random.default_rng(5)), 3, 9))
  with pytest.raises(DatasetError, match='describes 4 images, but .* holds 3'):
    llff.read_llff(tmp_path)
  rows = _poses_bounds(_forward_cameras(3, np.random.default_rng(5)), 3, 9)
  rows[1, 4] = np.nan
  np.save(tmp_path / 'poses_bounds.npy', rows)
  with pytest.raises(DatasetError, match=r'rows \[1\] hold non-finite'):
    llff.read_llff(tmp_path)
  (tmp_path / 'images' / 'img001.png').write_bytes(b'not a png')
  np.save(tmp_path / 'poses_bounds.npy', _poses_bounds(_forward_cameras(3, np.random.default_rng(5)), 3, 9))
  with pytest.raises(DatasetError, match='img001.png could not be read'):
    capture.load_capture_split(llff.read_llff(tmp_path), 'train', 1, 2)


@pytest.mark.skipif(not FERN.is_dir(), reason='fern is not in ../shared/data')
def test_fern():
  result = llff.read_llff(FERN, factor=8)
  assert result.num_images == 20
  test = capture.load_capture_split(result, 'test', factor=8, test_every=8)
  assert test.names == ('image000', 'image008', 'image016') and test.images.shape == (3, 378, 504, 3)
  np.testing.assert_allclose(test.intrinsics.focal_x, 3260.5263 / 8, rtol=1e-4)
  # Every held-out pixel's NDC ray starts inside configs/fern_ngp.py's scene box.
  for i in range(3):
    origins = test.rays_of_image(i).origins
    assert np.all(np.abs(origins[..., :2]) < 1.5) and np.allclose(origins[..., 2], -1.0, atol=1e-5)
