"""process_photos.py and datasets/structure_from_motion.py: structure from motion on photos ray traced from known
cameras recovers those cameras (up to a similarity transform) in the COLMAP layout; video frames are sampled
evenly; photos that cannot work are refused with their names, and no failed run leaves a scene behind."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip('pycolmap')

# pylint: disable=g-import-not-at-top
import pycolmap

from jaxnerf.datasets import photos as photos_lib
from jaxnerf.datasets import raytracing as rt
from jaxnerf.datasets import structure_from_motion as sfm
from jaxnerf.errors import ConfigError
from jaxnerf.errors import DatasetError
from jaxnerf.ops import camera
from tests.conftest import REPO
from tests.conftest import subprocess_env

RESOLUTION = 256
NUM_VIEWS = 10
FIELD_OF_VIEW = 1.0  # Horizontal, in radians.


# ---------------------------------------------------------------------------------------------------------
# A scene with texture everywhere: the procedural scenes' flat colours give SIFT too few features at a few
# hundred pixels, so their ray tracer renders blotchy value noise here instead.


def _lattice_values(cells: np.ndarray, seed: int) -> np.ndarray:
  """A pseudo-random value in [0, 1] for each integer lattice point [N, 3] (a hash of its coordinates)."""
  hashed = (cells[:, 0] * 73856093) ^ (cells[:, 1] * 19349663) ^ (cells[:, 2] * 83492791) ^ (seed * 2654435761)
  hashed = (hashed ^ (hashed >> 13)) * 1274126177
  return ((hashed ^ (hashed >> 16)) & 0xFFFF) / 65535.0


def _value_noise(points: np.ndarray, cell_size: float, seed: int) -> np.ndarray:
  """[N] smooth noise at points [N, 3]: lattice values interpolated with smoothstep weights."""
  scaled = points / cell_size
  base = np.floor(scaled).astype(np.int64)
  fraction = scaled - base
  weight = fraction * fraction * (3.0 - 2.0 * fraction)
  noise = np.zeros(len(points))
  for corner in np.ndindex(2, 2, 2):
    corner_weight = np.prod(np.where(np.array(corner) == 1, weight, 1.0 - weight), axis=-1)
    noise += corner_weight * _lattice_values(base + np.array(corner), seed)
  return noise


def _blotches(cell_size: float, seed: int):
  """A texture of coloured blobs about `cell_size` across, with smaller ones inside."""

  def texture(points, normals):
    del normals
    channels = [0.6 * _value_noise(points, cell_size, seed + c)
                + 0.4 * _value_noise(points, cell_size / 3, seed + 9 + c) for c in range(3)]
    return np.clip(1.2 * np.stack(channels, axis=-1) - 0.1, 0.0, 1.0)

  return texture


TEXTURED_SCENE = (
    rt.SceneObject('ground', rt.Cylinder(radius=8.0, half_height=0.05), rt.Material(_blotches(0.25, 1)),
                   centre=(0.0, 0.0, -0.55)),
    rt.SceneObject('box', rt.Box(half_extents=(0.4, 0.4, 0.4)), rt.Material(_blotches(0.12, 2)),
                   centre=(0.3, -0.4, -0.1), rotation=rt.rotation_about((0.0, 0.0, 1.0), 30.0)),
    rt.SceneObject('ball', rt.Sphere(radius=0.5), rt.Material(_blotches(0.12, 3)), centre=(-0.5, 0.4, 0.0)),
    rt.SceneObject('sky', rt.Sphere(radius=12.0), rt.Material(_blotches(1.0, 4), unlit=True)),
)


def _render(camtoworld) -> np.ndarray:
  """[RESOLUTION, RESOLUTION, 3] uint8 view of TEXTURED_SCENE from a pinhole camera."""
  focal = 0.5 * RESOLUTION / np.tan(0.5 * FIELD_OF_VIEW)
  rays = camera.image_rays(camtoworld, RESOLUTION, RESOLUTION, focal, 0.1, 100.0)
  colours, _ = rt.trace_colours(TEXTURED_SCENE, rays.origins.reshape(-1, 3).astype(np.float64),
                                rays.directions.reshape(-1, 3).astype(np.float64))
  return (255 * colours.reshape(RESOLUTION, RESOLUTION, 3) + 0.5).astype(np.uint8)


@pytest.fixture(scope='module')
def textured_photos(tmp_path_factory):
  """(folder of NUM_VIEWS photos view_00.png ..., camera centres [NUM_VIEWS, 3]) on an arc about the scene,
  9 degrees apart, at varying heights."""
  folder = tmp_path_factory.mktemp('photos')
  centres = []
  for i in range(NUM_VIEWS):
    camtoworld = camera.spherical_pose(9.0 * i, 20.0 + 5.0 * np.sin(i), 4.0)
    Image.fromarray(_render(camtoworld)).save(folder / f'view_{i:02d}.png')
    centres.append(camtoworld[:, 3])
  return folder, np.asarray(centres, np.float64)


def _similarity_residual(source: np.ndarray, target: np.ndarray) -> float:
  """RMS distance [] between points target [N, 3] and points source [N, 3] after the best similarity
  transform of source onto target (Umeyama's least-squares fit)."""
  source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
  source_centred, target_centred = source - source_mean, target - target_mean
  u, singular_values, vt = np.linalg.svd(target_centred.T @ source_centred / len(source))
  reflection = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
  rotation = u @ reflection @ vt
  scale = np.trace(np.diag(singular_values) @ reflection) / np.mean(np.sum(source_centred**2, axis=-1))
  aligned = scale * source_centred @ rotation.T + target_mean
  return float(np.sqrt(np.mean(np.sum((aligned - target)**2, axis=-1))))


def _check_recovered_cameras(scene: pathlib.Path, names, true_centres: np.ndarray, min_registered: int):
  """The scene's images/ and sparse/0 agree, and its cameras sit where the true ones do, up to similarity."""
  model = pycolmap.Reconstruction(scene / 'sparse' / '0')
  registered = {model.image(i).name: model.image(i) for i in model.reg_image_ids()}
  assert len(registered) >= min_registered
  assert sorted(p.name for p in (scene / 'images').iterdir()) == sorted(registered)
  for image in registered.values():
    assert image.camera.model_name in ('PINHOLE', 'SIMPLE_PINHOLE')
    with Image.open(scene / 'images' / image.name) as photo:
      assert photo.size == (image.camera.width, image.camera.height)
  kept = [i for i, name in enumerate(names) if name in registered]
  recovered = np.stack([registered[names[i]].projection_center() for i in kept])
  spread = np.sqrt(np.mean(np.sum((true_centres[kept] - true_centres[kept].mean(axis=0))**2, axis=-1)))
  assert _similarity_residual(recovered, true_centres[kept]) < 0.02 * spread


def _run_cli(*args):
  return subprocess.run([sys.executable, str(pathlib.Path(REPO) / 'process_photos.py'), *args],
                        capture_output=True, text=True, timeout=300, env=subprocess_env(1))


def _leftovers(parent: pathlib.Path, out_name: str):
  """What a run left beside its output directory (staging directories are hidden, named after it)."""
  return sorted(p.name for p in parent.iterdir() if p.name.startswith(f'.{out_name}.'))


# ---------------------------------------------------------------------------------------------------------
# Reconstruction.


def test_command_recovers_the_cameras_of_rendered_photos(textured_photos, tmp_path):
  photos, centres = textured_photos
  out = tmp_path / 'scene'
  out.mkdir()
  (out / 'stale.txt').write_text('from an earlier run')  # Replaced, as --overwrite asks.
  result = _run_cli(f'--photos={photos}', f'--out={out}', '--overwrite')
  assert result.returncode == 0, result.stderr
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary == json.loads((out / sfm.SUMMARY_FILE).read_text())
  assert summary['images_found'] == NUM_VIEWS and summary['images_registered'] >= NUM_VIEWS - 1
  assert 0 < summary['mean_reprojection_error'] < 1.0 and summary['num_points3d'] > 100
  assert summary['camera_model'] == 'PINHOLE'  # SIMPLE_RADIAL, undistorted.
  assert sorted(p.name for p in out.iterdir()) == ['images', 'sparse', 'summary.json']
  assert {'cameras.bin', 'images.bin', 'points3D.bin'} <= {p.name for p in (out / 'sparse' / '0').iterdir()}
  assert 'Mapping' in result.stderr and 'Undistorting' in result.stderr  # One line per stage.
  names = [f'view_{i:02d}.png' for i in range(NUM_VIEWS)]
  _check_recovered_cameras(out, names, centres, NUM_VIEWS - 1)
  assert not _leftovers(tmp_path, 'scene')


def test_video_frames_to_scene(textured_photos, tmp_path):
  import imageio_ffmpeg
  photos, centres = textured_photos
  video = tmp_path / 'orbit.mp4'
  writer = imageio_ffmpeg.write_frames(str(video), (RESOLUTION, RESOLUTION), fps=10, quality=9, macro_block_size=16)
  writer.send(None)
  for i in range(NUM_VIEWS):
    writer.send(np.asarray(Image.open(photos / f'view_{i:02d}.png')).tobytes())
  writer.close()
  out = tmp_path / 'scene'
  options = sfm.SfmOptions(camera_model='PINHOLE')  # Copies the frames rather than undistorting them.
  summary = sfm.video_to_scene(video, out, NUM_VIEWS, options)
  assert summary['matcher'] == 'sequential' and summary['images_found'] == NUM_VIEWS
  names = [photos_lib.FRAME_NAME.format(i + 1) for i in range(NUM_VIEWS)]
  _check_recovered_cameras(out, names, centres, NUM_VIEWS - 1)


def test_video_frames_are_evenly_spaced(tmp_path):
  import imageio_ffmpeg
  video = tmp_path / 'grey.mp4'
  writer = imageio_ffmpeg.write_frames(str(video), (64, 48), fps=25, quality=9, macro_block_size=16)
  writer.send(None)
  for i in range(20):  # Frame i is a uniform grey of 12 i.
    writer.send(np.full((48, 64, 3), 12 * i, np.uint8).tobytes())
  writer.close()
  paths = photos_lib.video_to_photos(video, tmp_path / 'frames', num_frames=5)
  assert [p.name for p in paths] == ['frame_00001.png', 'frame_00002.png', 'frame_00003.png', 'frame_00004.png',
                                     'frame_00005.png']
  greys = [np.asarray(Image.open(p)).mean() for p in paths]
  assert np.allclose(greys, 12 * np.array([0, 5, 10, 14, 19]), atol=4)
  (tmp_path / 'not_a_video.mp4').write_text('text')
  with pytest.raises(DatasetError, match='not_a_video.mp4 could not be read as a video'):
    photos_lib.video_to_photos(tmp_path / 'not_a_video.mp4', tmp_path / 'other_frames', 5)


# ---------------------------------------------------------------------------------------------------------
# Refusals: named files, no scene left behind.


def _write_photos(folder: pathlib.Path, sizes, orientations=None, suffix='.png'):
  """Noise photos photo_0.png, ... of the given (width, height), optionally with EXIF orientations (JPEG)."""
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for i, (width, height) in enumerate(sizes):
    extra = {}
    if orientations is not None:
      extra['exif'] = Image.Exif()
      extra['exif'][photos_lib.EXIF_ORIENTATION] = orientations[i]
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / f'photo_{i}{suffix}', **extra)
  return folder


