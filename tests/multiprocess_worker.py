"""One process of a training run of several processes, for tests/test_multiprocess.py: joins the run with
the distributed flags that train.py takes, trains the tiny config, and saves this process's own copy of the
final parameters (so that the test can check that the processes agree).

  python tests/multiprocess_worker.py --coordinator_address=127.0.0.1:PORT --num_processes=2 \
      --process_id=I --scene_cache=DIR --workdir=DIR --num_steps=N --out_dir=DIR
"""

import pathlib

import jax
import numpy as np
from absl import app
from absl import flags

from jaxnerf import cli
from jaxnerf import trainer
from tests.tiny_configs import tiny_config

_DISTRIBUTED = cli.define_distributed_flags()
_SCENE_CACHE = flags.DEFINE_string('scene_cache', None, 'Cache holding the tiny scene.', required=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir shared by the processes.', required=True)
_NUM_STEPS = flags.DEFINE_integer('num_steps', 6, 'Training steps.')
_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Where params_<process>.npz goes.', required=True)


def main(argv):
  del argv
  with cli.friendly_errors():
    cli.initialize(_DISTRIBUTED)
    config = tiny_config(_SCENE_CACHE.value, num_steps=_NUM_STEPS.value, checkpoint_every=3, log_every=3)
    config.eval.final_num_images = 0
    result = trainer.run_training(config, _WORKDIR.value)
    # This process's copy of each replicated parameter.
    local = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), result.state.params)
    flat = {jax.tree_util.keystr(path): value for path, value in jax.tree_util.tree_leaves_with_path(local)}
    out_dir = pathlib.Path(_OUT_DIR.value)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / f'params_{jax.process_index()}.npz', **flat)
    cli.print_summary(result.summary, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
