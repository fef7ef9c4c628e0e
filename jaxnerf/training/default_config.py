"""The default configuration: every key any experiment can set, with the values of the paper's NeRF.

Each key is registered beside the component that reads it, with its default, one line of meaning and its
rule (jaxnerf/config_groups.py); this module imports every component and assembles their groups. Config
checks name the keys, and a workdir saved by an older version that lacks a key is read with that key's
default here (what the older version did without it). configs/default.py is this config; the variants in
configs/ start from it and change what differs. Any key can be overridden on the command line, e.g.

  python train.py --config=configs/default.py --config.train.batch_size=1024 --config.model.mlp.width=128

The scene is named by the top-level keys (`dataset`, `data_dir`, `factor`, ...); everything else is grouped
by concern: procedural and capture (the readers), batching, model (the renderer, its fields and their
appearance, per-image conditioning), optim, loss, train and eval.
"""

import ml_collections

from jaxnerf import config_groups
# The components, each registering its config group on import.
from jaxnerf import datasets  # noqa: F401
from jaxnerf.datasets import batching  # noqa: F401
from jaxnerf.datasets import capture  # noqa: F401
from jaxnerf.datasets import pose_noise  # noqa: F401
from jaxnerf.datasets import procedural  # noqa: F401
from jaxnerf import losses  # noqa: F401
from jaxnerf import models  # noqa: F401
from jaxnerf import perceptual  # noqa: F401
from jaxnerf.outputs import evaluation  # noqa: F401
from jaxnerf.training import camera_optimizer  # noqa: F401
from jaxnerf.training import pruning  # noqa: F401
from jaxnerf.training import train_settings  # noqa: F401
from jaxnerf.training import train_state  # noqa: F401

def get_config() -> ml_collections.ConfigDict:
  return config_groups.default_config()
