"""The training run's config group (`config.train`) and the seed: what the loop (trainer.py, with
experiment.py's init_from and steps.py's random_background) reads.

They sit apart from trainer.py so that training/default_config.py can register them without importing the
loop, which reads the default config (checkpoints.py fills an older run's missing keys from it).
"""

from typing import Optional

from jaxnerf import config_groups
from jaxnerf.config_groups import Setting
from jaxnerf import values


def _check_keep_best(config) -> Optional[str]:
  """train.keep_best needs validations to keep the best of."""
  validates = (config.eval.every_steps > 0 or config.eval.at_train_seconds) and config.eval.num_images > 0
  if config.train.get('keep_best') and not validates:
    return ('config.train.keep_best=True keeps the checkpoint of the best validation: set '
            'config.eval.every_steps > 0 (or eval.at_train_seconds) and eval.num_images > 0, or keep_best=False.')
  return None


config_groups.register('', owner=__name__, settings=dict(
    seed=Setting(0, 'Seeds parameter initialisation, ray batches and sampling.'),
))
config_groups.register('train', owner=__name__, settings=dict(
    batch_size=Setting(4096, 'Rays per step, over all devices; must be divisible by the device and process counts.',
                       values.POSITIVE_INT),
    num_steps=Setting(200_000, 'Training steps; the learning-rate schedule spans them (unless max_seconds is '
                      'expected to end the run sooner).', values.POSITIVE_INT),
    max_seconds=Setting(0.0, 'Budget of training time in seconds (compilation and evaluation excluded, summed over '
                        'resumed runs; 0: none); the rate schedule is laid over the steps it should allow.',
                        values.NON_NEGATIVE),
    log_every=Setting(100, 'Steps between progress lines and metrics records.', values.POSITIVE_INT),
    checkpoint_every=Setting(5000, 'Steps between checkpoints (one is also saved when training ends or is '
                             'interrupted).',
                             values.POSITIVE_INT),
    keep_checkpoints=Setting(3, 'How many of the newest checkpoints the workdir keeps.', values.POSITIVE_INT),
    keep_best=Setting(False, 'Also keep the checkpoint of the best validation PSNR so far (eval.num_images views '
                      'each validation) in workdir/best_checkpoint/ (render.py --step=best).', values.BOOL),
    init_from=Setting('', "A workdir whose checkpoint's parameters (and model state) start a new run, with a new "
                      "optimizer at step 0 (same arrays needed); '': random ones. A resuming run ignores it.",
                      (lambda v: isinstance(v, str), "a workdir's path, or '' (none)")),
    init_from_step=Setting('newest', "init_from's checkpoint: 'newest', 'best' (its keep_best's) or a step "
                           "('3000').", (lambda v: isinstance(v, str) and (v in ('newest', 'best') or v.isdigit()),
                                         "'newest', 'best' or a checkpoint's step such as '3000'")),
    random_background=Setting(False, 'Composite RGBA training images on random colours (instant-ngp).'),
    stall_warning_steps=Setting(100, 'Warn when the gradient has been zero this many steps in a row (0: never).',
                                values.NON_NEGATIVE_INT),
    wandb_project=Setting('', "Also log to this Weights & Biases project (needs `pip install wandb`; '': none)."),
    viewer_port=Setting(0, 'Serve the live viewer (outputs/viewer.py) on this port while training (0: none).',
                        (lambda v: isinstance(v, int) and 0 <= v <= 65535, 'a port from 1 to 65535, or 0 (none)')),
    viewer_host=Setting('127.0.0.1', "The live viewer's address: '127.0.0.1' (this machine only) or '0.0.0.0' "
                        '(every interface, with no authentication).',
                        (lambda v: isinstance(v, str) and bool(v.strip()), "an address such as '127.0.0.1'")),
), small=dict(batch_size=128, num_steps=20, log_every=5, checkpoint_every=10, keep_checkpoints=5),
   checks=(_check_keep_best,))
