r"""Real UCSD Ped2 footage (the dev subset in ../shared/data/ped2_dev), sized for a CPU.

  python -m maskedskip_jax.main --config=configs/ped2_cpu.py

Grey 64x96 frames (Ped2's 2:3 aspect), latent 64, a few epochs: a sanity check on
real video in minutes, not a benchmark (the reference setting is configs/ped2.py).
Point data.root elsewhere for another copy in the generic layout
(<root>/train/<video>/<frames>, <root>/test/<video>/<frames>, <root>/test/<video>.txt).
"""

import os

from maskedskip_jax import config_check

_DEV_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ped2_dev")


def get_config():
  config = config_check.default_config()
  config.data.name = "generic"
  config.data.root = os.path.normpath(_DEV_DATA)
  config.data.image_size = (64, 96)
  config.data.channels = 1
  config.model.variant = "maskedskip_unet"
  config.model.latent_dim = 64
  config.model.temporal = 3
  config.train.batch_size = 16
  config.train.epochs = 5
  config.train.learning_rate = 1e-3
  config.train.checkpoint_every_steps = 50
  config.train.log_every_steps = 10
  config.eval.postprocess = "none"
  return config
