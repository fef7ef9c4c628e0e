"""The project's NeRF maths against the original TensorFlow code (github.com/bmild/nerf), to float32 precision.

tests/tf_nerf_reference.json holds what the original's own functions computed on fixed inputs (written by
tests/make_tf_nerf_reference.py, which names the commit and TensorFlow version); the suite needs no
TensorFlow. Matched (original -> ours):
- run_nerf_helpers.get_embedder (multires 10 and 4) -> encoding.positional_encoding(x, 0, L), up to a
  permutation of the features, and MLPField's default octaves;
- get_rays -> camera.pixels_to_rays at pixel positions shifted by -0.5 (directions, origins, viewdirs);
- ndc_rays(near=1) -> camera.NDCSpace.convert and pixels_to_rays(ndc=...);
- raw2outputs (black and white background, and with raw_noise_std=1 given the same normal draw) ->
  compositing.volume_render with sigmoid colour and ReLU density: rgb, acc, weights, depth_map and disp_map;
- render_rays (N_importance=0, perturb=0; z_vals linear in depth and in disparity) -> volume_render;
- sample_pdf (det=True, random u, and at stratum centres) -> stepfun.invert_cdf and
  sampling.inverse_cdf_samples(None, ...); render_rays' hierarchical step -> sampling.hierarchical_samples;
- load_llff.load_llff_data (recenter, bd_factor 0.75) -> datasets.llff.read_llff: poses, bounds, intrinsics
  and NDC space; spherify -> read_llff(spherify=True).

Deliberate differences, each pinned by a test:
- positional encoding layout: the original interleaves [x, sin(2^0 x), cos(2^0 x), sin(2^1 x), ...] (each
  3 wide); ours is [x, sin(2^k x) for all k, cos(2^k x) for all k]: the same features permuted (a network's
  first layer does not care), and our cos is sin(y + pi/2) (one sin call), exact to the rounding of y + pi/2;
- pixel centres: the original's rays pass through pixel corners (i, j), ours through centres (i + 0.5,
  j + 0.5), so each of our directions is the original's shifted by half a pixel;
- deterministic samples: with perturb=0 the original's coarse samples are linspace(near, far, N), its
  det=True fine quantiles linspace(0, 1, N); ours (rng=None) are the centres (k + 0.5) / N of the N strata, in
  the same parametrisations (linear in depth or in disparity; the same inverse CDF);
- sample_pdf's guard: where a bin's CDF step is under 1e-5 (an empty bin: only the 1e-5 padding), the
  original snaps samples to the bin's start (denominator set to 1); ours inverts the CDF exactly, inside it;
- empty rays: the original's disp_map is 1 / max(1e-10, 0 / 0) = NaN; our depth is the last sample's t;
- depth: the original's depth_map is sum(w t) (not divided by acc) and disp_map 1 / (depth_map / acc); our
  depth is sum(w t) / acc (so ours * acc is its depth_map, and 1 / ours its disp_map);
- the last interval: 1e10 in both, pinned as a literal (our scene-box renderer passes the exit distance
  instead, by design); transmittance: the original's cumprod(1 - alpha + 1e-10) against our exact
  exp(-cumsum(sigma delta)), equal to 1e-10;
- spherify: both turn the cameras' mean offset from their focus to +z, but the azimuth about it is arbitrary
  (the original crosses with [.1, .2, .3], ours takes the smallest rotation), so poses agree up to one
  rotation about z.

Tolerances: float32 precision, i.e. a few ulps (eps = 1.2e-7) of the values compared: atol 1e-6 on
quantities of order 1 (colours, opacities, weights, directions; the computations are short, so a few
rounding steps) and rtol 1e-6 with atol 1e-6 on distances up to ~10. Inverse-CDF samples amplify the CDF's
rounding by a bin's width over its mass, so they get rtol 1e-5; the positional encoding is compared to
2 ulps of each feature's argument 2^k x (what rounding an argument of that size can change). A wrong
constant or formula misses by orders of magnitude more.
"""

