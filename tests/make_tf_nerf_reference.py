"""Writes tests/tf_nerf_reference.json: what the original NeRF code (Mildenhall et al.'s TensorFlow release,
github.com/bmild/nerf) computes on fixed inputs, for tests/test_tf_nerf_match.py.

Run once in a throw-away environment; the suite never needs TensorFlow:

  git clone https://github.com/bmild/nerf /tmp/bmild_nerf
  git -C /tmp/bmild_nerf checkout 14c55567a6d0fbd75d3fd12b0411f98160ba3237
  python3 -m venv /tmp/tfref && /tmp/tfref/bin/pip install tensorflow-cpu==2.16.2 'numpy<2' imageio==2.9.0
  /tmp/tfref/bin/python tests/make_tf_nerf_reference.py /tmp/bmild_nerf

(the argument: a checkout of the original repository, whose commit is recorded; a checkout without .git,
e.g. from `git archive`, takes the commit as a second argument). imageio 2.9 because load_llff.py reads PNGs
with `ignoregamma`, which later imageio rejects; the original code runs on TensorFlow 2 through
tf.compat.v1 with eager execution, which 2.16 still provides.

Everything is the original's own code, imported from the checkout, never copied here:
- run_nerf_helpers.get_embedder (the Embedder, for multires 10 and 4: points and view directions);
- run_nerf_helpers.get_rays and ndc_rays (near plane 1, as run_nerf.render calls it);
- raw2outputs, a closure inside run_nerf.render_rays: rebuilt from render_rays' code object with its two
  free variables (raw_noise_std, white_bkgd) bound, so that weights and depth come out too; the script
  checks that it gives what render_rays itself gives. Noise: the global seed is set, the normal draw that
  raw2outputs makes is drawn, the seed is set again and raw2outputs run, so the recorded noise is the one it
  added (checked: raw2outputs without noise on raw + noise gives the same outputs);
- run_nerf.render_rays with N_importance=0 and perturb=0 and a network_query_fn that returns fixed raw
  arrays and records the points it is given (the coarse z_vals, linear in depth and in disparity);
- run_nerf_helpers.sample_pdf with det=True, with random u (replayed from the seed as the noise), and at
  the stratum centres (k + 0.5) / N that jaxnerf's deterministic sampling uses (fed to the original by
  replacing tf.random.uniform for that call); and the hierarchical step of render_rays (sample_pdf on the
  midpoints of the coarse z_vals with the interior weights, concatenated and sorted);
- load_llff.load_llff_data (recenter=True, bd_factor=0.75, spherify False and True) on two tiny synthetic
  scenes written to a temporary directory (poses_bounds.npy and PNGs in images/).
Inputs are float32 (float64 for poses_bounds.npy) from fixed seeds; float32 values are written in their
shortest round-trip form.
"""

import contextlib
import json
import pathlib
import subprocess
import sys
import tempfile
import types

import numpy as np

OUT = pathlib.Path(__file__).with_name('tf_nerf_reference.json')
SEED = 20200319  # NeRF's arXiv date.


def _f32(array):
  """Nested lists of the float32 values of `array`, each the shortest decimal that reads back to it."""
  array = np.asarray(array, np.float32)
  return np.array([float(str(v)) for v in array.ravel()]).reshape(array.shape).tolist()


def _f64(array):
  return np.asarray(array, np.float64).tolist()


def _raw2outputs(run_nerf, raw_noise_std: float, white_bkgd: bool):
  """render_rays' inner raw2outputs with its free variables bound."""
  code = next(c for c in run_nerf.render_rays.__code__.co_consts
              if isinstance(c, types.CodeType) and c.co_name == 'raw2outputs')
  values = {'raw_noise_std': raw_noise_std, 'white_bkgd': white_bkgd}
  return types.FunctionType(code, run_nerf.__dict__, 'raw2outputs', None,
                            tuple(types.CellType(values[name]) for name in code.co_freevars))


