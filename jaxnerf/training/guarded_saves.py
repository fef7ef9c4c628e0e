"""The training loop's saves and stops: a checkpoint is kept only once a step shows that its parameters' loss
is finite (a model whose forward pass overflows, as float16's can with finite parameters, is never kept,
in any precision), and the messages of a run that stops, interrupted or with a non-finite step.

Call the saves with interrupts held (interrupts.held): a save cut short by Ctrl-C or SIGTERM would be
started a second time while Orbax still writes the first.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxnerf import console
from jaxnerf.errors import NonFiniteLossError
from jaxnerf.training import checkpoints


class NonFiniteStep(Exception):
  """Training must stop: step `step` failed (a non-finite loss or gradient), or, with `probed`, the
  parameters of step `step` give a non-finite loss."""

  def __init__(self, step: int, probed: bool = False):
    super().__init__(step)
    self.step, self.probed = step, probed


def newest_intact(manager) -> str:
  """A sentence naming the newest checkpoint of `manager`, which a failed run leaves intact (or saying that
  there is none)."""
  newest = manager.latest_step()
  if newest is None:
    return f'No checkpoint was saved in {manager.directory} before it.'
  return f'The newest checkpoint (step {newest}) in {manager.directory.parent} is intact.'


def failure_message(failure: NonFiniteStep, state, manager) -> str:
  """The one-line error of a run stopped by `failure`: what was not finite, the checkpoint left, and what to
  try (for float16 with loss scaling: another dtype)."""
  if failure.probed:
    what = (f'The parameters of step {failure.step} give a non-finite loss; they were not saved, and training '
            'stopped.')
  elif state.dynamic_scale is None:
    what = f'The loss or its gradient became non-finite at step {failure.step}; training stopped.'
  else:
    what = (f'The loss or its gradient was non-finite at step {failure.step} with the loss scale already at its '
            f'minimum ({state.dynamic_scale.minimum_scale:g}): this is not a float16 overflow that scaling '
            'recovers from (the data or the model yields NaN or inf); training stopped.')
  advice = ("Try config.model.dtype='float32' or 'bfloat16', or a lower config.optim.lr_init."
            if state.dynamic_scale is not None else
            'Try a lower config.optim.lr_init or config.optim.grad_clip_norm > 0.')
  return f'{what} {newest_intact(manager)} {advice}'


def save_checked(manager, state, train_seconds: float, train_step, batch):
  """Saves `state` once one step of a copy of it on `batch` shows that its loss is finite: parameters whose
  loss is not (e.g. float16 overflowing in the forward pass, which loss scaling cannot mend) are never kept
  as a model (raises NonFiniteStep). Call with interrupts held: a save cut in the middle would be saved twice."""
  _, probe = train_step(jax.tree.map(jnp.copy, state), batch)  # The step donates its copy.
  if not np.isfinite(float(jax.device_get(probe['loss']))):
    raise NonFiniteStep(int(jax.device_get(state.step)), probed=True)
  try:
    checkpoints.save(manager, state, train_seconds)
  except NonFiniteLossError:  # A NaN elsewhere in the state (the optimiser's): the same stop, the same message.
    raise NonFiniteStep(int(jax.device_get(state.step)), probed=True) from None


def save_interrupted(manager, state, budget, step: int, last_saved: int, train_step, batch, progress):
  """Keeps the work of an interrupted run: saves its state (unless its loss is not finite) and waits for
  the save."""
  budget.pause()
  saved = 'saved a checkpoint.'
  try:
    if step > last_saved:
      save_checked(manager, state, budget.seconds, train_step, batch)
  except NonFiniteStep:
    saved = f'its parameters give a non-finite loss and were not saved. {newest_intact(manager)}'
  manager.wait_until_finished()
  progress.close()
  console.message(f'\nInterrupted at step {step}; {saved} Run the same command to resume.')
