"""Opens the live viewer of a trained model in the browser (viser).

  python view.py                              # The newest workdir under runs/, at http://127.0.0.1:8080
  python view.py --workdir=runs/lego --port=8081
  python view.py --workdir=runs/demo --host=0.0.0.0   # Reachable from other machines (no authentication).

Move the camera with the mouse: a coarse image follows it and a sharper one replaces it once it stops. The
panel switches between colour, depth, opacity and normals, sets the refined size, and renders a camera path
to <workdir>/render/viewer/<path>_<step>/. To watch a run while it trains, give train.py
--config.train.viewer_port=8080 instead.
"""

from absl import flags

from jaxnerf import cli
from jaxnerf.commands import render
from jaxnerf.commands import view
from jaxnerf import console

_WORKDIR = flags.DEFINE_string('workdir', None, 'Training workdir to view (default: the one under runs/ with '
                               'the newest checkpoint).')
_HOST = flags.DEFINE_string('host', '127.0.0.1', 'Address to serve on: 127.0.0.1 (this machine only) or '
                            '0.0.0.0 (every interface).')
_PORT = flags.DEFINE_integer('port', 8080, 'Port to serve on (the next free one if taken).', lower_bound=1,
                             upper_bound=65535)
_SECONDS = flags.DEFINE_float('seconds', 0.0, 'Stop after this many seconds (0: at Ctrl-C).', lower_bound=0.0)
_CHUNK = flags.DEFINE_integer('chunk_size', None, 'Rays per render call (default: the saved config).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Read the scene\'s cameras from here instead of the saved '
                                'config\'s directory.')


def main(argv):
  if len(argv) > 1:
    cli.exit_with_usage_error(f'unexpected arguments: {" ".join(argv[1:])}')
  with cli.friendly_errors():
    cli.initialize()
    workdir = _WORKDIR.value
    if workdir is None:
      workdir = render.newest_workdir()
      console.message(f'Viewing {workdir}, the workdir under runs/ with the newest checkpoint.')
    if _CHUNK.value is not None and _CHUNK.value <= 0:
      cli.exit_with_usage_error(f'--chunk_size={_CHUNK.value}: expected a positive number of rays')
    view.serve(workdir, _HOST.value, _PORT.value, _SECONDS.value, _CHUNK.value, _DATA_DIR.value)


if __name__ == '__main__':
  cli.run(main)