@contextlib.contextmanager
def _fixed_uniform(tf, u):
  """tf.random.uniform returning `u` (sample_pdf's only random draw) for the duration."""
  original = tf.random.uniform
  tf.random.uniform = lambda shape, *args, **kwargs: tf.constant(u, tf.float32)
  try:
    yield
  finally:
    tf.random.uniform = original


def positional_encoding(helpers, rng):
  x = rng.uniform(-1.5, 1.5, (6, 3)).astype(np.float32)
  x[0] = [0.0, 1.0, -1.0]
  viewdirs = rng.normal(size=(4, 3))
  viewdirs = (viewdirs / np.linalg.norm(viewdirs, axis=-1, keepdims=True)).astype(np.float32)
  result = {'x': _f32(x), 'viewdirs': _f32(viewdirs)}
  for name, inputs, multires in (('points_multires_10', x, 10), ('viewdirs_multires_4', viewdirs, 4)):
    embed, out_dim = helpers.get_embedder(multires, 0)
    result[name] = {'multires': multires, 'out_dim': int(out_dim), 'embedding': _f32(embed(inputs).numpy())}
  return result


def rays_and_ndc(tf, helpers, rng):
  height, width, focal = 5, 6, 4.5
  # A camera near the recentred frame (NDC needs the scene in front of z = -1): a small rotation and offset.
  angles = rng.uniform(-0.15, 0.15, 3)
  rotation = np.eye(3)
  for axis, angle in enumerate(angles):
    c, s = np.cos(angle), np.sin(angle)
    r = np.eye(3)
    i, j = [k for k in range(3) if k != axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    rotation = rotation @ r
  c2w = np.concatenate([rotation, rng.uniform(-0.2, 0.2, (3, 1))], axis=1).astype(np.float32)
  rays_o, rays_d = helpers.get_rays(height, width, focal, tf.constant(c2w))
  rays_o_np, rays_d_np = helpers.get_rays_np(height, width, focal, c2w)
  assert np.allclose(rays_d.numpy(), rays_d_np, atol=1e-6) and np.allclose(rays_o.numpy(), rays_o_np)
  ndc_o, ndc_d = helpers.ndc_rays(height, width, focal, 1.0, rays_o, rays_d)
  return {'get_rays': {'height': height, 'width': width, 'focal': focal, 'c2w': _f32(c2w),
                       'rays_o': _f32(rays_o.numpy()), 'rays_d': _f32(rays_d.numpy())},
          'ndc_rays': {'near': 1.0, 'rays_o': _f32(ndc_o.numpy()), 'rays_d': _f32(ndc_d.numpy())}}


def _raw_inputs(rng):
  """raw [6, 12, 4], z_vals [6, 12] and rays_d [6, 3]: ray 0 and 5 generic, ray 1 empty (all raw density
  negative), ray 2 opaque at its first sample, ray 3 with density at its last sample only (which the 1e10
  interval makes opaque), ray 4 faint."""
  num_rays, num_samples = 6, 12
  raw = np.concatenate([rng.normal(0.0, 2.0, (num_rays, num_samples, 3)),
                        rng.normal(0.0, 3.0, (num_rays, num_samples, 1))], axis=-1)
  raw[1, :, 3] = -np.abs(raw[1, :, 3]) - 0.1
  raw[2, 0, 3] = 1000.0
  raw[3, :, 3] = -1.0
  raw[3, -1, 3] = 0.5
  raw[4, :, 3] = 0.01 * np.abs(raw[4, :, 3])
  z_vals = np.sort(rng.uniform(2.0, 6.0, (num_rays, num_samples)), axis=-1)
  rays_d = rng.normal(size=(num_rays, 3))
  rays_d *= rng.uniform(0.5, 2.0, (num_rays, 1)) / np.linalg.norm(rays_d, axis=-1, keepdims=True)
  return raw.astype(np.float32), z_vals.astype(np.float32), rays_d.astype(np.float32)


def volume_rendering(tf, run_nerf, rng):
  raw, z_vals, rays_d = _raw_inputs(rng)
  names = ('rgb_map', 'disp_map', 'acc_map', 'weights', 'depth_map')
  result = {'raw': _f32(raw), 'z_vals': _f32(z_vals), 'rays_d': _f32(rays_d), 'cases': {}}
  outputs = {}
  for case, white_bkgd in (('black', False), ('white_bkgd', True)):
    outputs[case] = [o.numpy() for o in _raw2outputs(run_nerf, 0.0, white_bkgd)(tf.constant(raw),
                                                                                   tf.constant(z_vals),
                                                                                   tf.constant(rays_d))]
    result['cases'][case] = {'white_bkgd': white_bkgd, 'raw_noise_std': 0.0,
                             **{n: _f32(o) for n, o in zip(names, outputs[case])}}
  # With noise: the draw replayed from the seed.
  std, seed = 1.0, SEED
  tf.random.set_seed(seed)
  noise = (tf.random.normal(raw[..., 3].shape) * std).numpy()
  tf.random.set_seed(seed)
  noisy = [o.numpy() for o in _raw2outputs(run_nerf, std, False)(tf.constant(raw), tf.constant(z_vals),
                                                                  tf.constant(rays_d))]
  shifted = raw.copy()
  shifted[..., 3] += noise
  replay = [o.numpy() for o in _raw2outputs(run_nerf, 0.0, False)(tf.constant(shifted), tf.constant(z_vals),
                                                                   tf.constant(rays_d))]
  assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(noisy, replay)), 'noise replay failed'
  result['cases']['noise'] = {'white_bkgd': False, 'raw_noise_std': std, 'seed': seed, 'noise': _f32(noise),
                              **{n: _f32(o) for n, o in zip(names, noisy)}}
  return result, outputs['black']


