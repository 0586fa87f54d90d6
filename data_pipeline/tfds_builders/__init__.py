"""TFDS builders (registered on import): ucsd_ped1, ucsd_ped2, cuhk_avenue, shanghaitech, synthetic."""

from data_pipeline.tfds_builders.builders import CuhkAvenue
from data_pipeline.tfds_builders.builders import Shanghaitech
from data_pipeline.tfds_builders.builders import Synthetic
from data_pipeline.tfds_builders.builders import SyntheticConfig
from data_pipeline.tfds_builders.builders import UcsdPed1
from data_pipeline.tfds_builders.builders import UcsdPed2
from data_pipeline.tfds_builders.builders import VideoAnomalyBuilder

__all__ = ["CuhkAvenue", "Shanghaitech", "Synthetic", "SyntheticConfig", "UcsdPed1", "UcsdPed2", "VideoAnomalyBuilder"]
