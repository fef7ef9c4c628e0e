"""A memory budget (config.eval.memory_budget_mb) for rendering and geometry: what a compiled call would
take, known before it runs, and the chunk of rays or points that fits.

XLA's buffer assignment fixes a compiled call's memory before it runs: its arguments, its outputs and the
temporary buffers it reuses (`Compiled.memory_analysis()`, per device). The devices of the CPU platform
share the host's memory, so there a call's figure is summed over the devices of this process it runs on.
What a call takes per ray depends on what the model computes per sample: density normals are a backward
pass through the geometry network at every sample, several times the memory of colour alone (docs/results.md,
"Rendering"), and nothing in the chunk size says so.
"""

from typing import Callable, Optional, Tuple

import jax

from jaxnerf import console
from jaxnerf.errors import ConfigError

MB = 2**20
BUDGET_KEY = 'config.eval.memory_budget_mb'


def format_bytes(size: float) -> str:
  """'19.3 GiB', '512 MiB', '2.3 PiB'."""
  for unit, scale in (('PiB', 2**50), ('TiB', 2**40), ('GiB', 2**30)):
    if size >= scale:
      return f'{size / scale:.3g} {unit}'
  return f'{size / MB:.3g} MiB'


def budget_bytes(config) -> int:
  """config.eval.memory_budget_mb in bytes."""
  return int(config.eval.memory_budget_mb * MB)


class OverBudget(ConfigError):
  """A compiled call that would take more than the budget; raised before it runs. Callers that can split
  their work catch it and call again with less (`lowered_chunk`); elsewhere it is a one-line error."""

  def __init__(self, needed: int, budget: int, rows: int, measured_now: bool, where: str = BUDGET_KEY):
    super().__init__(f'one call of {rows} rays or points would take {format_bytes(needed)}, over the memory '
                     f'budget of {format_bytes(budget)} ({where}): lower the chunk size or raise the budget.')
    self.needed, self.budget, self.rows, self.measured_now, self.where = needed, budget, rows, measured_now, where


def _sharing_devices(sharding) -> int:
  """The devices of `sharding` whose memory a call's per-device figure adds up in: those of this process on
  the CPU platform (the host's memory); 1 on accelerators, whose memories are their own."""
  if sharding is None:
    return 1
  local_cpus = [d for d in sharding.mesh.devices.flat
                if d.platform == 'cpu' and d.process_index == jax.process_index()]
  return max(1, len(local_cpus))


def compiled_bytes(compiled, sharing: int = 1) -> Optional[int]:
  """The memory a compiled call takes (arguments, outputs and temporaries, per device, times `sharing`
  devices), or None where the backend does not say."""
  stats = compiled.memory_analysis()
  if stats is None:
    return None
  per_device = (stats.temp_size_in_bytes + stats.argument_size_in_bytes + stats.output_size_in_bytes
                - stats.alias_size_in_bytes)
  return per_device * sharing


class BudgetedCall:
  """A jitted function whose calls are measured before they run, once per shapes of its arguments, and
  refused with OverBudget when they would take more than `budget` bytes. The measurement is the compilation
  the call needs anyway (jax.jit's cache shares it), so a call within the budget costs nothing more."""

  def __init__(self, jitted, budget: int, sharding=None):
    self.jitted, self.budget, self._sharing = jitted, budget, _sharing_devices(sharding)
    self._needed = {}  # Shapes of the arguments -> bytes (None: not known).

  @staticmethod
  def _key(args):
    return jax.tree.structure(args), tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(args))

  def _measured(self, args) -> Tuple[Optional[int], bool]:
    """(What a call with `args` takes, whether it was measured now rather than before)."""
    key = self._key(args)
    if key in self._needed:
      return self._needed[key], False
    self._needed[key] = compiled_bytes(self.jitted.lower(*args).compile(), self._sharing)
    return self._needed[key], True

  def needed_bytes(self, *args) -> Optional[int]:
    """What a call with `args` (arrays or jax.ShapeDtypeStruct) takes, compiling it once per shapes."""
    return self._measured(args)[0]

  def __call__(self, *args):
    """The jitted function's result; OverBudget (before it runs) where the call would not fit. Its rows are
    those of the last argument."""
    needed, measured_now = self._measured(args)
    if needed is not None and needed > self.budget:
      raise OverBudget(needed, self.budget, jax.tree.leaves(args[-1])[0].shape[0], measured_now)
    return self.jitted(*args)


# A lowered chunk aims this far below the budget: what a call takes is linear in its rows plus a part that
# is not (the model's variables), and a second try costs a second compilation.
_AIM = 0.97


def lowered_chunk(chunk: int, over: OverBudget, multiple: int = 1) -> int:
  """A chunk below `chunk` that should fit the budget, from what `chunk` would take (memory grows about
  linearly with a chunk's rows); a multiple of `multiple` (the devices). Raises ConfigError where even
  `multiple` rows would not fit."""
  scaled = int(chunk * _AIM * over.budget / over.needed) // multiple * multiple
  lowered = min(scaled, chunk - multiple)
  if lowered < multiple:
    raise ConfigError(f'one call of {chunk} rays or points would take {format_bytes(over.needed)}, and even '
                      f'{multiple} would not fit (at that rate) the memory budget of {format_bytes(over.budget)} '
                      f'({over.where}): raise it.')
  return lowered


def lowered_note(requested: int, chunk: int, over: OverBudget, what: str = 'rays') -> str:
  """The line that says a chunk was lowered from `requested` to `chunk` because of `over`."""
  return (f'note: {chunk} {what} a call, not {requested}: {requested} would take '
          f'{format_bytes(over.needed)}, over the memory budget of {format_bytes(over.budget)} ({over.where}).')


def largest_chunk(needed: Callable[[int], Optional[int]], chunk: int, budget: int, multiple: int = 1,
                  what: str = 'rays', where: str = BUDGET_KEY) -> int:
  """The chunk, at most `chunk` and a multiple of `multiple`, whose `needed(rows)` bytes fit `budget`:
  `chunk` itself where it fits (or where `needed` says None), else lowered until one fits, with a line
  that says so (`where`: what sets the budget)."""
  while (size := needed(chunk)) is not None and size > budget:
    over = OverBudget(size, budget, chunk, True, where)
    chunk = lowered_chunk(chunk, over, multiple)
    console.message(lowered_note(over.rows, chunk, over, what))
  return chunk