def render_rays(tf, run_nerf, rng):
  """render_rays itself, on rays whose z_vals it places (perturb=0: linspace from near to far)."""
  num_rays, num_samples = 3, 8
  rays_o = rng.normal(size=(num_rays, 3)).astype(np.float32)
  rays_d = rng.normal(size=(num_rays, 3)).astype(np.float32)
  near, far = 2.0, 6.0
  raw = np.concatenate([rng.normal(0.0, 2.0, (num_rays, num_samples, 3)),
                        np.abs(rng.normal(0.0, 0.5, (num_rays, num_samples, 1)))], axis=-1).astype(np.float32)
  batch = np.concatenate([rays_o, rays_d, np.full((num_rays, 1), near), np.full((num_rays, 1), far)],
                         axis=-1).astype(np.float32)
  result = {'rays_o': _f32(rays_o), 'rays_d': _f32(rays_d), 'near': near, 'far': far, 'raw': _f32(raw)}
  for lindisp in (False, True):
    seen = []

    def query(pts, viewdirs, network_fn, seen=seen):
      del viewdirs, network_fn
      seen.append(pts.numpy())
      return tf.constant(raw)

    ret = run_nerf.render_rays(tf.constant(batch), network_fn=None, network_query_fn=query,
                               N_samples=num_samples, lindisp=lindisp, perturb=0.0, N_importance=0,
                               white_bkgd=False, raw_noise_std=0.0)
    # The z_vals behind the points it queried (z = (pts - o) . d / |d|^2).
    z_vals = np.sum((seen[0] - rays_o[:, None]) * rays_d[:, None], -1) / np.sum(rays_d**2, -1)[:, None]
    direct = _raw2outputs(run_nerf, 0.0, False)(tf.constant(raw), tf.constant(z_vals.astype(np.float32)),
                                                 tf.constant(rays_d))
    assert np.allclose(direct[0].numpy(), ret['rgb_map'].numpy(), atol=1e-5)
    result['lindisp' if lindisp else 'linear'] = {
        'lindisp': lindisp, 'pts': _f32(seen[0]), 'z_vals': _f32(z_vals),
        **{k: _f32(ret[k].numpy()) for k in ('rgb_map', 'disp_map', 'acc_map')}}
  return result