def test_unreadable_photos_are_named(tmp_path):
  photos = _write_photos(tmp_path / 'photos', [(64, 48)] * 4, suffix='.jpg')
  (photos / 'notes.jpg').write_text('not an image')
  data = (photos / 'photo_3.jpg').read_bytes()
  (photos / 'photo_3.jpg').write_bytes(data[:len(data) // 2])  # Truncated.
  with pytest.raises(DatasetError, match=r'2 of the 5 photos .*notes\.jpg.*photo_3\.jpg'):
    sfm.photos_to_scene(photos, tmp_path / 'scene')
  assert not (tmp_path / 'scene').exists() and not _leftovers(tmp_path, 'scene')


def test_mixed_sizes_and_orientations_are_refused(tmp_path):
  photos = _write_photos(tmp_path / 'sizes', [(64, 48)] * 3 + [(48, 64)])
  with pytest.raises(DatasetError, match=r'3 are 64x48; 1 are 48x64: photo_3\.png'):
    sfm.photos_to_scene(photos, tmp_path / 'scene')
  photos = _write_photos(tmp_path / 'orientations', [(64, 48)] * 4, orientations=[1, 1, 6, 1], suffix='.jpg')
  with pytest.raises(DatasetError, match=r'1 are 64x48 with EXIF orientation 6.*: photo_2\.jpg'):
    sfm.photos_to_scene(photos, tmp_path / 'scene')
  assert not (tmp_path / 'scene').exists() and not _leftovers(tmp_path, 'scene')


def test_too_few_photos_are_refused(tmp_path):
  photos = _write_photos(tmp_path / 'photos', [(64, 48)] * 2)
  with pytest.raises(DatasetError, match='found 2 photo.*at least 3'):
    sfm.photos_to_scene(photos, tmp_path / 'scene')
  (tmp_path / 'empty').mkdir()
  with pytest.raises(DatasetError, match='holds no photos'):
    sfm.photos_to_scene(tmp_path / 'empty', tmp_path / 'scene')
  assert not (tmp_path / 'scene').exists() and not _leftovers(tmp_path, 'scene')


def test_existing_output_is_kept(tmp_path):
  photos = _write_photos(tmp_path / 'photos', [(64, 48)] * 3)
  out = tmp_path / 'scene'
  out.mkdir()
  (out / 'mine.txt').write_text('keep me')
  with pytest.raises(ConfigError, match='--overwrite'):
    sfm.photos_to_scene(photos, out)
  assert [p.name for p in out.iterdir()] == ['mine.txt'] and (out / 'mine.txt').read_text() == 'keep me'


def test_failed_reconstruction_leaves_nothing(tmp_path):
  # Noise has features but no two photos share a scene point: nothing registers.
  photos = _write_photos(tmp_path / 'photos', [(96, 96)] * 4)
  out = tmp_path / 'new' / 'scene'
  with pytest.raises(sfm.ReconstructionError, match=r'structure from motion .* failed'):
    sfm.photos_to_scene(photos, out)
  assert not out.exists() and not _leftovers(out.parent, 'scene')


def test_command_reports_errors_in_one_line(tmp_path):
  photos = _write_photos(tmp_path / 'photos', [(64, 48), (64, 48), (48, 64)])
  result = _run_cli(f'--photos={photos}', f'--out={tmp_path / "scene"}')
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert lines[-1].startswith('error: ') and 'photo_2.png' in lines[-1] and 'Traceback' not in result.stderr
  assert not (tmp_path / 'scene').exists()
  result = _run_cli(f'--photos={photos}')
  assert result.returncode == 2 and '--out' in result.stderr
