"""Default configuration: every key any experiment can set, with the values of the paper's NeRF. The keys,
their defaults and what each means are in jaxnerf/training/default_config.py (the library owns them, to read
workdirs of older versions); variants (chair.py, lego.py, demo.py) start from this and change what differs.

  python train.py --config=configs/default.py --config.train.batch_size=1024 --config.model.mlp.width=128
"""

from jaxnerf.training.default_config import get_config

__all__ = ['get_config']