import functools
import inspect
import json
import pathlib
import types

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from jaxnerf.datasets import llff
from jaxnerf.models import field_base
from jaxnerf.models import fields
from jaxnerf.ops import camera
from jaxnerf.ops import compositing
from jaxnerf.ops import encoding
from jaxnerf.ops import sampling
from jaxnerf.ops import stepfun

pytestmark = pytest.mark.device  # Numerics that GPUs compute their own way (benchmarks/gpu_check.py).

REFERENCE = json.loads(pathlib.Path(__file__).with_name('tf_nerf_reference.json').read_text())
EPS = np.finfo(np.float32).eps
# The original's constants, as literals (not our modules' constants, so that a wrong one fails).
FAR_DELTA = 1e10  # raw2outputs' last interval.
BD_FACTOR = 0.75  # load_llff_data's default: the nearest bound lands at 1 / 0.75.
PDF_EPS = 1e-5  # sample_pdf's padding of the weights.
NDC_NEAR = 1.0  # run_nerf.render's ndc_rays(H, W, focal, 1., ...).


def _a(value):
  return np.asarray(value, np.float32)


# Ours, compiled whole: one compilation per shape is cheaper than running each op eagerly.
@jax.jit
def _render_raw(raw, z_vals, rays_d, background, far_delta, noise):
  """Ours on the original's raw outputs: sigmoid colour, ReLU density (the paper's field activations)."""
  rgb, density = jax.nn.sigmoid(raw[..., :3]), jax.nn.relu(raw[..., 3] + noise)
  return compositing.volume_render(rgb, density, z_vals, rays_d, background, far_delta)


_positional_encoding = jax.jit(encoding.positional_encoding, static_argnums=(1, 2))
_invert_cdf = jax.jit(stepfun.invert_cdf)
_inverse_cdf_samples = jax.jit(sampling.inverse_cdf_samples, static_argnums=(3,))
_hierarchical_samples = jax.jit(sampling.hierarchical_samples, static_argnums=(3,))
_stratified_samples = jax.jit(sampling.stratified_samples, static_argnums=(3, 4))


def test_reference_provenance():
  assert REFERENCE['original']['repository'] == 'https://github.com/bmild/nerf'
  assert len(REFERENCE['original']['commit']) == 40
  assert REFERENCE['tensorflow_version'].startswith('2.')


# Positional encoding.


def _original_order(num_dims: int, num_freqs: int):
  """Indices into our layout [x, sin(all k), cos(all k)] that give the original's [x, (sin, cos) per k]."""
  return list(range(num_dims)) + [num_dims + fn * num_dims * num_freqs + k * num_dims + d
                                  for k in range(num_freqs) for fn in range(2) for d in range(num_dims)]


@pytest.mark.parametrize('name,inputs', [('points_multires_10', 'x'), ('viewdirs_multires_4', 'viewdirs')])
def test_positional_encoding_matches_embedder_up_to_permutation(name, inputs):
  reference = REFERENCE['positional_encoding']
  x, expected = _a(reference[inputs]), _a(reference[name]['embedding'])
  num_freqs = reference[name]['multires']
  ours = np.asarray(_positional_encoding(x, 0, num_freqs))
  assert ours.shape == expected.shape == (len(x), reference[name]['out_dim'])
  assert encoding.encoded_size(3, 0, num_freqs) == reference[name]['out_dim']
  permuted = ours[:, _original_order(3, num_freqs)]
  # Each feature to 2 ulps of its argument 2^k x (the input itself exactly).
  argument = np.concatenate([np.abs(x)] + [np.abs(x) * 2.0**k for k in range(num_freqs) for _ in range(2)], -1)
  np.testing.assert_array_less(np.abs(permuted - expected), 2 * EPS * np.maximum(argument, 1.0))
  np.testing.assert_array_equal(permuted[:, :3], expected[:, :3])


