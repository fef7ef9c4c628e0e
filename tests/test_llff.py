"""The LLFF reader and the capture pipeline it feeds: pose conventions, scaling by the bounds, recentring,
spherify, the held-out split, images_<N> directories (every route to an image at a factor gives the intrinsics
of images_<factor>/), NDC, and a clear error for each kind of bad input."""

import pathlib
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxnerf.datasets import capture
from jaxnerf.datasets import llff
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

FERN = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'nerf_llff_data' / 'fern'
WIDTH, HEIGHT, FOCAL = 16, 12, 14.0


def _poses_bounds(camtoworlds, near, far, hwf=(HEIGHT, WIDTH, FOCAL)):
  """LLFF's rows from OpenGL camera-to-worlds: columns (down, right, backward, centre, (H, W, f))."""
  rows = []
  for pose in camtoworlds:
    matrix = np.stack([-pose[:, 1], pose[:, 0], pose[:, 2], pose[:, 3], hwf], axis=1)
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
  scale = 1 / (3.0 * 0.75)  # NeRF's bd_factor, as a literal: a wrong llff.BOUNDS_MARGIN must fail this.
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
  assert split.near == pytest.approx(0.9 / 0.75) and split.far == pytest.approx(3 / 0.75)  # bd_factor 0.75.


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


