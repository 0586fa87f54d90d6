r"""AED-MAE (seed 004) on UCSD Ped2 at the paper's training settings, on the dev videos by default (issue #18).

  python -m maskedskip_jax.main --config=configs/aed_mae_ped2.py --mode=train_and_eval --workdir=runs/aed_mae_ped2
  python -m maskedskip_jax.main --config=configs/aed_mae_ped2.py --mode=train_and_eval \
      --workdir=runs/aed_mae_ped2_full --config.data.name=ucsd_ped2 --config.data.root=/data/UCSD_Anomaly_Dataset.v1p2

The paper (Sec. 4.1): tokens of 4x4 on Ped2, Adam 1e-4, batch 100, 100 epochs for the teacher then 40 for the
student on a frozen backbone (train.stage2_fraction = 40/140), synthetic anomalies blended into a quarter of the
frames, the score of Eq. 6 through the authors' filters (eval.aed_mae). Where it is silent, the authors' code:
mask ratio 0.5 in training and at test time (eval.aed_mae.masking), the frame stacked with frames t-3 and t+3
(T = 7, frame_offset 3). Frames are grey 80x160 here (the authors' 20 x 40 token grid at d = 4; Ped2's own frames
are 240x360). Our pasted objects are the project's
sprites and other clips' objects, feathered, not UBnormal's (train.paste_source=cutouts takes a folder of them).

On a 2-core CPU these settings do not run as they stand (BENCHMARKS.md, AED-MAE on the CPU): batch 100 runs out of
23 GB, and at batch 20 the paper's 140 epochs take about 15 hours. The measured CPU run is the command there.
"""

import os

from maskedskip_jax import config as config_lib

_DEV_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "ped2_dev")


def get_config():
  config = config_lib.default_config()
  config.data.name = "generic"
  config.data.root = os.path.normpath(_DEV_DATA)
  config.data.image_size = (80, 160)
  config.data.channels = 1
  config.model.variant = "aed_mae"
  config.model.temporal = 7
  config.model.aed_mae.patch = 4
  config.model.aed_mae.frame_offset = 3
  config.train.batch_size = 100
  config.train.num_steps = 0
  config.train.epochs = 140
  config.train.stage2_fraction = 40 / 140
  config.train.learning_rate = 1e-4
  config.train.paste_prob = 0.25
  config.train.paste_blend = "feather"
  config.train.checkpoint_every_steps = 50
  config.train.log_every_steps = 5
  return config
