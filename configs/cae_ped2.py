r"""Seed 003's CAE (motion-hybrid autoencoder, Almurumudhe & Hornyak 2025) at the paper's settings on the Ped2 dev
videos: train, evaluate and export with

  python -m maskedskip_jax.main --config=configs/cae_ped2.py --workdir=runs/cae_ped2
  python -m maskedskip_jax.main --config=configs/cae_ped2.py --workdir=runs/cae_ped2 --mode=export

It trains on ../shared/data/ped2_dev (generic layout); data.root / data.name take a full copy in any layout.
From the paper: 200x200 grey frames scaled to [0, 1]; Table 1's network (model.variant='cae' at latent 128, dropout
0.2, nn/cae.py); the loss S = alpha * MSE + beta * motion-weighted MSE (train/cae_step.py states the reading of
L_motion); Adam at 1e-3, x0.95 every 10 epochs; early stopping once the loss of held-out training videos
(data.holdout_share) has not fallen for 10 epochs, the best state being what is evaluated and exported; random
crop, flip and rotation; the frame score S_hybrid = alpha * reconstruction + beta * motion, the motion term the
centre frame's difference from its neighbours (eval.hybrid_motion='gradient').

Not in the paper, chosen here: alpha = beta = 1 in the loss and the score; batch 32 (Keras's default, the paper's
framework); at most 100 epochs (early stopping ends it); crops down to 0.8 of the side and rotations up to 10
degrees; the reconstruction term of the score is the project's patch-max error (eval.patch), not the frame's MSE.
"""

import os

from maskedskip_jax import config as config_lib

_DEV_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ped2_dev")


def get_config():
  config = config_lib.default_config()
  config.data.name = "generic"
  config.data.root = os.path.normpath(_DEV_DATA)
  config.data.image_size = (200, 200)
  config.data.channels = 1
  config.model.variant = "cae"
  config.model.latent_dim = 128
  config.model.temporal = 3  # the network sees the centre frame; its neighbours weigh the motion term
  config.train.batch_size = 32
  config.train.epochs = 100
  config.train.learning_rate = 1e-3
  config.train.schedule = "step_decay"
  config.train.decay_factor = 0.95
  config.train.decay_every_epochs = 10
  config.train.early_stopping_patience = 10
  config.train.augment = True
  config.train.hybrid_alpha = 1.0
  config.train.hybrid_beta = 1.0
  config.train.checkpoint_every_steps = 100
  config.train.log_every_steps = 10
  config.eval.hybrid_alpha = 1.0
  config.eval.hybrid_beta = 1.0
  config.eval.hybrid_motion = "gradient"
  return config