def sample_pdf(tf, helpers, rng, coarse_z_vals, coarse_weights):
  """sample_pdf on bins [5, 9] and weights [5, 8]: ray 0 generic, ray 1 without weight (uniform through the
  1e-5), ray 2 a spike, ray 3 two lobes with an empty bin between them whose cdf step u = 0.5 falls inside (the
  original's denominator guard), ray 4 generic."""
  num_rays, num_bins = 5, 8
  bins = np.sort(rng.uniform(1.0, 5.0, (num_rays, num_bins + 1)), axis=-1)
  weights = rng.uniform(0.0, 1.0, (num_rays, num_bins))
  weights[1] = 0.0
  weights[2] = 0.0
  weights[2, 5] = 0.9
  # Bin 3 empty: its cdf step, 1e-5 / 2.00009, is under the guard's 1e-5, and u = 0.5 lies half-way up it
  # (the mass before it exceeds the mass after it by the 1e-5 added to one bin).
  weights[3] = [0.0, 0.6, 0.40001, 0.0, 0.5, 0.5, 0.0, 0.0]
  bins, weights = bins.astype(np.float32), weights.astype(np.float32)
  call = lambda n, det: helpers.sample_pdf(tf.constant(bins), tf.constant(weights), n, det=det).numpy()
  result = {'bins': _f32(bins), 'weights': _f32(weights), 'cases': {}}
  for n in (5, 9):
    result['cases'][f'det_{n}'] = {'det': True, 'u': _f32(np.linspace(0.0, 1.0, n)), 'samples': _f32(call(n, True))}
  tf.random.set_seed(SEED)
  u = tf.random.uniform([num_rays, 16]).numpy()
  tf.random.set_seed(SEED)
  result['cases']['random_16'] = {'det': False, 'seed': SEED, 'u': _f32(u), 'samples': _f32(call(16, False))}
  centres = np.broadcast_to((np.arange(6) + 0.5) / 6, (num_rays, 6)).astype(np.float32)
  with _fixed_uniform(tf, centres):
    result['cases']['centres_6'] = {'det': False, 'u': _f32(centres), 'samples': _f32(call(6, False))}
  # render_rays' hierarchical step on the coarse samples and weights of volume_rendering's 'black' case, at
  # the stratum centres: z_samples = sample_pdf(mid(z_vals), weights[..., 1:-1]); all z_vals sorted.
  num_fine = 10
  mids = 0.5 * (coarse_z_vals[..., 1:] + coarse_z_vals[..., :-1])
  centres = np.broadcast_to((np.arange(num_fine) + 0.5) / num_fine, (len(mids), num_fine)).astype(np.float32)
  with _fixed_uniform(tf, centres):
    z_samples = helpers.sample_pdf(tf.constant(mids), tf.constant(coarse_weights[..., 1:-1]), num_fine, det=False)
  z_all = tf.sort(tf.concat([tf.constant(coarse_z_vals), z_samples], -1), -1).numpy()
  hierarchical = {'num_fine': num_fine, 'u': _f32(centres[0]), 'z_samples': _f32(z_samples.numpy()),
                  'z_vals': _f32(z_all)}
  return result, hierarchical


def _llff_rows(camtoworlds, bounds, hwf):
  """poses_bounds.npy rows from OpenGL camera-to-worlds [N, 3, 4]: columns (down, right, backward, centre,
  (H, W, focal)), then near and far."""
  rows = []
  for pose, bound in zip(camtoworlds, bounds):
    matrix = np.stack([-pose[:, 1], pose[:, 0], pose[:, 2], pose[:, 3], hwf], axis=1)
    rows.append(np.concatenate([matrix.reshape(-1), bound]))
  return np.stack(rows)


def _look_at(eye, target, up):
  back = (eye - target) / np.linalg.norm(eye - target)
  right = np.cross(up, back)
  right /= np.linalg.norm(right)
  return np.stack([right, np.cross(back, right), back, eye], axis=1)


