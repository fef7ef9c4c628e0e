"""Rendering whole images in fixed-size chunks of rays, split over the devices.

Every chunk has the same shape (the last is padded), so the renderer compiles once for any resolution, and
memory is bounded by `chunk_size` rays. Three things keep a packed renderer's fixed-size buffers busy with
work that shows:
- models that can (steps.CompiledSteps.probe_rays) first count each ray's samples: the rays that cross only
  empty space are the background at no cost, and chunks of the others are filled with as many rays as their
  samples fit the buffers (padded with rays that march nothing), not with a fixed number of rays;
- where the model renders in rounds (steps.CompiledSteps.render_round), a ray's samples are evaluated a
  window of steps at a time, and the ray goes back to the queue while light still arrives: little is
  evaluated behind opaque surfaces. Views are batched so that many rays' rounds share each call;
- chunks take the rays in a fixed shuffled order rather than row by row, so that rows of background do not
  leave buffers idle while rows through the scene overflow them.
"""

from typing import Callable, Dict, Iterable, Iterator, Optional

import jax
import numpy as np

from jaxnerf import console
from jaxnerf.ops import camera
from jaxnerf.ops import compositing
from jaxnerf.outputs import memory
from jaxnerf import parallel


def _next_chunk(pending: np.ndarray, chunk_size: int):
  """(indices [chunk_size], real [chunk_size] bool, still pending): the next `chunk_size` rays of `pending`,
  padded with copies of the last one."""
  chunk, pending = pending[:chunk_size], pending[chunk_size:]
  real = np.arange(chunk_size) < chunk.size
  return np.concatenate([chunk, np.repeat(chunk[-1:], chunk_size - chunk.size)]), real, pending


def _next_filled_chunk(pending: np.ndarray, samples: np.ndarray, chunk_size: int, num_groups: int,
                       capacity: int):
  """`_next_chunk` for a packed renderer: each of the chunk's `num_groups` groups takes the next rays of
  `pending` while their samples (probed) fit its `capacity` slots, and is padded with rays made empty
  (see render_image), so that the buffers hold samples rather than slots for copies of a ray."""
  group_size = chunk_size // num_groups
  indices, real = np.empty(chunk_size, np.int64), np.zeros(chunk_size, bool)
  total = np.cumsum(samples[pending])
  start = 0
  for group in range(num_groups):
    base = total[start - 1] if start else 0
    end = min(int(np.searchsorted(total, base + capacity, side='right')), start + group_size, pending.size)
    if end == start < pending.size:  # (The capacity holds any one ray: the renderer sizes it so.)
      end += 1
    slots = slice(group * group_size, group * group_size + end - start)
    indices[slots], real[slots] = pending[start:end], True
    indices[slots.stop:(group + 1) * group_size] = pending[min(start, pending.size - 1)]
    start = end
  return indices, real, pending[start:]


class _RayCount:
  """The rays rendered so far, told to `on_rays` (the number of rays finished since its last call) in whole
  rays as they finish. A ray rendered in rounds counts the share of its occupied steps evaluated, so that
  the count moves with every call (rays that go back to the queue finish late, together)."""

  def __init__(self, on_rays: Optional[Callable[[int], None]]):
    self._on_rays, self._rays, self._told = on_rays, 0.0, 0

  def add(self, rays: float):
    self._rays += rays
    self._tell()

  def settle(self, rays: int):
    """All `rays` of the batches so far are finished (the shares, summed in floats, may fall short)."""
    self._rays = float(rays)
    self._tell()

  def _tell(self):
    if self._on_rays is not None and int(self._rays) > self._told:
      self._on_rays(int(self._rays) - self._told)
      self._told = int(self._rays)


