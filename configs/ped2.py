r"""UCSD Ped2: the reference's hyperparameters
(latent 512, 256x256 RGB, T=3, Adam 1e-2, batch 16, 10 epochs).

  python -m maskedskip_jax.main --config=configs/ped2.py --config.data.root=/path/to/UCSDped2

data.root is the UCSDped2 folder (Train/, Test/, Test/UCSDped2.m) or a folder holding it.
The community JPEG repackaging works too: --config.data.name=frames; a TFDS build:
--config.data.tfds_data_dir=/path/to/tensorflow_datasets. Meant for a GPU/TPU.
"""

from maskedskip_jax import config as config_lib


def get_config():
  return config_lib.reference_config("ucsd_ped2")
