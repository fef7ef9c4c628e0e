"""Default configuration: every key any experiment can set, with the values of the paper's NeRF. Each key, its
default and what it means are registered beside the component that reads it and listed in
docs/configuration.md (the library owns them, to read workdirs of older versions); variants (chair.py,
lego.py, demo.py) start from this and change what differs.

  python train.py --config=configs/default.py --config.train.batch_size=1024 --config.model.mlp.width=128
"""

from jaxnerf.training.default_config import get_config

__all__ = ['get_config']
