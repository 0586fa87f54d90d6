r"""UCSD Ped1: the reference's hyperparameters
(latent 512, 256x256 RGB, T=3, Adam 1e-2, batch 16, 10 epochs).

  python -m maskedskip_jax.main --config=configs/ped1.py --config.data.root=/path/to/dataset

data.root is the UCSDped1 folder (Train/, Test/, Test/UCSDped1.m) or a folder holding it.
A TFDS build works too: --config.data.tfds_data_dir=/path/to/tensorflow_datasets. Meant for a GPU/TPU.
"""

from maskedskip_jax import config as config_lib


def get_config():
  return config_lib.reference_config("ucsd_ped1")