def test_positional_encoding_layout_differs_from_the_original():
  """Documented difference: ours groups all sines, then all cosines; the original interleaves them per
  frequency. Unpermuted, the two disagree beyond the input block."""
  reference = REFERENCE['positional_encoding']
  x, expected = _a(reference['x']), _a(reference['points_multires_10']['embedding'])
  ours = np.asarray(_positional_encoding(x, 0, 10))
  assert np.max(np.abs(ours[:, 3:] - expected[:, 3:])) > 0.5
  # Original feature 3 + 6k + 3 fn + d is sin/cos(2^k x_d); ours puts it at 3 + 30 fn + 3k + d.
  np.testing.assert_allclose(ours[:, 3 + 30 + 3 * 2 + 1], expected[:, 3 + 6 * 2 + 3 + 1], atol=1e-6)


def test_mlp_field_default_octaves_are_the_papers():
  """The original's multires 10 (points) and 4 (view directions): frequencies 2^0 .. 2^(L - 1), so octaves
  [0, L) here, and 63 and 27 features."""
  assert (fields.MLPField.point_min_deg, fields.MLPField.point_max_deg) == (0, 10)
  assert (fields.MLPField.view_min_deg, fields.MLPField.view_max_deg) == (0, 4)
  assert encoding.encoded_size(3, 0, 10) == 63 and encoding.encoded_size(3, 0, 4) == 27
  assert REFERENCE['positional_encoding']['points_multires_10']['out_dim'] == 63
  assert REFERENCE['positional_encoding']['viewdirs_multires_4']['out_dim'] == 27


# Rays and NDC.


def _camera():
  reference = REFERENCE['get_rays']
  height, width, focal = reference['height'], reference['width'], reference['focal']
  return height, width, focal, _a(reference['c2w']), camera.Intrinsics.pinhole(focal, width, height)


def test_rays_match_get_rays_at_pixel_corners():
  height, width, focal, c2w, intrinsics = _camera()
  reference = REFERENCE['get_rays']
  pix_x, pix_y = camera.pixel_grid(width, height)
  # Ours adds 0.5 to reach pixel centres; the original's rays go through (i, j) itself.
  rays = camera.pixels_to_rays(pix_x - 0.5, pix_y - 0.5, c2w, intrinsics, 0.0, 1.0)
  expected_d = _a(reference['rays_d'])
  chex.assert_trees_all_close((rays.origins, rays.directions), (_a(reference['rays_o']), expected_d), atol=1e-6)
  # run_nerf.render's viewdirs: rays_d / |rays_d|.
  chex.assert_trees_all_close(rays.viewdirs, expected_d / np.linalg.norm(expected_d, axis=-1, keepdims=True),
                              atol=1e-6)


def test_image_rays_pass_through_pixel_centres_not_corners():
  """Documented difference: our rays go through pixel centres, half a pixel right of and below the
  original's, so each direction is the original's plus R [0.5 / f, -0.5 / f, 0]."""
  height, width, focal, c2w, _ = _camera()
  rays = camera.image_rays(c2w, width, height, focal, 0.0, 1.0)
  expected = _a(REFERENCE['get_rays']['rays_d'])
  half_pixel = c2w[:, :3] @ np.array([0.5 / focal, -0.5 / focal, 0.0], np.float32)
  chex.assert_trees_all_close(rays.directions, expected + half_pixel, atol=1e-6)
  assert np.min(np.linalg.norm(rays.directions - expected, axis=-1)) > 0.1


def test_ndc_matches_ndc_rays():
  height, width, focal, c2w, intrinsics = _camera()
  reference = REFERENCE['ndc_rays']
  assert reference['near'] == NDC_NEAR
  ndc = camera.NDCSpace(focal, focal, width, height, NDC_NEAR)
  expected = (_a(reference['rays_o']), _a(reference['rays_d']))
  converted = ndc.convert(_a(REFERENCE['get_rays']['rays_o']), _a(REFERENCE['get_rays']['rays_d']))
  chex.assert_trees_all_close(converted, expected, atol=1e-6)
  pix_x, pix_y = camera.pixel_grid(width, height)
  rays = camera.pixels_to_rays(pix_x - 0.5, pix_y - 0.5, c2w, intrinsics, 0.0, 1.0, ndc=ndc)
  chex.assert_trees_all_close((rays.origins, rays.directions), expected, atol=1e-6)


