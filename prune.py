"""Prunes a trained model's MLPs by weight magnitude, fine-tunes it briefly, and reports PSNR and sparsity.

  python prune.py --workdir=runs/lego --prune=both --sparsity=0.5 --finetune_steps=500
  python render.py --workdir=runs/lego-pruned-both-50 --split=val

--prune chooses the levels: coarse (NeRF's coarse field, mip-NeRF 360's proposal MLPs), fine (the field of
the final level) or both. Every dense-layer weight matrix of those fields loses its --sparsity fraction of
smallest-magnitude entries (per layer; biases, gains and hash tables are kept). The pruned model is
fine-tuned in --out (default <workdir>-pruned-<levels>-<percent>) where the run's learning-rate schedule
left off (its final rate, for a finished run) with the pruned weights held at zero; run the same command again to resume an interrupted fine-tune. Prints one JSON
line: val PSNR before pruning, after pruning and after fine-tuning, and the sparsity reached.
"""

from absl import flags

from jaxnerf import cli
from jaxnerf.commands import prune
from jaxnerf.training import pruning
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir of the model to prune.', required=True)
_PRUNE = flags.DEFINE_enum('prune', None, list(pruning.LEVELS), 'Levels whose MLPs are pruned.', required=True)
_SPARSITY = flags.DEFINE_float('sparsity', 0.5, 'Fraction of each pruned weight matrix set to zero.')
_FINETUNE_STEPS = flags.DEFINE_integer('finetune_steps', 500, 'Training steps after pruning.')
_OUT = flags.DEFINE_string('out', None, 'Workdir of the pruned model (default: <workdir>-pruned-<levels>-'
                           '<percent>).')
_EVAL_IMAGES = flags.DEFINE_integer('eval_images', -1, 'Val views scored before and after (-1: all).')


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.friendly_errors():
    cli.initialize()
    report = prune.prune_workdir(_WORKDIR.value, _PRUNE.value, _SPARSITY.value, _FINETUNE_STEPS.value,
                                       _OUT.value, _EVAL_IMAGES.value)
    cli.print_summary(report)


if __name__ == '__main__':
  cli.run(main)
