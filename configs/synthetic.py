r"""The embedded default: procedural street scenes, trained and evaluated on a laptop CPU.

  python -m maskedskip_jax.main --config=configs/synthetic.py

The dataset (10 training and 8 test videos, 120x160) is generated once into
data.cache_dir. A grey 64x64 MaskedSkipUNet (latent 64) then trains 500 steps of
16 clips and is scored on the
test videos, where cyclists, carts, skateboarders and people jogging across the lawn are the anomalies.
The frame score is the reconstruction's plus optical flow, each standardised on the training videos; the report
gives the reconstruction alone and the no-learning baselines beside it (run time and figures: BENCHMARKS.md).
"""

from maskedskip_jax import config as config_lib


def get_config():
  config = config_lib.default_config()
  config.data.name = "synthetic"
  config.data.image_size = (64, 64)
  config.data.channels = 1
  config.model.variant = "maskedskip_unet"
  config.model.latent_dim = 64
  config.model.temporal = 3
  config.train.batch_size = 16
  config.train.num_steps = 500
  config.train.learning_rate = 1e-3
  config.train.seed = 0
  config.train.checkpoint_every_steps = 100
  config.train.log_every_steps = 10
  config.eval.postprocess = "median"  # the paper's 17-frame median filter
  # The frame score the real-footage recipes use (chosen on ped2_dev, configs/ped2_cpu.py): reconstruction plus
  # optical flow, each standardised on the training videos; the reconstruction alone is reported beside it.
  config.eval.hybrid_beta = 1.0
  config.eval.hybrid_motion = "flow"
  config.eval.hybrid_standardise = True
  return config
