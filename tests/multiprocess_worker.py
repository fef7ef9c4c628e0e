"""One process of a training run of several processes, for tests/test_multiprocess.py: joins the run with
the distributed flags that train.py takes, trains the tiny config to each of --num_steps in turn (every run
after the first a resume from the previous one's checkpoint, as a rerun of train.py with a larger
train.num_steps), and after each saves this process's own copy of the parameters (so that the test can check
that the processes agree) as <out_dir>/<steps>/params_<process>.npz.

  python tests/multiprocess_worker.py --coordinator_address=127.0.0.1:PORT --num_processes=2 \
      --process_id=I --scene_cache=DIR --workdir=DIR --num_steps=6,10 --out_dir=DIR
"""

import pathlib

import jax
import numpy as np
from absl import app
from absl import flags

from jaxnerf import cli
from jaxnerf.training import trainer
from tests.tiny_configs import small_mlp_config

_DISTRIBUTED = cli.define_distributed_flags()
_SCENE_CACHE = flags.DEFINE_string('scene_cache', None, 'Cache holding the tiny scene.', required=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Workdir shared by the processes.', required=True)
_NUM_STEPS = flags.DEFINE_list('num_steps', ['6'], 'Training steps of each run, in turn.')
_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Where <steps>/params_<process>.npz go.', required=True)


def main(argv):
  del argv
  with cli.friendly_errors():
    cli.initialize(_DISTRIBUTED)
    for num_steps in map(int, _NUM_STEPS.value):
      config = small_mlp_config(_SCENE_CACHE.value, num_steps=num_steps, checkpoint_every=3, log_every=3)
      config.eval.final_num_images = 0
      result = trainer.run_training(config, _WORKDIR.value)
      # This process's copy of each replicated parameter.
      local = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), result.state.params)
      flat = {jax.tree_util.keystr(path): value for path, value in jax.tree_util.tree_leaves_with_path(local)}
      out_dir = pathlib.Path(_OUT_DIR.value) / str(num_steps)
      out_dir.mkdir(parents=True, exist_ok=True)
      np.savez(out_dir / f'params_{jax.process_index()}.npz', **flat)
      cli.print_summary(result.summary, _WORKDIR.value)


if __name__ == '__main__':
  app.run(main)
