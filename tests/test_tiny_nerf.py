"""Tests of the tiny NeRF data (datasets/tiny_nerf.py), configs/tiny_nerf.py and MLP fields without view
directions: round trips through the file, a clear error for each malformed part, and a short training run."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny_nerf as tiny_nerf_config
from jaxnerf import datasets
from jaxnerf.datasets import tiny_nerf
from jaxnerf.errors import DatasetError
from jaxnerf import models
from jaxnerf.training import trainer
from tests.tiny_configs import tiny_config


def _source_views(scene_cache):
  """The tiny procedural scene's train views on black, nine times over: 108 views, the layout's 100 + 8."""
  config = tiny_config(scene_cache)
  config.white_background = False
  return [datasets.load_split(config, 'train')] * 9


@pytest.fixture(scope='module')
def npz_path(scene_cache, tmp_path_factory):
  return tiny_nerf.write_tiny_nerf_npz(tmp_path_factory.mktemp('tiny') / 'tiny_nerf_data.npz',
                                       _source_views(scene_cache))


def test_the_file_reads_back_as_the_views_it_was_written_from(scene_cache, npz_path):
  source = _source_views(scene_cache)
  images = np.concatenate([split.images for split in source])
  poses = np.concatenate([split.camtoworlds for split in source])
  with np.load(npz_path) as data:
    assert sorted(data.files) == ['focal', 'images', 'poses'] and data['poses'].shape == (108, 4, 4)
  for split, views in (('train', slice(0, 100)), ('val', slice(100, None)), ('test', slice(100, None))):
    read = tiny_nerf.load_tiny_nerf_split(npz_path, split, near=2.0, far=6.0)
    np.testing.assert_array_equal(read.images, images[views])
    np.testing.assert_allclose(read.camtoworlds, poses[views], atol=1e-6)
    np.testing.assert_allclose(read.intrinsics.focal_x, source[0].intrinsics.focal_x[0], rtol=1e-6)
    # The same rays as the views it came from.
    expected, actual = source[0].rays_of_image(views.start % 12), read.rays_of_image(0)
    np.testing.assert_allclose(actual.origins, expected.origins, atol=1e-5)
    np.testing.assert_allclose(actual.directions, expected.directions, atol=1e-5)
  assert read.num_images == 8 and (read.near, read.far) == (2.0, 6.0)


def _write(path, **arrays):
  with open(path, 'wb') as f:
    np.savez(f, **arrays)
  return path


@pytest.mark.parametrize('change, expected', [
    (dict(images=None), "no 'images' array"),
    (dict(focal=None), "no 'focal' array"),
    (dict(images=np.zeros((106, 10, 10), np.float32)), "'images' must be [N, H, W, 3]"),
    (dict(images=np.full((106, 10, 10, 3), 2.0, np.float32)), 'finite values in [0, 1]'),
    (dict(images=np.full((106, 10, 10, 3), np.nan, np.float32)), 'non-finite'),
    (dict(poses=np.tile(np.eye(4), (105, 1, 1))), "'poses' must be [106, 4, 4]"),
    (dict(poses=np.tile(np.diag([2.0, 2.0, 2.0, 1.0]), (106, 1, 1))), "'poses'[0]"),
    (dict(focal=np.float64(-1.0)), "'focal' must be one positive number"),
    (dict(focal=np.array([100.0, 120.0])), "'focal' must be one positive number"),
    (dict(images=np.zeros((100, 10, 10, 3), np.float32), poses=np.tile(np.eye(4), (100, 1, 1))),
     'holds 100 views'),
    (dict(images=np.zeros((0, 10, 10, 3), np.float32), poses=np.zeros((0, 4, 4))), 'holds 0 views'),
])
def test_malformed_files_are_refused_naming_the_file_and_the_array(tmp_path, change, expected):
  arrays = dict(images=np.zeros((106, 10, 10, 3), np.float32), poses=np.tile(np.eye(4), (106, 1, 1)),
                focal=np.float64(138.9))
  arrays.update(change)
  path = _write(tmp_path / 'bad.npz', **{k: v for k, v in arrays.items() if v is not None})
  with pytest.raises(DatasetError, match='bad.npz') as error:
    tiny_nerf.load_tiny_nerf_split(path, 'train')
  assert expected in str(error.value)


def test_missing_or_unreadable_files_are_refused_with_the_download_hint(tmp_path):
  with pytest.raises(DatasetError, match='does not exist.*tiny_nerf_data.npz comes from'):
    tiny_nerf.load_tiny_nerf_split(tmp_path / 'absent.npz', 'train')
  (tmp_path / 'garbage.npz').write_bytes(b'not a zip file')
  with pytest.raises(DatasetError, match='garbage.npz is not a readable .npz file') as raised:
    tiny_nerf.load_tiny_nerf_split(tmp_path / 'garbage.npz', 'train')
  assert 'allow_pickle' not in str(raised.value)  # (NumPy's own message suggests loading it unsafely.)
  np.save(tmp_path / 'images.npy', np.zeros((106, 10, 10, 3), np.float32))
  with pytest.raises(DatasetError, match=r'images.npy is a single .npy array; expected an .npz archive'):
    tiny_nerf.load_tiny_nerf_split(tmp_path / 'images.npy', 'train')


def test_an_mlp_field_without_view_directions_has_no_view_layers_and_ignores_directions():
  field = models.MLPField(depth=2, width=16, point_max_deg=6, use_viewdirs=False)
  points = jax.random.normal(jax.random.key(0), (32, 3))
  # Compiled (op by op, ~50 tiny programs); the field with views only traced, for its parameters' names.
  variables = jax.jit(functools.partial(field.init, method='at_positions'))(jax.random.key(1), points,
                                                                           jnp.ones((32, 3)) / np.sqrt(3))
  assert set(variables['params']) == {'trunk_0', 'trunk_1', 'density', 'rgb'}
  apply = jax.jit(functools.partial(field.apply, method='at_positions'))
  one = apply(variables, points, jnp.broadcast_to(jnp.array([1.0, 0.0, 0.0]), (32, 3)))
  other = apply(variables, points, jnp.broadcast_to(jnp.array([0.0, 0.6, 0.8]), (32, 3)))
  np.testing.assert_array_equal(one.rgb, other.rgb)
  with_views = models.MLPField(depth=2, width=16, point_max_deg=6)
  init_with_views = functools.partial(with_views.init, method='at_positions')
  assert {'bottleneck', 'view'} <= set(jax.eval_shape(init_with_views, jax.random.key(1), points,
                                                      jnp.ones((32, 3)))['params'])


def test_tiny_nerf_config_trains_on_the_file(npz_path, tmp_path):
  """configs/tiny_nerf.py (its network narrowed to compile fast) learns the written file's held-out views."""
  config = tiny_nerf_config.get_config()
  config.data_dir = str(npz_path)
  config.model.mlp.update(depth=2, width=64)
  config.model.num_coarse_samples = 32
  config.batching.mode = 'all_images'
  config.optim.update(lr_init=5e-3, lr_final=5e-3)
  config.train.update(batch_size=256, num_steps=150, log_every=50, checkpoint_every=1000)
  config.eval.update(every_steps=0, num_images=1, final_num_images=2, video_frames=0, chunk_size=576,
                     lpips=())
  summary = trainer.train_and_evaluate(config, tmp_path)
  # Black background, a few coloured objects: an untrained model's grey is below 10 dB.
  assert summary['val_psnr'] > 16.0, summary  # (18.3 dB; 8.3 after one step.)
