"""The memory budget (outputs/memory.py, config.eval.memory_budget_mb): render calls measured by XLA before
they run and lowered to fit (density normals on the tiny scene)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnerf import datasets
from jaxnerf.errors import ConfigError
from jaxnerf.outputs import chunked
from jaxnerf.outputs import memory
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
