"""Ray batches: coverage of every pixel per epoch, determinism for resumption, crops and single images."""

import numpy as np
import pytest

from jaxnerf.datasets import batching
from jaxnerf.datasets.scene import SceneSplit
from jaxnerf.errors import ConfigError
from jaxnerf.ops import camera


def _split(num_images=3, height=6, width=8):
  rng = np.random.default_rng(0)
  poses = np.stack([camera.spherical_pose(50.0 * i, 20.0, 4.0) for i in range(num_images)])
  return SceneSplit(images=rng.random((num_images, height, width, 3), dtype=np.float32), camtoworlds=poses,
                    intrinsics=camera.Intrinsics.pinhole(7.0, width, height).repeated(num_images), near=2.0,
                    far=6.0)


def test_each_epoch_visits_every_pixel_once():
  split = _split()
  batcher = batching.RayBatcher(split, batch_size=16, seed=3)
  steps_per_epoch = split.images[..., 0].size // 16
  for epoch in range(2):
    seen = [np.stack(batcher.pixel_indices(s), -1) for s in range(epoch * steps_per_epoch,
                                                                   (epoch + 1) * steps_per_epoch)]
    seen = np.concatenate(seen)
    assert len({tuple(p) for p in seen}) == split.images[..., 0].size
  first = np.stack(batcher.pixel_indices(0), -1)
  second_epoch_first = np.stack(batcher.pixel_indices(steps_per_epoch), -1)
  assert not np.array_equal(first, second_epoch_first)  # Reshuffled each epoch.


def test_batches_depend_only_on_seed_and_step():
  split = _split()
  a = batching.RayBatcher(split, batch_size=16, seed=1)
  b = batching.RayBatcher(split, batch_size=16, seed=1)
  for step in (40, 3, 7):  # Any order: a resumed run starts mid-way.
    np.testing.assert_array_equal(a.batch(step)['rgb'], b.batch(step)['rgb'])
  c = batching.RayBatcher(split, batch_size=16, seed=2)
  assert not np.array_equal(a.batch(3)['rgb'], c.batch(3)['rgb'])
  other_process = batching.RayBatcher(split, batch_size=16, seed=1, process_index=1)
  assert not np.array_equal(a.batch(3)['rgb'], other_process.batch(3)['rgb'])


def test_batch_rays_and_colours_belong_to_their_pixels():
  split = _split()
  batcher = batching.RayBatcher(split, batch_size=16)
  image, row, col = batcher.pixel_indices(5)
  batch = batcher.batch(5)
  np.testing.assert_array_equal(batch['rgb'], split.images[image, row, col])
  np.testing.assert_array_equal(batch['pixels'], np.stack([image, row, col], axis=-1))
  assert batch['pixels'].dtype == np.int32
  rays = split.rays_of_pixels(*batch['pixels'].T)  # What the train step makes of them (test_camera_table.py).
  for i in range(16):
    full = split.rays_of_image(image[i])
    np.testing.assert_allclose(rays.directions[i], full.directions[row[i], col[i]], atol=1e-6)
    np.testing.assert_allclose(rays.origins[i], full.origins[row[i], col[i]], atol=1e-6)
  assert rays.near.shape == (16, 1)


def test_precrop_draws_from_the_centre_then_everywhere():
  split = _split(height=20, width=20)
  batcher = batching.RayBatcher(split, batch_size=256, precrop_steps=10, precrop_fraction=0.5)
  _, row, col = batcher.pixel_indices(9)
  assert row.min() >= 5 and row.max() < 15 and col.min() >= 5 and col.max() < 15
  _, row, col = batcher.pixel_indices(10)
  assert row.min() < 5 or row.max() >= 15


def test_single_image_mode_draws_a_step_from_one_image():
  split = _split()
  batcher = batching.RayBatcher(split, batch_size=16, mode='single_image')
  images = [set(batcher.pixel_indices(step)[0]) for step in range(20)]
  assert all(len(s) == 1 for s in images)
  assert len(set().union(*images)) > 1


def test_unknown_mode_is_a_config_error():
  with pytest.raises(ConfigError, match='config.batching.mode'):
    batching.RayBatcher(_split(), batch_size=4, mode='random')
