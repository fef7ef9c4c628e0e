"""Trains a NeRF and writes checkpoints, metrics, a final evaluation and an orbit video to --workdir.

  python train.py                                  # The embedded demo scene (configs/demo.py).
  python train.py --config=configs/chair.py --config.data_dir=/path/to/nerf_synthetic/chair
  python train.py --config=configs/lego.py --config.factor=8

Running again with the same --workdir resumes from its newest intact checkpoint (--resume_step=N: from the
checkpoint of step N, --resume_step=best: from the best one; the newer ones are moved to
superseded_checkpoints/). Any config field can be overridden with --config.<field>=<value> (see
configs/default.py). Several processes (one per host) train together with --coordinator_address,
--num_processes and --process_id (docs/training.md, "Several devices and machines").
"""

from absl import flags
from ml_collections import config_flags

from jaxnerf import cli
from jaxnerf.training import trainer
with cli.flag_errors():  # Overrides of the default config file are applied here already.
  _CONFIG = config_flags.DEFINE_config_file('config', 'configs/demo.py', 'Configuration file.',
                                            lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and renderings '
                               '(default: runs/<config file name>).')
_RESUME_STEP = flags.DEFINE_string('resume_step', None, 'Resume from the checkpoint of this step, or \'best\' '
                                   '(config.train.keep_best\'s), instead of the newest (the newer ones are moved '
                                   'to superseded_checkpoints/).')
_DISTRIBUTED = cli.define_distributed_flags()


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  workdir = _WORKDIR.value or cli.default_workdir(config_flags.get_config_filename(flags.FLAGS['config']))
  resume_step = cli.checkpoint_step('--resume_step', _RESUME_STEP.value)
  with cli.friendly_errors():
    cli.initialize(_DISTRIBUTED)
    summary = trainer.train_and_evaluate(_CONFIG.value, workdir, resume_step)
    cli.print_summary(summary, workdir)


if __name__ == '__main__':
  cli.run(main, _CONFIG)
