r"""Real CUHK Avenue on a 2-core CPU: the Ped2 CPU recipe (configs/ped2_cpu.py) at Avenue's 16:9 aspect.

  python -m maskedskip_jax.main --config=configs/avenue_cpu.py --workdir=runs/avenue_cpu
  python -m maskedskip_jax.main --config=configs/avenue_cpu.py --workdir=runs/avenue_full \
      --config.data.root=/data/avenue --config.train.num_steps=6000

By default it trains on ../shared/data/avenue_dev (training video 12, test video 21 with its pixel masks, the
official layout); data.root takes a full copy (training_videos/, testing_videos/, ground_truth_demo/) and
data.name any other supported layout. Grey 128x224 frames, latent 64, Adam 1e-3, batch 8; the frame score is
the reconstruction plus optical flow, each standardised on the training videos, with the reconstruction alone
and the no-learning baselines reported beside it. The dev copy has one short training video, so the default
step count is small; scale train.num_steps with the number of training clips for a full copy.
"""

import os

from maskedskip_jax import config as config_lib

_DEV_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "avenue_dev")


def get_config():
  config = config_lib.default_config()
  config.data.name = "cuhk_avenue"
  config.data.root = os.path.normpath(_DEV_DATA)
  config.data.image_size = (128, 224)
  config.data.channels = 1
  config.model.variant = "maskedskip_unet"
  config.model.latent_dim = 64
  config.model.temporal = 3
  config.train.batch_size = 8
  config.train.num_steps = 500
  config.train.learning_rate = 1e-3
  config.train.checkpoint_every_steps = 250
  config.train.log_every_steps = 10
  config.eval.postprocess = "median:window=17"
  config.eval.hybrid_beta = 1.0
  config.eval.hybrid_motion = "flow"
  config.eval.hybrid_standardise = True
  return config
