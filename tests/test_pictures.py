"""Pictures registered like metrics (outputs/pictures.py): a rendering gets every picture whose key it holds."""

import numpy as np

from jaxnerf.outputs import pictures


def _rendering(height=4, width=5, **extras):
  rng = np.random.default_rng(0)
  acc = rng.uniform(0, 1, (height, width)).astype(np.float32)
  return {'rgb': rng.uniform(0, 1, (height, width, 3)), 'depth': rng.uniform(2, 6, (height, width)),
          'median_depth': rng.uniform(2, 6, (height, width)), 'acc': acc,
          **{k: v * acc[..., None] for k, v in extras.items()}}


def test_a_plain_rendering_gets_the_pictures_it_holds_rgb_first():
  drawn = pictures.draw(_rendering(), pictures.Frame(2.0, 6.0, 1.0))
  assert list(drawn) == ['rgb', 'depth', 'median_depth', 'acc']
  assert all(p.shape == (4, 5, 3) and 0 <= p.min() and p.max() <= 1 for p in drawn.values())


def test_refnerf_parts_are_drawn_where_rendered():
  rng = np.random.default_rng(1)
  parts = {'diffuse': rng.uniform(0, 1, (4, 5, 3)), 'tint': rng.uniform(0, 1, (4, 5, 3)),
           'specular': rng.uniform(0, 1, (4, 5, 3)), 'roughness': np.full((4, 5, 1), 0.5),
           'normals_pred': rng.normal(size=(4, 5, 3))}
  rendering = _rendering(**parts)
  drawn = pictures.draw(rendering, pictures.Frame(2.0, 6.0, 0.0))
  assert {'diffuse', 'tint', 'specular', 'roughness', 'normals_pred'} <= set(drawn)
  # On a black background a composite shows as it is; the roughness is the mean along the ray (0.5 each).
  np.testing.assert_allclose(drawn['diffuse'], np.clip(rendering['diffuse'], 0, 1))
  np.testing.assert_allclose(drawn['specular'], np.clip(rendering['specular'], 0, 1))
  opaque = rendering['acc'] > 0.01
  np.testing.assert_allclose(drawn['roughness'][opaque] / rendering['acc'][opaque][:, None],
                             np.broadcast_to(pictures.visualization.turbo(np.array(0.5)), (opaque.sum(), 3)),
                             rtol=1e-5)


def test_a_registered_picture_is_drawn_for_renderings_that_hold_its_key():
  pictures.register_picture('half_rgb', renders='rgb')(lambda r, f: r['rgb'] / 2)
  try:
    drawn = pictures.draw(_rendering(), pictures.Frame(2.0, 6.0, 1.0))
    np.testing.assert_allclose(drawn['half_rgb'], _rendering()['rgb'] / 2)
  finally:
    del pictures.PICTURES['half_rgb']


def test_videos_are_written_of_the_asked_pictures_that_the_frames_hold(tmp_path):
  from jaxnerf.outputs import evaluation  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(2)
  frame = pictures.Frame(2.0, 6.0, 1.0)
  frames = [pictures.draw(_rendering(diffuse=rng.uniform(0, 1, (4, 5, 3)), tint=rng.uniform(0, 1, (4, 5, 3))), frame)
            for _ in range(3)]
  paths = evaluation.write_video(tmp_path, 'orbit', frames, fps=4, pictures_wanted=('depth', 'diffuse', 'normals'))
  assert [p.name for p in paths] == ['orbit.gif', 'orbit_depth.gif', 'orbit_diffuse.gif']  # No normals rendered.
  with Image.open(tmp_path / 'orbit_diffuse.gif') as gif:
    assert gif.n_frames == 3 and gif.size == (5, 4)
  assert evaluation.is_picture_list(('rgb', 'tint')) and not evaluation.is_picture_list(('rgb', 'rgb'))
  assert not evaluation.is_picture_list(()) and not evaluation.is_picture_list('rgb')
