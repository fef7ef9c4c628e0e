"""The COLMAP and transforms.json readers: hand-written models (text, and the same converted to binary by
pycolmap) read to the same cameras, which project points where COLMAP does; transforms.json in its global and
per-frame forms, its round trip through write_transforms, and a clear error for each kind of bad input."""

import json
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxnerf import datasets
from jaxnerf.datasets import capture
from jaxnerf.datasets import colmap
from jaxnerf.datasets import transforms_json
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera

pycolmap = pytest.importorskip('pycolmap')

CUP = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'captures' / 'cup'
WIDTH, HEIGHT = 16, 12
# (model, params) of the hand-written cameras: one with OpenCV distortion, one SIMPLE_RADIAL, one pinhole.
CAMERAS = {1: ('OPENCV', [14.0, 15.0, 8.2, 5.9, -0.05, 0.01, 0.002, -0.001]),
           2: ('SIMPLE_RADIAL', [13.0, 8.0, 6.0, 0.04]),
           3: ('PINHOLE', [12.0, 12.5, 7.5, 6.5])}


def _quaternion(rotation):
  """(w, x, y, z) of a rotation matrix (COLMAP's order in its files)."""
  w = np.sqrt(max(0.0, 1.0 + np.trace(rotation))) / 2
  x = (rotation[2, 1] - rotation[1, 2]) / (4 * w)
  y = (rotation[0, 2] - rotation[2, 0]) / (4 * w)
  z = (rotation[1, 0] - rotation[0, 1]) / (4 * w)
  return w, x, y, z


def _write_text_model(scene: pathlib.Path, num_images=5, seed=0):
  """A COLMAP text model of cameras around the origin looking at it, with 6 points seen by all images."""
  rng = np.random.default_rng(seed)
  model = scene / 'sparse' / '0'
  model.mkdir(parents=True)
  (scene / 'images').mkdir()
  (model / 'cameras.txt').write_text(''.join(
      f'{i} {name} {WIDTH} {HEIGHT} {" ".join(map(str, params))}\n' for i, (name, params) in CAMERAS.items()))
  points = rng.uniform(-0.3, 0.3, (6, 3))
  image_lines, tracks = [], {j: [] for j in range(len(points))}
  for i in range(1, num_images + 1):
    camtoworld = camera.look_at([4 * np.cos(i), 4 * np.sin(i), 1.0 + 0.1 * i], [0.0, 0.0, 0.0])
    rotation = camtoworld[:, :3].astype(np.float64) @ colmap.OPENCV_TO_OPENGL  # OpenCV camera axes.
    world_to_camera = rotation.T
    translation = -world_to_camera @ camtoworld[:, 3]
    camera_id = 1 + i % 3
    observations = []
    for j, point in enumerate(points):  # Image positions need not be exact: the reader takes poses only.
      observations.append(f'{WIDTH / 2 + j} {HEIGHT / 2} {j + 1}')
      tracks[j].append(f'{i} {j}')
    qw, qx, qy, qz = _quaternion(world_to_camera)
    image_lines.append(f'{i} {qw} {qx} {qy} {qz} {" ".join(map(str, translation))} {camera_id} img{i}.png\n'
                       + ' '.join(observations) + '\n')
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 20 * i, np.uint8)).save(scene / 'images' / f'img{i}.png')
  (model / 'images.txt').write_text(''.join(image_lines))
  (model / 'points3D.txt').write_text(''.join(
      f'{j + 1} {" ".join(map(str, p))} 200 100 50 0.5 {" ".join(tracks[j])}\n' for j, p in enumerate(points)))
  return scene