# Volume rendering (raw2outputs, render_rays).


def _render(raw, z_vals, rays_d, white_bkgd=False, noise=None, far_delta=FAR_DELTA):
  noise = np.zeros(raw.shape[:-1], np.float32) if noise is None else noise
  return _render_raw(raw, z_vals, rays_d, np.float32(white_bkgd), np.float32(far_delta), noise)


def _full_rays(acc):
  """Rays with opacity (the original's disp_map is NaN on empty ones)."""
  return np.asarray(acc) > 1e-6


@pytest.mark.parametrize('case', ['black', 'white_bkgd', 'noise'])
def test_volume_render_matches_raw2outputs(case):
  reference = REFERENCE['raw2outputs']
  expected = reference['cases'][case]
  raw, z_vals, rays_d = _a(reference['raw']), _a(reference['z_vals']), _a(reference['rays_d'])
  # With noise: the same normal draw the original added (raw2outputs' noise is relu(raw + std * N(0, 1))).
  noise = _a(expected['noise']) if 'noise' in expected else None
  ours = _render(raw, z_vals, rays_d, expected['white_bkgd'], noise)
  chex.assert_trees_all_close((ours.rgb, ours.acc, ours.w),
                              (_a(expected['rgb_map']), _a(expected['acc_map']), _a(expected['weights'])),
                              atol=1e-6)
  # The original's depth_map is sum(w t), ours is that over acc; its disp_map is 1 / (depth_map / acc).
  np.testing.assert_allclose(ours.depth * ours.acc, _a(expected['depth_map']), rtol=1e-6, atol=1e-6)
  full = _full_rays(expected['acc_map'])
  np.testing.assert_allclose(1.0 / np.asarray(ours.depth)[full], _a(expected['disp_map'])[full], rtol=1e-6)


def test_empty_ray_depth_differs_from_raw2outputs_nan():
  """Documented difference: on a ray without density (ray 1) the original's disp_map is NaN (0 / 0 inside
  max(1e-10, .)); our depth is the last sample's t, a finite disparity."""
  reference = REFERENCE['raw2outputs']
  expected = reference['cases']['black']
  z_vals = _a(reference['z_vals'])
  assert _a(expected['acc_map'])[1] == 0.0 and np.isnan(_a(expected['disp_map'])[1])
  ours = _render(_a(reference['raw']), z_vals, _a(reference['rays_d']))
  assert float(ours.acc[1]) == 0.0
  assert float(ours.depth[1]) == z_vals[1, -1]


def test_last_interval_is_the_originals_1e10():
  """The original's last 'distance' is 1e10 (times |d|): ray 3 has density at its last sample only, which it
  makes opaque. Ours by default does the same (the scene-box renderer passes the box exit instead)."""
  reference = REFERENCE['raw2outputs']
  z_vals, rays_d = _a(reference['z_vals']), _a(reference['rays_d'])
  deltas = np.asarray(compositing.sample_deltas(z_vals, rays_d))
  np.testing.assert_allclose(deltas[:, -1], FAR_DELTA * np.linalg.norm(rays_d, axis=-1), rtol=1e-6)
  np.testing.assert_allclose(deltas[:, :-1], np.diff(z_vals, axis=-1) * np.linalg.norm(rays_d, axis=-1)[:, None],
                             rtol=1e-5, atol=1e-6)
  expected = reference['cases']['black']
  assert _a(expected['acc_map'])[3] == pytest.approx(1.0, abs=1e-6)
  assert _a(expected['weights'])[3, -1] == pytest.approx(1.0, abs=1e-6)
  # A finite last interval instead (as through a scene box) leaves that ray nearly transparent.
  assert float(_render(_a(reference['raw']), z_vals, rays_d).acc[3]) == pytest.approx(1.0, abs=1e-6)
  assert float(_render(_a(reference['raw']), z_vals, rays_d, far_delta=0.1).acc[3]) < 0.1