def _render_in_chunks(render, variables, flat: camera.Rays, indices: np.ndarray, chunk_size: int, sharding,
                      outputs: Dict[str, np.ndarray], samples: Optional[np.ndarray] = None,
                      capacity: Optional[Callable[[int], int]] = None,
                      count: Optional[_RayCount] = None) -> Dict[str, np.ndarray]:
  """Renders the rays `indices` of `flat` with `render`, writing each output into outputs[key][index]
  (allocated on first use) and counting the finished rays in `count`. Rays that come back incomplete are
  rendered again in a later chunk. With `samples` (each ray's samples, probed), chunks are filled to
  capacity(rays per group) samples per group (`_next_filled_chunk`)."""
  num_groups = sharding.mesh.size
  pending = indices
  while pending.size:
    if samples is None:
      chunk_indices, real, pending = _next_chunk(pending, chunk_size)
    else:
      chunk_indices, real, pending = _next_filled_chunk(pending, samples, chunk_size, num_groups,
                                                        capacity(chunk_size // num_groups))
    chunk = jax.tree.map(lambda x: x[chunk_indices], flat)
    if samples is not None:
      chunk = chunk._replace(far=np.where(real[:, None], chunk.far, chunk.near))  # Padding marches nothing.
    result = parallel.fetch(render(variables, parallel.shard_replicated_data(chunk, sharding)))
    done = result.pop('complete', np.ones(real.size, bool))[real]
    rendered = chunk_indices[real]
    for key, value in result.items():
      if key not in outputs:
        outputs[key] = np.zeros((flat.origins.shape[0],) + value.shape[1:], value.dtype)
      outputs[key][rendered[done]] = value[real][done]
    pending = np.concatenate([rendered[~done], pending])
    if count is not None:
      count.add(np.sum(done))
  return outputs


_ROUND_STATE = ('first_step', 'transmittance', 'remaining', 'round_samples')


def _render_in_rounds(steps, variables, flat: camera.Rays, indices: np.ndarray, chunk_size: int,
                      outputs: Dict[str, np.ndarray], count: _RayCount) -> Dict[str, np.ndarray]:
  """Renders the rays `indices` of `flat` in rounds (OccupancyGridNeRF.render_round), from the state the
  probe wrote into `outputs` (which it leaves there for the other rays). Each call takes the pending rays
  in turn while their next rounds' steps fit its slots; a ray with light left goes back to the end of the
  queue, so that calls stay full to the last rounds. `count` gets each ray's share of its probed steps as
  they are evaluated (_RayCount)."""
  num_groups = steps.batch_sharding.mesh.size
  rays_per_group = steps.round_rays(chunk_size // num_groups)
  capacity = steps.round_capacity(rays_per_group)
  state = {key: outputs.pop(key) for key in _ROUND_STATE}
  probed_steps = np.maximum(state['remaining'], 1)
  counted = np.zeros(probed_steps.shape)  # The share of each ray in `count`.
  sums = {}
  pending = indices
  while pending.size:
    chunk_indices, real, pending = _next_filled_chunk(pending, state['round_samples'], rays_per_group * num_groups,
                                                      num_groups, capacity)
    chunk = jax.tree.map(lambda x: x[chunk_indices], flat)
    chunk = chunk._replace(far=np.where(real[:, None], chunk.far, chunk.near))  # Padding marches nothing.
    chunk_state = {key: value[chunk_indices] for key, value in state.items()}
    on_devices = lambda data: parallel.shard_replicated_data(data, steps.batch_sharding)
    result = parallel.fetch(steps.render_round(variables, on_devices(chunk), on_devices(chunk_state)))
    rendered = chunk_indices[real]
    complete, done = result.pop('complete')[real], result.pop('done')[real]
    for key in _ROUND_STATE:
      state[key][rendered] = result.pop(key)[real]
    # (Below 1 until done: another compiled march may count a ray's steps a little differently.)
    evaluated = 1.0 - state['remaining'][rendered] / probed_steps[rendered]
    share = np.where(done, 1.0, np.clip(evaluated, 0.0, 0.99))
    count.add(np.sum(share - counted[rendered]))
    counted[rendered] = share
    for key, value in result.items():  # (Indices in a chunk are distinct: += adds each ray's once.)
      if key not in sums:
        sums[key] = np.zeros((flat.origins.shape[0],) + value.shape[1:], value.dtype)
      sums[key][rendered[complete]] += value[real][complete]
    pending = np.concatenate([pending, rendered[~done]])
  if not indices.size:
    return outputs
  final = {key: value[indices] for key, value in sums.items()}
  acc, weighted_depth = final['acc'], final.pop('weighted_depth')
  far = outputs['depth'][indices]  # The probe's: the far t in the box.
  # (The renderers' finisher, on the host: the expected depth where the ray is not empty.)
  final['depth'] = final['median_depth'] = compositing.expected_depth(weighted_depth, acc, far, xnp=np)
  for key, value in final.items():
    outputs.setdefault(key, np.zeros((flat.origins.shape[0],) + value.shape[1:], value.dtype))[indices] = value
  return outputs


# Rendering in rounds costs the calls of a batch's last rounds, which few rays fill: it is used where a
# batch's probed steps fill this many calls or more (else each ray is rendered in one call). Views are
# batched up to _BATCH_RAYS rays so that small views (lego at factor 8: 10k rays, 3.5k of which meet the
# scene) share calls.
_MIN_ROUND_CALLS = 8
_BATCH_RAYS = 1 << 20


def _render_flat(steps, variables, flat: camera.Rays, order: np.ndarray, chunk_size: int,
                 count: _RayCount) -> Dict[str, np.ndarray]:
  """Renders the rays `flat` [N, C] into host arrays [N, ...], chunks taking them in `order`, counting the
  finished rays in `count`."""
  outputs = {}
  samples = None
  if steps.probe_rays is not None:
    _render_in_chunks(steps.probe_rays, variables, flat, order, chunk_size, steps.batch_sharding, outputs)
    empty = outputs.pop('empty')[order]
    count.add(np.sum(empty))  # The background, as probed.
    order = order[~empty]
    samples = outputs.pop('samples')
  num_groups = steps.batch_sharding.mesh.size
  if (steps.render_round is not None and np.sum(samples[order], dtype=np.int64)
      >= _MIN_ROUND_CALLS * num_groups * steps.sample_capacity(chunk_size // num_groups)):
    return _render_in_rounds(steps, variables, flat, order, chunk_size, outputs, count)
  for key in _ROUND_STATE:
    outputs.pop(key, None)
  return _render_in_chunks(steps.render_rays, variables, flat, order, chunk_size, steps.batch_sharding,
                           outputs, samples, steps.sample_capacity, count)


def _render_within_budget(steps, variables, flat: camera.Rays, order: np.ndarray, chunk_size: int, count):
  """(`_render_flat` of `chunk_size` rays a call, or of fewer where a call would exceed the memory budget,
  the chunk size used). The budget's calls (memory.BudgetedCall) refuse before they run, so a refused
  attempt costs at most the probe of the batch; one line says when the chunk is lowered (the first time)."""
  while True:
    try:
      return _render_flat(steps, variables, flat, order, chunk_size, count), chunk_size
    except memory.OverBudget as over:
      lowered = memory.lowered_chunk(chunk_size, over, steps.batch_sharding.mesh.size)
      if over.measured_now:
        console.message(memory.lowered_note(chunk_size, lowered, over))
      chunk_size = lowered


def render_images(steps, variables, views: Iterable[camera.Rays], chunk_size: int,
                  on_rays: Optional[Callable[[int], None]] = None) -> Iterator[Dict[str, np.ndarray]]:
  """Renders views, rays with fields [H, W, C] each, into host arrays {'rgb': [H, W, 3], 'depth': [H, W],
  'median_depth', 'acc'} (what the compiled render_rays returns), one dict per view, in order.

  Views are rendered in batches of up to _BATCH_RAYS rays (whole views), so that the rays of small views
  share calls. Rays that come back incomplete (a packed renderer ran out of slots) are rendered again in a
  later chunk; each chunk completes at least its first ray per device, so this ends.

  Args:
    steps: the compiled steps (steps.CompiledSteps): render_rays, probe_rays and the batch sharding.
    variables: model variables, placed as the steps expect.
    views: each view's rays (taken as needed).
    chunk_size: rays per call; must be divisible by the device count. Fewer where a call of as many would
      exceed the memory budget (`_render_within_budget`).
    on_rays: called with the number of rays finished since its last call, as they finish (a progress bar's
      `update`): a batch of views can take long, and its views come out only when it ends.
  """
  count, rays_so_far = _RayCount(on_rays), 0
  views = iter(views)
  next_view = next(views, None)
  while next_view is not None:
    batch, num_rays = [], 0
    while next_view is not None and (not batch or num_rays + next_view.origins[..., 0].size <= _BATCH_RAYS):
      batch.append(next_view)
      num_rays += next_view.origins[..., 0].size
      next_view = next(views, None)
    flats = [jax.tree.map(lambda x: np.asarray(x).reshape((-1, x.shape[-1])), rays) for rays in batch]
    sizes = [flat.origins.shape[0] for flat in flats]
    starts = np.cumsum([0] + sizes)
    # Each view's rays in a fixed shuffled order, view after view.
    order = np.concatenate([start + np.random.default_rng(0).permutation(size)
                            for start, size in zip(starts, sizes)])
    outputs, chunk_size = _render_within_budget(steps, variables,
                                                jax.tree.map(lambda *x: np.concatenate(x), *flats), order,
                                                chunk_size, count)
    rays_so_far += int(np.sum(sizes))
    count.settle(rays_so_far)
    for rays, start, stop in zip(batch, starts[:-1], starts[1:]):
      image_shape = rays.origins.shape[:-1]
      yield {k: v[start:stop].reshape(image_shape + v.shape[1:]) for k, v in outputs.items()}


def render_image(steps, variables, rays: camera.Rays, chunk_size: int) -> Dict[str, np.ndarray]:
  """`render_images` of one view."""
  return next(render_images(steps, variables, [rays], chunk_size))
