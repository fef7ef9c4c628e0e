"""Tests of jaxnerf.metrics (PSNR, SSIM against a brute-force numpy SSIM) and jaxnerf.outputs.visualization."""

import chex
import numpy as np
import pytest
from PIL import Image

from jaxnerf import metrics
from jaxnerf.outputs import visualization


def _brute_force_ssim(x, y, max_value=1.0, size=11, sigma=1.5, k1=0.01, k2=0.03):
  """SSIM with explicit 2D Gaussian windows over every valid position of every channel, in float64."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
  window = np.outer(g, g) / np.sum(g) ** 2
  c1, c2 = (k1 * max_value) ** 2, (k2 * max_value) ** 2
  height, width, channels = x.shape
  values = []
  for c in range(channels):
    for i in range(height - size + 1):
      for j in range(width - size + 1):
        px, py = x[i:i + size, j:j + size, c], y[i:i + size, j:j + size, c]
        mu_x, mu_y = np.sum(window * px), np.sum(window * py)
        var_x = np.sum(window * (px - mu_x) ** 2)
        var_y = np.sum(window * (py - mu_y) ** 2)
        cov = np.sum(window * (px - mu_x) * (py - mu_y))
        values.append((2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)))
  return np.mean(values)


def _random_pair(shape, noise, seed):
  rng = np.random.default_rng(seed)
  x = rng.uniform(size=shape)
  y = np.clip(x + noise * rng.normal(size=shape), 0.0, 1.0)
  return x.astype(np.float32), y.astype(np.float32)


# PSNR.


@pytest.mark.parametrize('mse, expected', [(0.01, 20.0), (1.0, 0.0), (1e-4, 40.0), (0.1, 10.0), (0.5, 3.0103)])
def test_mse_to_psnr_closed_form(mse, expected):
  np.testing.assert_allclose(metrics.mse_to_psnr(mse), expected, atol=1e-4)


def test_psnr_of_constant_error():
  image = np.random.default_rng(0).uniform(0.2, 0.8, (8, 6, 3)).astype(np.float32)
  np.testing.assert_allclose(metrics.psnr(image, image + 0.1), 20.0, atol=1e-3)  # MSE 0.01.
  np.testing.assert_allclose(metrics.psnr(image, image - 0.01), 40.0, atol=1e-2)
  assert np.isposinf(metrics.psnr(image, image))


# SSIM.


def test_ssim_identical_images_is_one():
  x, _ = _random_pair((16, 16, 3), 0.0, seed=1)
  np.testing.assert_allclose(metrics.ssim(x, x), 1.0, atol=1e-6)


@pytest.mark.parametrize('shape, noise, seed', [((16, 16, 3), 0.1, 2), ((14, 19, 3), 0.3, 3), ((12, 11, 1), 0.05, 4)])
def test_ssim_matches_brute_force(shape, noise, seed):
  x, y = _random_pair(shape, noise, seed)
  expected = _brute_force_ssim(x, y)
  assert expected < 0.99  # The pair differs enough for the test to mean something.
  np.testing.assert_allclose(metrics.ssim(x, y), expected, atol=1e-4)


def test_ssim_matches_brute_force_with_other_window_and_range():
  x, y = _random_pair((13, 15, 3), 0.2, seed=5)
  np.testing.assert_allclose(metrics.ssim(x, y, filter_size=7, filter_sigma=1.0),
                             _brute_force_ssim(x, y, size=7, sigma=1.0), atol=1e-4)
  # Rescaling both images and max_value leaves SSIM unchanged.
  np.testing.assert_allclose(metrics.ssim(255 * x, 255 * y, max_value=255.0), metrics.ssim(x, y), atol=1e-4)


def test_ssim_is_symmetric_and_structured_images_beat_noise():
  x, y = _random_pair((16, 16, 3), 0.1, seed=6)
  _, z = _random_pair((16, 16, 3), 0.5, seed=6)
  np.testing.assert_allclose(metrics.ssim(x, y), metrics.ssim(y, x), atol=1e-6)
  assert metrics.ssim(x, y) > metrics.ssim(x, z)


@pytest.mark.parametrize('a, b', [(0.5, 0.5), (0.2, 0.7), (0.0, 1.0)])
def test_ssim_constant_images_closed_form(a, b):
  # No variance: SSIM reduces to the luminance term (2ab + c1) / (a^2 + b^2 + c1).
  c1 = 0.01**2
  x, y = np.full((12, 12, 3), a, np.float32), np.full((12, 12, 3), b, np.float32)
  np.testing.assert_allclose(metrics.ssim(x, y), (2 * a * b + c1) / (a * a + b * b + c1), rtol=1e-4)


def test_ssim_constant_offset_only_changes_luminance():
  # y = x + c has the same variance and cov(x, y) = var(x), so the contrast-structure term is exactly 1 and
  # SSIM is the mean luminance term of the local means.
  x = np.random.default_rng(7).uniform(0.0, 0.8, (15, 15, 3)).astype(np.float32)
  y = x + np.float32(0.2)
  size, sigma, c1 = 11, 1.5, 0.01**2
  g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
  window = np.outer(g, g) / np.sum(g) ** 2
  terms = []
  for c in range(3):
    for i in range(15 - size + 1):
      for j in range(15 - size + 1):
        mu = np.sum(window * x[i:i + size, j:j + size, c].astype(np.float64))
        terms.append((2 * mu * (mu + 0.2) + c1) / (mu**2 + (mu + 0.2) ** 2 + c1))
  expected = np.mean(terms)
  assert expected < 0.99
  np.testing.assert_allclose(metrics.ssim(x, y), expected, atol=1e-4)
  np.testing.assert_allclose(metrics.ssim(x, y), _brute_force_ssim(x, y), atol=1e-4)


# Visualization.


def test_turbo_shape_range_and_clipping():
  x = np.linspace(-0.5, 1.5, 41).reshape(1, 41)
  colours = visualization.turbo(x)
  chex.assert_shape(colours, (1, 41, 3))
  assert colours.dtype == np.float32
  assert np.all(colours >= 0.0) and np.all(colours <= 1.0)
  np.testing.assert_array_equal(visualization.turbo(-3.0), visualization.turbo(0.0))
  np.testing.assert_array_equal(visualization.turbo(7.0), visualization.turbo(1.0))
  # Turbo runs from blue through green to red.
  low, mid, high = visualization.turbo(np.array([0.1, 0.5, 0.9]))
  assert low[2] > low[0] and np.argmax(mid) == 1 and high[0] > high[2]


def test_colorize_depth():
  height, width = 6, 8
  depth = np.tile(np.linspace(2.0, 6.0, width, dtype=np.float32), (height, 1))
  acc = np.ones((height, width), np.float32)
  acc[:, -2:] = 0.0  # Empty space on the right.
  acc[0, 0] = 0.5  # Partially transparent: blended with the background.
  image = visualization.colorize_depth(depth, acc, near=1.0, far=7.0, background=0.25)
  chex.assert_shape(image, (height, width, 3))
  assert np.all(image >= 0.0) and np.all(image <= 1.0)
  np.testing.assert_allclose(image[:, -2:], 0.25, atol=1e-7)
  near_colour, far_colour = image[1, 0], image[1, width - 3]  # Nearest and farthest opaque pixels.
  assert near_colour[0] > near_colour[2]  # Near is red...
  assert near_colour[0] > far_colour[0] + 0.2 and far_colour[2] > near_colour[2] + 0.05  # ...far is bluer.
  np.testing.assert_allclose(image[0, 0], 0.5 * image[1, 0] + 0.5 * 0.25, atol=1e-6)


def test_colorize_depth_all_empty():
  image = visualization.colorize_depth(np.full((3, 4), 5.0), np.zeros((3, 4)), 1.0, 9.0, background=0.0)
  chex.assert_shape(image, (3, 4, 3))
  np.testing.assert_array_equal(image, 0.0)


def test_to_uint8():
  image = np.array([[[-0.5, 0.0, 0.5], [1.0, 2.0, np.nan]]])
  np.testing.assert_array_equal(visualization.to_uint8(image), [[[0, 0, 128], [255, 255, 0]]])


def test_write_gif_round_trip(tmp_path):
  height, width = 10, 14
  colours = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)]
  frames = [np.broadcast_to(np.array(c, np.float32), (height, width, 3)).copy() for c in colours]
  frames[1][2:5, 3:9] = 0.0  # Not all frames uniform.
  path = tmp_path / 'sub' / 'orbit.gif'
  visualization.write_gif(path, frames, fps=10)
  with Image.open(path) as gif:
    assert gif.format == 'GIF'
    assert gif.size == (width, height)
    assert gif.n_frames == len(frames)
    assert gif.info.get('loop') == 0
    for index, colour in enumerate(colours):
      gif.seek(index)
      assert gif.info.get('duration') == 100
      pixels = np.asarray(gif.convert('RGB'))
      np.testing.assert_array_equal(pixels[-1, -1], np.array(colour) * 255)
    gif.seek(1)
    np.testing.assert_array_equal(np.asarray(gif.convert('RGB'))[3, 4], [0, 0, 0])


def test_save_png_round_trip(tmp_path):
  image = np.random.default_rng(8).uniform(size=(5, 7, 3)).astype(np.float32)
  path = tmp_path / 'a' / 'b.png'
  visualization.save_png(path, image)
  with Image.open(path) as png:
    np.testing.assert_array_equal(np.asarray(png), visualization.to_uint8(image))


def test_depth_error_is_scored_where_the_truth_has_depth_and_only_over_hits():
  rng = np.random.default_rng(7)
  true_depth = rng.uniform(2, 6, (8, 8)).astype(np.float32)
  true_depth[:2] = np.inf  # Rays that hit nothing.
  rendered_depth = true_depth + rng.normal(0, 0.1, (8, 8)).astype(np.float32)
  rendered_depth[:2] = 6.0
  image = rng.random((8, 8, 3)).astype(np.float32)
  rendering = {'rgb': image, 'depth': rendered_depth}
  scored = metrics.view_metrics(rendering, {'rgb': image, 'depth': true_depth})
  assert sorted(scored) == ['depth_mae', 'psnr', 'ssim']
  brute = sum(abs(float(rendered_depth[i, j]) - float(true_depth[i, j])) for i in range(2, 8) for j in range(8))
  assert scored['depth_mae'] == pytest.approx(brute / 48, rel=1e-6)
  assert sorted(metrics.view_metrics(rendering, {'rgb': image})) == ['psnr', 'ssim']  # No depth, no error.
  assert np.isnan(metrics.view_metrics(rendering, {'rgb': image, 'depth': np.full((8, 8), np.inf)})['depth_mae'])


def test_a_metric_registered_outside_the_library_is_computed_and_averaged(monkeypatch):
  from jaxnerf.outputs import evaluation
  monkeypatch.setitem(metrics.IMAGE_METRICS, 'mean_opacity',
                      metrics.ImageMetric(lambda rendering, truth: float(np.mean(rendering['acc'])), ('rgb',), 'acc'))
  image = np.zeros((4, 4, 3), np.float32)
  per_image = [{'name': str(i), **metrics.view_metrics({'rgb': image, 'acc': np.full((4, 4), a)}, {'rgb': image})}
               for i, a in enumerate([0.2, 0.6])]
  assert 'mean_opacity' not in metrics.view_metrics({'rgb': image}, {'rgb': image})  # Nothing to score.
  mean = evaluation.mean_metrics(per_image)
  assert mean['mean_opacity'] == pytest.approx(0.4) and np.isinf(mean['psnr'])


def test_normal_error_is_the_mean_angle_over_hits_for_models_that_render_normals():
  true_normals = np.zeros((4, 4, 3), np.float32)
  true_normals[1:, :, 2] = 1.0  # The first row hits nothing.
  tilt = np.deg2rad(np.array([10.0, 20.0, 30.0, 40.0]))
  rendered = np.zeros((4, 4, 3), np.float32)
  rendered[..., 0], rendered[..., 2] = np.sin(tilt), np.cos(tilt)
  rendered *= 0.5  # Composited normals are shorter where the opacity is below 1: the angle is what counts.
  image = np.zeros((4, 4, 3), np.float32)
  scored = metrics.view_metrics({'rgb': image, 'normals': rendered}, {'rgb': image, 'normals': true_normals})
  assert scored['normal_mae_deg'] == pytest.approx(25.0, abs=1e-3)
  assert 'normal_mae_deg' not in metrics.view_metrics({'rgb': image}, {'rgb': image, 'normals': true_normals})
  # Ref-NeRF's predicted normals, where a model renders them, are scored beside the density's.
  both = metrics.view_metrics({'rgb': image, 'normals': rendered, 'normals_pred': -rendered},
                              {'rgb': image, 'normals': true_normals})
  assert both['normal_pred_mae_deg'] == pytest.approx(155.0, abs=1e-3) and 'normal_pred_mae_deg' not in scored


def test_each_region_is_scored_on_its_own_pixels_as_a_brute_force_loop_scores_it():
  rng = np.random.default_rng(0)
  truth_rgb, rendered_rgb = rng.uniform(size=(2, 6, 5, 3))
  regions = rng.integers(0, len(metrics.REGIONS), size=(6, 5)).astype(np.uint8)
  regions[0, 0], regions[0, 1] = metrics.REGIONS.index('glossy'), metrics.REGIONS.index('mirror')
  true_normals = np.where((regions == 0)[..., None], 0.0, [0.0, 0.0, 1.0])
  angles = rng.uniform(0.0, 60.0, size=(6, 5))
  rendered_normals = np.stack([np.sin(np.radians(angles)), np.zeros_like(angles), np.cos(np.radians(angles))], -1)
  scored = metrics.view_metrics({'rgb': rendered_rgb, 'normals': rendered_normals},
                                {'rgb': truth_rgb, 'normals': true_normals, 'regions': regions})
  for name, members in [(r, (r,)) for r in metrics.REGIONS] + [('shiny', ('glossy', 'mirror'))]:
    pixels = [(i, j) for i in range(6) for j in range(5) if metrics.REGIONS[regions[i, j]] in members]
    squared = [(rendered_rgb[i, j, c] - truth_rgb[i, j, c])**2 for i, j in pixels for c in range(3)]
    assert scored[f'psnr_{name}'] == pytest.approx(-10 * np.log10(sum(squared) / len(squared)), rel=1e-9), name
    if name != 'background':
      assert scored[f'normal_mae_deg_{name}'] == pytest.approx(np.mean([angles[p] for p in pixels]), rel=1e-6)
  assert 'normal_mae_deg_background' not in scored  # The background has no surface.
  # The whole image's metrics are the region's union's.
  assert scored['normal_mae_deg'] == pytest.approx(np.mean(angles[regions > 0]), rel=1e-6)
  # A view without a region scores NaN there, which the mean over views leaves out; a scene without region
  # maps has no region scores at all.
  all_matte = np.full((6, 5), metrics.REGIONS.index('matte'), np.uint8)
  matte_only = metrics.view_metrics({'rgb': rendered_rgb}, {'rgb': truth_rgb, 'regions': all_matte})
  assert np.isnan(matte_only['psnr_mirror']) and np.isnan(matte_only['psnr_shiny'])
  assert matte_only['psnr_matte'] == pytest.approx(matte_only['psnr'], rel=1e-5)
  assert 'normal_mae_deg_matte' not in matte_only  # No normals rendered, none scored.
  assert sorted(metrics.view_metrics({'rgb': rendered_rgb}, {'rgb': truth_rgb})) == ['psnr', 'ssim']
  # Over views, a region some view shows is the mean where it is shown; one that no view shows is no score.
  from jaxnerf.outputs import evaluation
  matte_view = metrics.view_metrics({'rgb': rendered_rgb, 'normals': rendered_normals},
                                    {'rgb': truth_rgb, 'normals': true_normals, 'regions': all_matte})
  mean = evaluation.mean_metrics([{'name': 'a', **scored}, {'name': 'b', **matte_view}])
  assert mean['psnr_mirror'] == pytest.approx(scored['psnr_mirror'])
  assert mean['psnr_matte'] == pytest.approx((scored['psnr_matte'] + matte_view['psnr_matte']) / 2)
  assert 'psnr_mirror' not in evaluation.mean_metrics([{'name': 'b', **matte_view}])
