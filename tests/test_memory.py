"""The memory budget (outputs/memory.py, config.eval.memory_budget_mb): render calls measured by XLA before
they run and lowered to fit (density normals on the tiny scene), the density grid of a mesh sampled in slabs,
and grids or surfaces that cannot fit refused before the work."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf import datasets
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import chunked
from jaxnerf.outputs import geometry
from jaxnerf.outputs import memory
from jaxnerf.training import checkpoints
from jaxnerf.training import experiment as experiment_lib
from tests import tiny_configs


def _rows_times_width(variables, x):
  return jnp.tanh(x @ variables) @ variables.T  # [N, 256] temporaries: memory grows with the rows.


def test_a_call_over_the_budget_is_refused_before_it_runs_and_a_lowered_chunk_fits():
  jitted = jax.jit(_rows_times_width)
  weights = jnp.ones((8, 256), jnp.float32)
  rows = lambda n: jax.ShapeDtypeStruct((n, 8), jnp.float32)
  needed = lambda n: memory.compiled_bytes(jitted.lower(weights, rows(n)).compile())
  budget = needed(4096) // 3
  call = memory.BudgetedCall(jitted, budget)
  with pytest.raises(memory.OverBudget, match=r'one call of 4096 rays or points would take .* over the memory '
                                              r'budget .*config.eval.memory_budget_mb') as refused:
    call(weights, jnp.ones((4096, 8)))
  assert refused.value.needed == needed(4096) and refused.value.measured_now
  chunk = memory.lowered_chunk(4096, refused.value, multiple=2)
  assert chunk % 2 == 0 and chunk < 4096 and needed(chunk) <= budget
  assert call(weights, jnp.ones((chunk, 8))).shape == (chunk, 8)
  assert memory.largest_chunk(lambda n: call.needed_bytes(weights, rows(n)), 4096, budget) <= chunk
  with pytest.raises(ConfigError, match=r'even 2 would not fit .* raise it'):
    memory.lowered_chunk(4096, memory.OverBudget(needed(4096), 1000, 4096, True), multiple=2)


def test_rendering_normals_takes_fewer_rays_a_call_within_the_budget(scene_cache, capsys):
  """Density normals cost a backward pass per sample: with a budget below what a chunk of 256 rays takes,
  the image is rendered in smaller calls (one line says so), XLA's figure for the calls that ran is within
  the budget, and the image is the one that the full chunk renders."""
  config = tiny_configs.small_mlp_config(scene_cache)
  config.model.update(normals='density', num_fine_samples=0)
  config.eval.memory_budget_mb = 1.0
  experiment = experiment_lib.build_experiment(config)
  variables = experiment_lib.init_state(experiment, 0).variables
  rays = datasets.load_split(config, 'val').rays_of_image(0)
  render, sizes = experiment.steps.render_rays, []
  recording = lambda v, r: sizes.append(r.origins.shape[0]) or render(v, r)
  rendering = chunked.render_image(experiment.steps._replace(render_rays=recording), variables, rays, 256)
  lowered = sizes[-1]
  assert sizes[0] == 256 and set(sizes[1:]) == {lowered} and lowered < 256 and lowered % 2 == 0
  assert (f'note: {lowered} rays a call, not 256: 256 would take' in capsys.readouterr().err)
  per_device = lambda n: memory.compiled_bytes(render.jitted.lower(variables, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct((n,) + x.shape[2:], x.dtype, sharding=experiment.steps.batch_sharding),
      rays)).compile())
  budget = config.eval.memory_budget_mb * memory.MB
  assert 2 * per_device(lowered) <= budget < 2 * per_device(256)  # Two CPU devices share the host's memory.
  unlimited = chunked.render_image(experiment.steps._replace(render_rays=render.jitted), variables, rays, 256)
  for key in ('rgb', 'normals'):
    np.testing.assert_allclose(rendering[key], unlimited[key], atol=1e-5)


def _sphere_density(points):
  return 100.0 / (1.0 + np.exp(40.0 * (np.linalg.norm(points, axis=-1) - 0.6)))


def test_density_grid_sampled_in_slabs_is_the_grid_sampled_at_once():
  box = (-1.0, -1.0, -0.5, 1.0, 1.0, 0.5)
  shape = geometry.grid_shape(box, 33)
  axes = [np.linspace(box[i], box[i + 3], shape[i], dtype=np.float32) for i in range(3)]
  at_once = _sphere_density(np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1)).astype(np.float32)
  calls = []
  slabs, spacing = geometry.sample_density_grid(lambda p: calls.append(len(p)) or _sphere_density(p), box, 33,
                                                1000)  # Slabs that end inside rows and planes.
  assert set(calls) == {1000} and len(calls) == -(-at_once.size // 1000)
  np.testing.assert_array_equal(slabs, at_once)
  mesh, reference = (geometry.marching_cubes(d, box, spacing, 50.0) for d in (slabs, at_once))
  np.testing.assert_array_equal(mesh.vertices, reference.vertices)
  np.testing.assert_array_equal(mesh.faces, reference.faces)


def test_a_mesh_that_cannot_fit_is_refused_before_the_work(scene_cache, tmp_path, monkeypatch):
  from jaxnerf.commands import mesh  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / 'run'
  checkpoints.save_config(workdir, tiny_configs.tiny_config(scene_cache))  # The demo's scene box.
  monkeypatch.setattr(experiment_lib, 'restore_model', lambda *a, **k: pytest.fail('restored the model'))
  with pytest.raises(ConfigError, match=r'--resolution=100000: the density grid of 100000x100000x65384 '
                                        r'vertices takes 2.32 PiB as float32, and marching cubes needs it '
                                        r'whole: over the memory budget of 6 GiB .*the largest whose grid fits '
                                        r'it is 1350'):
    mesh.export_mesh(workdir, resolution=100000)
  with pytest.raises(ConfigError, match=r'--resolution=100: .* takes 2.48 MiB .* over the memory budget of 1 '
                                        r'MiB \(--memory_budget_mb\); the largest whose grid fits it is 73'):
    mesh.export_mesh(workdir, tmp_path / 'mesh.ply', resolution=100, memory_budget_mb=1.0)
  box = tiny_configs.tiny_config().scene_box
  assert geometry.grid_bytes(geometry.grid_shape(box, 73)) <= memory.MB < geometry.grid_bytes(
      geometry.grid_shape(box, 74))
  assert sorted(p.name for p in tmp_path.iterdir()) == ['run'] and not (workdir / 'export').exists()


def test_a_surface_whose_mesh_cannot_fit_is_refused_before_marching_cubes():
  """The vertices marching cubes will make are counted beforehand (one per grid edge that the surface
  crosses; a few more inside ambiguous cells of noise), in slabs of a few planes or all at once."""
  from skimage import measure  # pylint: disable=import-outside-toplevel
  noise = np.random.default_rng(0).random((24, 20, 16), dtype=np.float32)
  expected = geometry.surface_vertices(noise, 0.5, slab_vertices=700)
  assert expected == geometry.surface_vertices(noise, 0.5)
  made = len(measure.marching_cubes(noise, 0.5)[0])
  assert expected <= made <= 1.05 * expected
  assert geometry.check_surface_fits(noise, 0.5, 1 << 30, 'the budget') == expected
  with pytest.raises(ConfigError, match=rf'crosses {expected} of the grid\'s edges: its mesh would take about '
                                        r'.* over the memory budget of 1 MiB \(the budget\)'):
    geometry.check_surface_fits(noise, 0.5, memory.MB, 'the budget')