def test_text_and_binary_models_read_alike_and_project_as_colmap(tmp_path):
  text_scene = _write_text_model(tmp_path / 'text')
  binary_scene = tmp_path / 'binary'
  (binary_scene / 'sparse' / '0').mkdir(parents=True)
  (binary_scene / 'images').symlink_to(text_scene / 'images')
  pycolmap.Reconstruction(str(text_scene / 'sparse' / '0')).write_binary(str(binary_scene / 'sparse' / '0'))
  assert (binary_scene / 'sparse' / '0' / 'cameras.bin').is_file()
  text, binary = colmap.read_colmap(text_scene), colmap.read_colmap(binary_scene)
  assert [p.name for p in text.image_paths] == [f'img{i}.png' for i in range(1, 6)]
  for field in ('camtoworlds', 'sizes', 'points'):
    np.testing.assert_allclose(getattr(text, field), getattr(binary, field), atol=1e-9)
  for a, b in zip(text.intrinsics, binary.intrinsics):
    np.testing.assert_allclose(a, b, atol=1e-9)
  # Each image's camera: OPENCV (k1, k2, p1, p2) and SIMPLE_RADIAL (k1) land in (k1, k2, k3, p1, p2).
  # Image i has camera 1 + i % 3: img1 SIMPLE_RADIAL, img2 PINHOLE (no distortion), img3 OPENCV.
  np.testing.assert_allclose(text.intrinsics.distortion[:3], [[0.04, 0, 0, 0, 0], [0, 0, 0, 0, 0],
                                                              [-0.05, 0.01, 0.0, 0.002, -0.001]])
  np.testing.assert_allclose(text.intrinsics.focal_y[:3], [13.0, 12.5, 15.0])
  reconstruction = pycolmap.Reconstruction(str(text_scene / 'sparse' / '0'))
  for i, path in enumerate(text.image_paths):
    image = reconstruction.find_image_with_name(path.name)
    cam = reconstruction.cameras[image.camera_id]
    expected = np.array([cam.img_from_cam(image.cam_from_world() * p) for p in text.points])
    actual = np.stack(camera.project(text.points, text.camtoworlds[i], text.intrinsics.take(i)), axis=-1)
    np.testing.assert_allclose(actual, expected, atol=1e-4)  # camera.project computes in float32.
    # And back: the ray through that pixel passes through the point.
    rays = camera.pixels_to_rays(expected[:, 0] - 0.5, expected[:, 1] - 0.5, text.camtoworlds[i],
                                 text.intrinsics.take(i), 0.1, 10.0)
    offsets = text.points - rays.origins
    distance = np.linalg.norm(np.cross(offsets, rays.viewdirs), axis=-1)
    np.testing.assert_allclose(distance, 0.0, atol=1e-4)


def test_colmap_errors_name_the_file_and_model(tmp_path):
  with pytest.raises(DatasetError, match='holds no COLMAP model'):
    colmap.read_colmap(tmp_path)
  scene = _write_text_model(tmp_path / 'scene')
  (scene / 'images' / 'img3.png').unlink()
  with pytest.raises(DatasetError, match=r'img3.png is missing: .*sparse/0 lists img3.png'):
    colmap.read_colmap(scene)
  with pytest.raises(DatasetError, match='OPENCV_FISHEYE is not supported'):
    colmap.intrinsics_of('OPENCV_FISHEYE', [1, 1, 1, 1, 0, 0, 0, 0], 'cameras.txt')
  with pytest.raises(DatasetError, match='rational coefficients'):
    colmap.intrinsics_of('FULL_OPENCV', [1, 1, 1, 1, 0, 0, 0, 0, 0, 0.1, 0, 0], 'cameras.txt')


