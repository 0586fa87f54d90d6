r"""The reference setting (latent 512, 256x256 RGB, T=3, Adam 1e-2, batch 16, 10 epochs)
on the real Ped2 dev subset (../shared/data/ped2_dev, generic layout). Meant for a GPU.

  python -m maskedskip_jax.main --config=configs/ped2_dev.py --workdir=runs/ped2_dev
  python -m maskedskip_jax.main --config=configs/ped2_dev.py --workdir=runs/ped2_dev_frozen \
      --config.model.masked_kernels=frozen

Issue #10's GPU run: both masked_kernels modes, evaluated on the 3 dev test videos
(`benchmarks/gpu_checks.sh ped2_train ped2_frozen` runs both). Set data.root for a copy elsewhere.
"""

import os

from maskedskip_jax import config as config_lib

_DEV_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ped2_dev")


def get_config():
  config = config_lib.reference_config("generic")
  config.data.root = os.path.normpath(_DEV_DATA)
  # 10 epochs over 6 videos is ~570 steps: one checkpoint at the end spares writing
  # 1.4 GB of parameters and Adam moments every 200 steps.
  config.train.checkpoint_every_steps = 1000
  config.train.log_every_steps = 10
  return config
