r"""AED-MAE (seed 004) on CUHK Avenue at the paper's settings, on the dev videos by default (issue #18).

  python -m maskedskip_jax.main --config=configs/aed_mae_avenue.py --mode=train_and_eval --workdir=runs/aed_mae_avenue
  python -m maskedskip_jax.main --config=configs/aed_mae_avenue.py --mode=train_and_eval \
      --workdir=runs/aed_mae_avenue_full --config.data.root=/data/avenue

The paper (Sec. 4.1): RGB frames, tokens of 16x16 on Avenue, Adam 1e-4, batch 100, 100 epochs for the teacher
then 40 for the student on a frozen backbone (train.stage2_fraction = 40/140), synthetic anomalies blended into a
quarter of the frames; the score of Eq. 6 (alpha, beta, gamma = 0.4, 0.3, 0.3) with the authors' filters
(eval.aed_mae defaults: a 9x9x9 mean, then a temporal Gaussian of sigma 11 over 37 taps). Where it is silent, the
authors' code: 320x640 inputs, mask ratio 0.5 (in training and at test time), the frame stacked with frames t-3
and t+3. Our pasted objects are the project's sprites and other clips' objects, feathered; a folder of UBnormal's
object clips with masks can be used instead (train.paste_source=cutouts, train.paste_dir=...).

Batch 100 of 800 tokens does not fit in 23 GB of host memory (BENCHMARKS.md, AED-MAE on the CPU): on a CPU
machine pass --config.train.batch_size=20. The dev copy (training video 12, test video 21) is small: the numbers
it gives are a smoke test of the recipe, not the paper's.
"""

import os

from maskedskip_jax import config as config_lib

_DEV_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "avenue_dev")


def get_config():
  config = config_lib.default_config()
  config.data.name = "cuhk_avenue"
  config.data.root = os.path.normpath(_DEV_DATA)
  config.data.image_size = (320, 640)
  config.data.channels = 3
  config.model.variant = "aed_mae"
  config.model.temporal = 7
  config.model.aed_mae.patch = 16
  config.model.aed_mae.frame_offset = 3
  config.train.batch_size = 100
  config.train.epochs = 140
  config.train.stage2_fraction = 40 / 140
  config.train.learning_rate = 1e-4
  config.train.paste_prob = 0.25
  config.train.paste_blend = "feather"
  config.train.checkpoint_every_steps = 50
  config.train.log_every_steps = 5
  config.eval.batch_size = 8
  return config
