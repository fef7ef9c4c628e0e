"""Exports a trained model from its workdir to one file for rendering, and reports its size per layer.

  python export.py --workdir=runs/bitnerf --format=packed      # -> runs/bitnerf/export/packed.npz
  python render.py --packed=runs/bitnerf/export/packed.npz --split=val

--format=packed stores ternary layers (configs/bitnerf.py) in 1.6 bits per weight with their scales, and
everything else in float32; --format=float32 stores every array as trained. Either way the file holds the
newest intact checkpoint's model variables (no optimiser state) and its config. Prints one JSON line: bytes
per layer as stored against float32, for the quantised layers and in total.
"""

from absl import flags

from jaxnerf import cli
from jaxnerf.commands import export
_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to export.', required=True)
_FORMAT = flags.DEFINE_enum('format', 'packed', list(export.FORMATS),
                            'packed: ternary layers in 1.6 bits per weight; float32: as trained.')
_OUT = flags.DEFINE_string('out', None, 'File to write (default: <workdir>/export/<format>.npz).')


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.friendly_errors():
    cli.initialize()
    report = export.export_workdir(_WORKDIR.value, _FORMAT.value, _OUT.value)
    cli.print_summary(report, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