def _write_copies(directory, size, focal, copies, num=3):
  """An LLFF scene of `num` noisy gradient photos of `size` (width, height) described at that size, in
  `copies`: 1 for images/, k for images_<k>/ (the photos resized to size // k, whole-frame, as tools do)."""
  directory.mkdir(parents=True, exist_ok=True)
  cams = _forward_cameras(num, np.random.default_rng(6))
  np.save(directory / 'poses_bounds.npy', _poses_bounds(cams, 3.0, 9.0, (size[1], size[0], focal)))
  rng = np.random.default_rng(7)
  y, x = np.mgrid[0:size[1], 0:size[0]]
  for i in range(num):
    gradient = np.stack([x / size[0], y / size[1], np.full(x.shape, i / num)], axis=-1)
    photo = Image.fromarray(np.uint8(np.clip(gradient + rng.normal(0, 0.05, gradient.shape), 0, 1) * 255))
    for k in copies:
      (directory / ('images' if k == 1 else f'images_{k}')).mkdir(exist_ok=True)
      resized = photo if k == 1 else photo.resize((size[0] // k, size[1] // k), Image.Resampling.BOX)
      resized.save(directory / ('images' if k == 1 else f'images_{k}') / f'img{i:03d}.png')
  return directory


def _split(directory, factor):
  return capture.load_capture_split(llff.read_llff(directory, factor), 'train', factor, test_every=2)


def _assert_same_cameras(split, reference, rtol=1e-6, pixel=0.0):
  """The same image size, and intrinsics and NDC map equal to within `rtol` (focal) and `pixel` (principal
  point, in pixels of the image read)."""
  assert split.images.shape == reference.images.shape
  for field in ('focal_x', 'focal_y'):
    np.testing.assert_allclose(getattr(split.intrinsics, field), getattr(reference.intrinsics, field), rtol=rtol)
  for field in ('center_x', 'center_y'):
    np.testing.assert_allclose(getattr(split.intrinsics, field), getattr(reference.intrinsics, field),
                               rtol=1e-6, atol=pixel)
  np.testing.assert_allclose(split.ndc.focal_x, split.intrinsics.focal_x[0], rtol=1e-6)
  points = np.random.default_rng(8).uniform([-1, -1, -5], [1, 1, -1.5], (10, 3))
  np.testing.assert_allclose(split.ndc.from_world(points), reference.ndc.from_world(points), rtol=1e-6)


@pytest.mark.parametrize('size, factor, copies, source', [
    ((128, 96), 8, (1, 8), 8),  # images_<factor>/ wins.
    ((128, 96), 8, (1,), 1),  # Only the full-size images.
    ((128, 96), 8, (4,), 4),  # Only images_4/ (fern's case), downsampled twice more.
    ((128, 96), 8, (2, 4), 4),  # The largest copy that divides the factor.
    ((128, 96), 32, (4, 8), 8),
    ((134, 98), 8, (1,), 1),  # Sizes that round: 16.75 x 12.25 pixels.
    ((134, 98), 8, (4,), 4),  # images_4/ at 33x24, then 16x12 with a ragged edge cropped.
])
def test_every_source_gives_the_cameras_of_images_of_the_factor(tmp_path, size, factor, copies, source):
  reference = _split(_write_copies(tmp_path / 'reference', size, 100.0, (factor,)), factor)
  scene = _write_copies(tmp_path / 'scene', size, 100.0, copies)
  assert capture.image_source(llff.read_llff(scene, factor), factor)[1] == source
  split = _split(scene, factor)
  assert split.images.shape[1:3] == (size[1] // factor, size[0] // factor)
  # Exact where the factor divides the size; else images_<factor>/ is the whole frame resized (16 / 134 of
  # it) and the others whole blocks, a ragged edge cropped (1 / 8): alike to within a pixel of the image read.
  rounds = size[0] % factor or size[1] % factor
  _assert_same_cameras(split, reference, rtol=1 / split.width if rounds else 1e-6, pixel=1.0 if rounds else 0.0)
  if not rounds:
    np.testing.assert_allclose(split.intrinsics.focal_x, 100.0 / factor, rtol=1e-6)
    np.testing.assert_allclose(split.images, reference.images, atol=2 / 255)


def test_no_source_fine_enough_or_a_copy_of_another_size_is_refused(tmp_path):
  scene = _write_copies(tmp_path / 'scene', (128, 96), 100.0, (4,))
  with pytest.raises(DatasetError, match=r'poses_bounds.npy: config.factor=2 needs images_2/, or the full-size '
                                         r'images/ .* only images_4/ \(32x24, 3 images\); images are not upsampled'):
    _split(scene, 2)
  with pytest.raises(DatasetError, match='factor=6 needs .* images_2/ or images_3/ to downsample further'):
    _split(scene, 6)
  shutil.rmtree(scene / 'images_4')
  (scene / 'images_4').symlink_to(_write_copies(tmp_path / 'full', (128, 96), 100.0, (1,)) / 'images')
  with pytest.raises(DatasetError, match=r'images_4/img001.png is 128x96, but .*poses_bounds.npy describes '
                                         r'128x96: expected about 32x24 \(1/4 of that'):
    _split(scene, 8)  # images_4/ holds full-size photos: not trusted by its name.
  (scene / 'images_4').unlink()
  (scene / 'images').symlink_to(_write_copies(tmp_path / 'rotated', (96, 128), 100.0, (1,)) / 'images')
  with pytest.raises(DatasetError, match='img001.png is 96x128, but .* 128x96: another aspect ratio'):
    _split(scene, 4)


@pytest.mark.parametrize('entry, value, message', [
    ((slice(None), slice(0, 3)), 0.0, 'is singular'),
    ((slice(None), slice(0, 3)), 'x3', 'scales .* 3, 3, 3'),
    ((2, 4), 0.0, r'height, width and focal length .* must be positive, got \[12.0, 16.0, 0.0\]'),
    ((0, 4), 0.0, 'height, width and focal length'),
    ((1, 4), -16.0, 'height, width and focal length'),
], ids=['zero rotation', 'rotation times 3', 'zero focal', 'zero height', 'negative width'])
def test_camera_matrices_are_checked(tmp_path, entry, value, message):
  _write_scene(tmp_path, _forward_cameras(3, np.random.default_rng(9)))
  rows = np.load(tmp_path / 'poses_bounds.npy')
  matrix = rows[1, :15].reshape(3, 5)
  matrix[entry] = matrix[entry] * 3 if value == 'x3' else value
  rows[1, :15] = matrix.reshape(-1)
  np.save(tmp_path / 'poses_bounds.npy', rows)
  with pytest.raises(DatasetError, match=rf'poses_bounds.npy: row 1 \(img001.png\).* {message}'):
    llff.read_llff(tmp_path)


def test_a_file_that_is_not_an_array_is_refused(tmp_path):
  _write_scene(tmp_path, _forward_cameras(3, np.random.default_rng(10)))
  path = tmp_path / 'poses_bounds.npy'
  for content in (np.random.default_rng(0).bytes(400), pickle.dumps({'poses': np.zeros((3, 17))}), b''):
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r'poses_bounds.npy: expected a .npy array of N x 17 floats') as error:
      llff.read_llff(tmp_path)
    assert 'allow_pickle' not in str(error.value) and '\n' not in str(error.value)
  np.save(path, np.array([['a'] * 17] * 3))
  with pytest.raises(DatasetError, match='N x 17 floats .* got an array of <U1'):
    llff.read_llff(tmp_path)


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


@pytest.mark.skipif(not FERN.is_dir(), reason='fern is not in ../shared/data')
def test_fern_from_images_4_alone_matches_its_images_8(tmp_path):
  (tmp_path / 'poses_bounds.npy').symlink_to(FERN / 'poses_bounds.npy')
  (tmp_path / 'images_4').symlink_to(FERN / 'images_4')
  reference = capture.load_capture_split(llff.read_llff(FERN, factor=8), 'test', factor=8, test_every=8)
  split = capture.load_capture_split(llff.read_llff(tmp_path, factor=8), 'test', factor=8, test_every=8)
  assert split.images.shape == (3, 378, 504, 3)
  _assert_same_cameras(split, reference)
  np.testing.assert_allclose(split.intrinsics.center_x, 252.0)
  # Both are downsamplings of the same photos: images_8's by another tool.
  np.testing.assert_allclose(split.images, reference.images, atol=2 / 255)


@pytest.mark.skipif(not FERN.is_dir(), reason='fern is not in ../shared/data')
def test_fern_at_factor_32_is_read_and_at_factor_2_refused():
  split = capture.load_capture_split(llff.read_llff(FERN, factor=32), 'test', factor=32, test_every=8)
  assert split.images.shape == (3, 94, 126, 3)  # From images_8/: 378 / 4 = 94.5 rows, the last cropped.
  np.testing.assert_allclose(split.intrinsics.focal_x, 3260.5263 / 32, rtol=1e-4)
  np.testing.assert_allclose(split.intrinsics.center_y, 3024 / 2 / 32)
  with pytest.raises(DatasetError, match=r'factor=2 needs .* images_4/ \(1008x756, 20 images\).* not upsampled'):
    capture.load_capture_split(llff.read_llff(FERN, factor=2), 'test', factor=2, test_every=8)
