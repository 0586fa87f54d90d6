r"""ShanghaiTech Campus: the reference's hyperparameters
(latent 512, 256x256 RGB, T=3, Adam 1e-2, batch 16, 10 epochs).

  python -m maskedskip_jax.main --config=configs/shanghaitech.py --config.data.root=/path/to/dataset

data.root is the folder with training/videos/ and testing/frames/, testing/test_frame_mask/.
A TFDS build works too: --config.data.tfds_data_dir=/path/to/tensorflow_datasets. Meant for a GPU/TPU.
"""

from maskedskip_jax import config_check


def get_config():
  config = config_check.default_config()
  config.data.name = "shanghaitech"
  config.data.image_size = (256, 256)
  config.data.channels = 3
  config.model.variant = "maskedskip_unet"
  config.model.latent_dim = 512
  config.model.temporal = 3
  config.train.batch_size = 16
  config.train.epochs = 10
  config.train.learning_rate = 1e-2
  config.train.checkpoint_every_steps = 200
  config.eval.postprocess = "none"
  return config