def test_density_noise_is_added_before_the_relu_like_raw2outputs():
  """The original adds std * N(0, 1) to the raw density before the ReLU; so does our field (with its own
  draw: what test_volume_render_matches_raw2outputs[noise] checks is the rest, given the same draw)."""
  raw_density = _a(REFERENCE['raw2outputs']['raw'])[..., 3]
  field = types.SimpleNamespace(density_bias=0.0, density_noise_std=1.0, density_activation='relu')
  key = jax.random.PRNGKey(0)
  # pylint: disable=protected-access
  both = jax.jit(lambda raw, key: (field_base._activate_density(field, raw, key),
                                   field_base._activate_density(field, raw, None),
                                   jax.nn.relu(raw + jax.random.normal(key, raw.shape))))
  noisy, noiseless, expected = both(raw_density, key)
  chex.assert_trees_all_close(noisy, expected, atol=1e-6)
  np.testing.assert_array_equal(noiseless, np.maximum(raw_density, 0.0))


@pytest.mark.parametrize('case', ['linear', 'lindisp'])
def test_volume_render_matches_render_rays(case):
  reference = REFERENCE['render_rays']
  expected = reference[case]
  z_vals, rays_d = _a(expected['z_vals']), _a(reference['rays_d'])
  ours = _render(_a(reference['raw']), z_vals, rays_d)
  chex.assert_trees_all_close((ours.rgb, ours.acc), (_a(expected['rgb_map']), _a(expected['acc_map'])),
                              atol=1e-6)
  np.testing.assert_allclose(1.0 / np.asarray(ours.depth), _a(expected['disp_map']), rtol=1e-6)
  points = _a(reference['rays_o'])[:, None] + z_vals[..., None] * rays_d[:, None]
  np.testing.assert_allclose(points, _a(expected['pts']), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', ['linear', 'lindisp'])
def test_deterministic_coarse_samples_are_stratum_centres_not_linspace(case):
  """Documented difference: with perturb=0 the original samples linspace(0, 1, N) of the way from near to far
  (linearly in depth, or in disparity with lindisp), ends included; ours (rng=None) the centres
  (k + 0.5) / N of the N strata, in the same parametrisation."""
  reference = REFERENCE['render_rays']
  near, far = reference['near'], reference['far']
  z_vals = _a(reference[case]['z_vals'])
  num_rays, num_samples = z_vals.shape
  lindisp = case == 'lindisp'

  def parametrised(s):
    return 1.0 / (1.0 / near * (1.0 - s) + 1.0 / far * s) if lindisp else near * (1.0 - s) + far * s

  np.testing.assert_allclose(z_vals, np.broadcast_to(parametrised(np.linspace(0.0, 1.0, num_samples)),
                                                     z_vals.shape), rtol=1e-6)
  ours = _stratified_samples(None, np.full((num_rays, 1), near, np.float32),
                                     np.full((num_rays, 1), far, np.float32), num_samples, lindisp)
  centres = (np.arange(num_samples) + 0.5) / num_samples
  np.testing.assert_allclose(ours, np.broadcast_to(parametrised(centres), z_vals.shape), rtol=1e-6)
  # The original reaches both bounds; ours stops half a stratum short of each.
  np.testing.assert_allclose(z_vals[:, [0, -1]], np.broadcast_to([near, far], (num_rays, 2)), rtol=1e-6)
  assert np.all(np.asarray(ours)[:, 0] > near + 0.05) and np.all(np.asarray(ours)[:, -1] < far - 0.05)


# Inverse-CDF sampling.


def _pdf_inputs():
  reference = REFERENCE['sample_pdf']
  return _a(reference['bins']), _a(reference['weights'])


GUARDED = (3, 2)  # sample_pdf's ray 3 at u = 0.5: inside a bin whose CDF step is under the 1e-5 guard.
PDF_CASES = ('det_5', 'det_9', 'random_16', 'centres_6')


@functools.lru_cache(maxsize=None)
def _inverted():
  """{case: (u, ours, original)}: stepfun.invert_cdf(u, bins, weights + 1e-5) at every case's u at once
  (each sample is a function of its own u only), against sample_pdf."""
  bins, weights = _pdf_inputs()
  cases = REFERENCE['sample_pdf']['cases']
  samples = [_a(cases[case]['samples']) for case in PDF_CASES]
  u = [np.broadcast_to(_a(cases[case]['u']), s.shape) for case, s in zip(PDF_CASES, samples)]
  ours = np.asarray(_invert_cdf(np.concatenate(u, axis=-1), bins, weights + PDF_EPS))
  splits = np.cumsum([s.shape[-1] for s in samples])[:-1]
  return {case: (uu, o, s) for case, uu, o, s in zip(PDF_CASES, u, np.split(ours, splits, axis=-1), samples)}


@pytest.mark.parametrize('case', PDF_CASES)
def test_invert_cdf_matches_sample_pdf(case):
  u, ours, samples = _inverted()[case]
  ours = ours.copy()
  guarded = np.zeros(samples.shape, bool)
  guarded[GUARDED[0]] = u[GUARDED[0]] == 0.5
  ours[guarded] = samples[guarded]  # test_sample_pdf_guard_differs covers these.
  chex.assert_trees_all_close(ours, samples, rtol=1e-5, atol=1e-6)


def test_inverse_cdf_samples_match_sample_pdf_at_stratum_centres():
  """sampling.inverse_cdf_samples(rng=None) uses u = (k + 0.5) / N, which the reference fed to sample_pdf;
  with 6 samples none lands (7 would put one at 0.5) in the guarded bin, so all match."""
  bins, weights = _pdf_inputs()
  expected = REFERENCE['sample_pdf']['cases']['centres_6']
  np.testing.assert_allclose(_a(expected['u'])[0], (np.arange(6) + 0.5) / 6, rtol=1e-7)
  assert inspect.signature(sampling.inverse_cdf_samples).parameters['eps'].default == PDF_EPS
  ours = _inverse_cdf_samples(None, bins, weights, 6)
  chex.assert_trees_all_close(ours, _a(expected['samples']), rtol=1e-5, atol=1e-6)


def test_sample_pdf_guard_differs():
  """Documented difference: bin 3 of ray 3 is empty (its CDF step 1e-5 / 2.00009 only); u = 0.5 lies half-way
  up that step. The original's guard (denominator < 1e-5 -> 1) puts the sample at the bin's start (plus
  (u - cdf) times its width, ~5e-6 of it); ours inverts the CDF exactly, half-way through the bin."""
  bins, _ = _pdf_inputs()
  ray, column = GUARDED
  u, ours, original = _inverted()['det_5']
  assert u[ray, column] == 0.5
  start, end = float(bins[ray, 3]), float(bins[ray, 4])
  ours, original = float(ours[ray, column]), float(original[ray, column])
  assert original == pytest.approx(start, abs=1e-5 * (end - start) + 1e-6)
  assert ours == pytest.approx(0.5 * (start + end), rel=1e-4)


def test_hierarchical_samples_match_render_rays_fine_step():
  """render_rays' fine samples: sample_pdf on the midpoints of the coarse z_vals with the interior weights,
  concatenated with the coarse z_vals and sorted (at the stratum centres, our deterministic quantiles)."""
  reference = REFERENCE['hierarchical']
  coarse = REFERENCE['raw2outputs']
  t_coarse, w_coarse = _a(coarse['z_vals']), _a(coarse['cases']['black']['weights'])
  ours = _hierarchical_samples(None, t_coarse, w_coarse, reference['num_fine'])
  chex.assert_trees_all_close(ours, _a(reference['z_vals']), rtol=1e-5, atol=1e-6)


# LLFF.


def _write_scene(directory: pathlib.Path, rows: np.ndarray):
  """The reference's poses_bounds.npy with blank PNGs of its size in images/."""
  np.save(directory / 'poses_bounds.npy', rows)
  (directory / 'images').mkdir()
  height, width = int(rows[0, 4]), int(rows[0, 9])
  for i in range(len(rows)):
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(directory / 'images' / f'img{i:03d}.png')


def _read(tmp_path, name):
  reference = REFERENCE['llff'][name]
  assert reference['recenter'] and reference['bd_factor'] == BD_FACTOR
  rows = np.asarray(reference['poses_bounds'], np.float64)
  _write_scene(tmp_path, rows)
  spherify = reference['spherify']
  capture = llff.read_llff(tmp_path, factor=1, forward_facing=not spherify, spherify=spherify)
  return capture, _a(reference['poses']), _a(reference['bds']), rows


def test_read_llff_matches_load_llff_data(tmp_path):
  capture, poses, bds, rows = _read(tmp_path, 'forward')
  np.testing.assert_allclose(capture.camtoworlds, poses[:, :, :4], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(capture.depth_bounds, bds, rtol=1e-6)
  # bd_factor: the nearest bound at 1 / 0.75, as a literal (not llff.BOUNDS_MARGIN).
  assert np.min(capture.depth_bounds) == pytest.approx(1.0 / BD_FACTOR, rel=1e-12)
  assert np.min(bds) == pytest.approx(1.0 / BD_FACTOR, rel=1e-6)
  np.testing.assert_allclose(capture.depth_bounds / rows[:, 15:17], BD_FACTOR**-1 / rows[:, 15].min(), rtol=1e-12)
  # Intrinsics: the original's hwf column (its H, W from the images, equal here).
  height, width, focal = poses[0, :, 4]
  np.testing.assert_array_equal(capture.sizes, np.broadcast_to([width, height], capture.sizes.shape))
  np.testing.assert_array_equal(capture.intrinsics.focal_x, np.full(len(poses), focal))
  np.testing.assert_array_equal(capture.intrinsics.center_x, np.full(len(poses), width / 2))
  np.testing.assert_array_equal(capture.intrinsics.center_y, np.full(len(poses), height / 2))
  # NDC: run_nerf.render's ndc_rays(H, W, focal, near=1.) in the recentred frame.
  assert capture.ndc == camera.NDCSpace(focal, focal, width, height, NDC_NEAR)


def test_read_llff_spherify_matches_up_to_a_rotation_about_z(tmp_path):
  """Documented difference: spherify_poses fixes the azimuth about the new z by crossing with [.1, .2, .3],
  ours by the smallest rotation taking the mean offset to z; otherwise (the focus as the origin, the mean
  offset along +z, the rms distance 1, the bounds' scale) the same."""
  capture, poses, bds, _ = _read(tmp_path, 'spherify')
  np.testing.assert_allclose(capture.depth_bounds, bds, rtol=1e-5)
  rotation = capture.camtoworlds[0, :, :3] @ poses[0, :, :3].T
  np.testing.assert_allclose(rotation[2], [0.0, 0.0, 1.0], atol=1e-5)  # About z.
  np.testing.assert_allclose(rotation[:, 2], [0.0, 0.0, 1.0], atol=1e-5)
  np.testing.assert_allclose(capture.camtoworlds[:, :, :3], rotation @ poses[:, :, :3], atol=1e-5)
  np.testing.assert_allclose(capture.camtoworlds[:, :, 3], poses[:, :, 3] @ rotation.T, atol=1e-5)
  np.testing.assert_allclose(np.sqrt(np.mean(np.sum(capture.camtoworlds[:, :, 3]**2, -1))), 1.0, rtol=1e-6)