def llff(load_llff, rng):
  height, width, focal = 6, 8, 7.5
  scenes = {}
  # Forward-facing: cameras spread over a plane, looking roughly down -z at a point 5 away.
  eyes = np.concatenate([rng.uniform(-0.6, 0.6, (5, 2)), rng.uniform(-0.1, 0.1, (5, 1))], axis=1)
  targets = np.array([0.0, 0.0, -5.0]) + rng.uniform(-0.5, 0.5, (5, 3))
  forward = np.stack([_look_at(e, t, np.array([0.05, 1.0, 0.0])) for e, t in zip(eyes, targets)])
  scenes['forward'] = (forward, np.stack([rng.uniform(2.0, 3.0, 5), rng.uniform(8.0, 12.0, 5)], -1), False)
  # Inward-facing (for spherify): a ring around a point, looking near it.
  centre = np.array([1.0, -0.5, 0.3])
  angles = np.linspace(0.0, 2 * np.pi, 6, endpoint=False) + rng.uniform(-0.2, 0.2, 6)
  eyes = centre + np.stack([4 * np.cos(angles), 4 * np.sin(angles), rng.uniform(0.5, 1.5, 6)], -1)
  ring = np.stack([_look_at(e, centre + rng.uniform(-0.2, 0.2, 3), np.array([0.0, 0.0, 1.0])) for e in eyes])
  scenes['spherify'] = (ring, np.stack([rng.uniform(2.0, 3.0, 6), rng.uniform(5.0, 7.0, 6)], -1), True)
  result = {}
  for name, (camtoworlds, bounds, spherify) in scenes.items():
    rows = _llff_rows(camtoworlds, bounds, np.array([height, width, focal]))
    with tempfile.TemporaryDirectory() as directory:
      directory = pathlib.Path(directory)
      np.save(directory / 'poses_bounds.npy', rows)
      (directory / 'images').mkdir()
      for i in range(len(rows)):
        load_llff.imageio.imwrite(directory / 'images' / f'img{i:03d}.png',
                                  np.full((height, width, 3), 40 * i, np.uint8))
      _, poses, bds, _, _ = load_llff.load_llff_data(str(directory), factor=None, recenter=True, bd_factor=0.75,
                                                     spherify=spherify)
    result[name] = {'recenter': True, 'bd_factor': 0.75, 'spherify': spherify, 'poses_bounds': _f64(rows),
                    'poses': _f32(poses), 'bds': _f32(bds)}
  return result


def main(checkout: str, commit: str = None):
  checkout = str(pathlib.Path(checkout).resolve())
  if commit is None:
    commit = subprocess.run(['git', '-C', checkout, 'rev-parse', 'HEAD'], check=True, capture_output=True,
                            text=True).stdout.strip()
  sys.path.insert(0, checkout)
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import imageio  # pylint: disable=import-outside-toplevel
  import load_llff  # pylint: disable=import-outside-toplevel
  import run_nerf  # pylint: disable=import-outside-toplevel  # Enables eager execution.
  import run_nerf_helpers as helpers  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(SEED)
  result = {'generator': 'tests/make_tf_nerf_reference.py',
            'original': {'repository': 'https://github.com/bmild/nerf', 'commit': commit},
            'tensorflow_version': tf.__version__, 'numpy_version': np.__version__,
            'imageio_version': imageio.__version__}
  result['positional_encoding'] = positional_encoding(helpers, rng)
  result.update(rays_and_ndc(tf, helpers, rng))
  result['raw2outputs'], black = volume_rendering(tf, run_nerf, rng)
  result['render_rays'] = render_rays(tf, run_nerf, rng)
  z_vals = np.asarray(result['raw2outputs']['z_vals'], np.float32)
  result['sample_pdf'], result['hierarchical'] = sample_pdf(tf, helpers, rng, z_vals, black[3])
  result['llff'] = llff(load_llff, rng)
  OUT.write_text(json.dumps(result, separators=(',', ':')) + '\n')
  print(f'{OUT}: {OUT.stat().st_size} bytes', file=sys.stderr)


if __name__ == '__main__':
  main(*sys.argv[1:3])