@pytest.mark.parametrize('name', ['cameras.bin', 'images.bin', 'points3D.bin'])
def test_a_damaged_binary_model_is_refused_without_pycolmap_internals(tmp_path, name):
  scene = _write_text_model(tmp_path / 'text')
  binary = tmp_path / 'binary' / 'sparse' / '0'
  binary.mkdir(parents=True)
  (tmp_path / 'binary' / 'images').symlink_to(scene / 'images')
  pycolmap.Reconstruction(str(scene / 'sparse' / '0')).write_binary(str(binary))
  data = (binary / name).read_bytes()
  (binary / name).write_bytes(data[:len(data) // 2])
  with pytest.raises(DatasetError, match=r'sparse/0: could not read the COLMAP model \(cameras.bin, images.bin, '
                                         r'points3D.bin\): the files are damaged or not a COLMAP model.$'):
    colmap.read_colmap(tmp_path / 'binary')


@pytest.mark.skipif(not CUP.is_dir(), reason='the cup capture is not in ../shared/data')
def test_the_cup_with_a_truncated_images_bin_is_refused(tmp_path):
  model = tmp_path / 'sparse' / '0'
  model.mkdir(parents=True)
  for path in (CUP / 'sparse' / '0').iterdir():
    (model / path.name).symlink_to(path)
  (model / 'images.bin').unlink()
  with open(CUP / 'sparse' / '0' / 'images.bin', 'rb') as source, open(model / 'images.bin', 'wb') as copy:
    shutil.copyfileobj(source, copy, length=1 << 16)
    copy.truncate(1_000_000)
  (tmp_path / 'images').symlink_to(CUP / 'images')
  with pytest.raises(DatasetError, match='the files are damaged or not a COLMAP model') as error:
    colmap.read_colmap(tmp_path)
  assert 'Rig' not in str(error.value) and 'does not exist' not in str(error.value)


@pytest.mark.skipif(not CUP.is_dir(), reason='the cup capture is not in ../shared/data')
def test_cup_at_factor_32(tmp_path):
  """The cup's 800x600 photos at 1/32: 25 x 18.75 pixels, read as 25x18 (the ragged row cropped), with the
  model's intrinsics over 32; at 1/4 from its images_4/ (200x150), over 4."""
  result = colmap.read_colmap(CUP)
  for factor, (width, height) in ((32, (25, 18)), (4, (200, 150))):
    split = capture.load_capture_split(result, 'test', factor, test_every=8)
    assert split.images.shape == (10, height, width, 3)
    np.testing.assert_allclose(split.intrinsics.focal_x, result.intrinsics.focal_x[::8] / factor, rtol=1e-6)
    np.testing.assert_allclose(split.intrinsics.center_x, result.intrinsics.center_x[::8] / factor, rtol=1e-6)
    np.testing.assert_allclose(split.intrinsics.center_y, result.intrinsics.center_y[::8] / factor, rtol=1e-6)
  assert capture.image_source(result, 4)[0][0] == CUP / 'images_4' / '1.jpg'


def _write_images(directory, names, size=(WIDTH, HEIGHT)):
  directory.mkdir(parents=True, exist_ok=True)
  for name in names:
    Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(directory / name)


def _pose(i):
  return np.concatenate([camera.spherical_pose(40.0 * i, 20.0, 3.0), [[0, 0, 0, 1]]]).tolist()


def test_transforms_json_global_and_per_frame_intrinsics(tmp_path):
  _write_images(tmp_path / 'images', ['b.png', 'a.jpg', 'c.png'])
  meta = {'camera_model': 'OPENCV', 'fl_x': 20.0, 'fl_y': 21.0, 'cx': 8.5, 'cy': 6.5, 'k1': 0.02, 'aabb_scale': 4,
          'frames': [{'file_path': 'images/b.png', 'transform_matrix': _pose(0)},
                     {'file_path': 'images/a', 'transform_matrix': _pose(1)},  # No extension.
                     {'file_path': str(tmp_path / 'images' / 'c.png'), 'transform_matrix': _pose(2),
                      'fl_x': 30.0, 'fl_y': 30.0, 'k1': 0.0}]}  # Absolute path, own intrinsics.
  (tmp_path / 'transforms.json').write_text(json.dumps(meta))
  result = transforms_json.read_transforms(tmp_path)
  assert [p.name for p in result.image_paths] == ['a.jpg', 'b.png', 'c.png']  # In name order.
  np.testing.assert_allclose(result.camtoworlds[0], np.asarray(_pose(1))[:3])
  np.testing.assert_allclose(result.intrinsics.focal_x, [20.0, 20.0, 30.0])
  np.testing.assert_allclose(result.intrinsics.focal_y, [21.0, 21.0, 30.0])
  np.testing.assert_allclose(result.intrinsics.distortion[:, 0], [0.02, 0.02, 0.0])
  np.testing.assert_allclose(result.sizes, [[WIDTH, HEIGHT]] * 3)  # Read from the images (no "w", "h").
  assert result.aabb_scale == 4.0
  assert datasets.capture_format(tmp_path) == 'transforms'
  # camera_angle_x alone: the focal length from the field of view, the principal point at the centre.
  (tmp_path / 'transforms.json').write_text(json.dumps({'camera_angle_x': 1.0, 'frames': meta['frames'][:1]}))
  result = transforms_json.read_transforms(tmp_path)
  np.testing.assert_allclose(result.intrinsics.focal_x, 0.5 * WIDTH / np.tan(0.5))
  np.testing.assert_allclose(result.intrinsics.center_y, HEIGHT / 2)
  assert result.intrinsics.distortion is None


def test_write_transforms_round_trip(tmp_path):
  scene = _write_text_model(tmp_path / 'scene')
  original = colmap.read_colmap(scene)
  transforms_json.write_transforms(original, scene / 'transforms.json')
  meta = json.loads((scene / 'transforms.json').read_text())
  assert meta['frames'][0]['file_path'] == 'images/img1.png'
  copy = transforms_json.read_transforms(scene)
  assert [p.resolve() for p in copy.image_paths] == [p.resolve() for p in original.image_paths]
  np.testing.assert_allclose(copy.camtoworlds, original.camtoworlds, atol=1e-12)
  np.testing.assert_allclose(copy.sizes, original.sizes)
  for a, b in zip(copy.intrinsics, original.intrinsics):
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_transforms_json_errors_name_the_file_and_frame(tmp_path):
  with pytest.raises(DatasetError, match='transforms.json is missing'):
    transforms_json.read_transforms(tmp_path)
  (tmp_path / 'transforms.json').write_text('{"frames": [')
  with pytest.raises(DatasetError, match='transforms.json is not valid JSON'):
    transforms_json.read_transforms(tmp_path)
  _write_images(tmp_path, ['a.png'])
  cases = [({'fl_x': 10, 'frames': [{'file_path': 'a.png'}]}, 'frame 0 has no "transform_matrix"'),
           ({'fl_x': 10, 'frames': [{'file_path': 'b.png', 'transform_matrix': _pose(0)}]}, 'b.png, which does not'),
           ({'frames': [{'file_path': 'a.png', 'transform_matrix': _pose(0)}]}, 'no focal length'),
           ({'fl_x': 'ten', 'frames': [{'file_path': 'a.png', 'transform_matrix': _pose(0)}]}, '"fl_x" must be'),
           ({'fl_x': 10, 'camera_model': 'OPENCV_FISHEYE',
             'frames': [{'file_path': 'a.png', 'transform_matrix': _pose(0)}]}, 'OPENCV_FISHEYE'),
           ({'fl_x': 10, 'frames': [{'file_path': 'a.png', 'transform_matrix': [[2, 0, 0, 0], [0, 1, 0, 0],
                                                                                [0, 0, 1, 0], [0, 0, 0, 1]]}]},
            'frame 0 "transform_matrix" scales')]
  for meta, message in cases:
    (tmp_path / 'transforms.json').write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=message):
      transforms_json.read_transforms(tmp_path)


@pytest.mark.skipif(not CUP.is_dir(), reason='the cup capture is not in ../shared/data')
def test_cup_model_and_its_transforms_json(tmp_path):
  result = colmap.read_colmap(CUP)
  assert result.num_images == 77 and np.all(result.sizes == [800, 600]) and len(result.points) > 1000
  # Written as transforms.json elsewhere (absolute image paths) and read back: the same cameras.
  transforms_json.write_transforms(result, tmp_path / 'transforms.json')
  copy = transforms_json.read_transforms(tmp_path)
  np.testing.assert_allclose(copy.camtoworlds, result.camtoworlds, atol=1e-12)
  np.testing.assert_allclose(copy.intrinsics.focal_x, result.intrinsics.focal_x)
