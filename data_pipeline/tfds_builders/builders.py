"""TFDS builders over the same sources as the raw-file pipeline.

One example per video: its name, its frames at the original resolution as a
PNG sequence (lossless, so a TFDS-fed store equals a file-fed one), and its
frame labels. The real datasets cannot be downloaded automatically; each
builder says where to get its archives and reads them from `manual_dir`:

  python3 -m data_pipeline.tfds_builders --dataset ucsd_ped2 \
      --manual_dir /data/ucsd --data_dir /data/tfds

(or `tfds build ucsd_ped2 --imports data_pipeline.tfds_builders ...` where
Apache Beam, which that CLI imports, is installed).
"""

import concurrent.futures
import dataclasses
import os

import cv2
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import frame_io
from data_pipeline import registry
from data_pipeline import synthetic
from data_pipeline.errors import UserError

_UCSD_INSTRUCTIONS = """\
Download UCSD_Anomaly_Dataset.tar.gz (UCSD Anomaly Detection Dataset v1.2) from
http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm and extract it into the
manual dir, so that it holds
UCSD_Anomaly_Dataset.v1p2/UCSDped{n}/Train/Train001/001.tif ... and
UCSDped{n}/Test/ with UCSDped{n}.m (a bare UCSDped{n}/ folder also works).
"""


def _frame_as(frame: np.ndarray, channels: int) -> np.ndarray:
  """An RGB or grey frame as `channels` channels (grey kept 2-D)."""
  if channels == 1:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
  return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB) if frame.ndim == 2 else frame


def encode_png(frame: np.ndarray, channels: int) -> bytes:
  frame = _frame_as(frame, channels)
  if frame.ndim == 3:
    frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR.
  ok, data = cv2.imencode(".png", frame)
  if not ok:
    raise UserError(f"Cannot PNG-encode a frame of shape {frame.shape}.")
  return data.tobytes()


class VideoAnomalyBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Videos of one `data_pipeline.registry` dataset, one example per video."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  SOURCE = ""  # The registry name; also the TFDS name of every subclass.
  CHANNELS = 3
  HOMEPAGE = ""
  # TFDS locates a builder's checksums file through `code_path`, whose default
  # needs the `importlib_resources` backport (not installed with TFDS on
  # Python >= 3.9). These builders download nothing, so name this file.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=(
        f"{self.SOURCE} video anomaly detection: one example per "
        "video with frames (PNG) and 0/1 frame labels (empty and "
        "has_labels=False for training videos)."
      ),
      features=tfds.features.FeaturesDict(
        {
          "name": tfds.features.Text(),
          "frames": tfds.features.Video(shape=(None, None, None, self.CHANNELS), encoding_format="png"),
          "labels": tfds.features.Tensor(shape=(None,), dtype=np.uint8),
          "has_labels": np.bool_,
        }
      ),
      # Generation order is the registry's natural video order; keeping it
      # lets readers address video i as split[i:i+1].
      disable_shuffling=True,
      homepage=self.HOMEPAGE or None,
    )

  def _source_root(self, dl_manager) -> str:
    return os.fspath(dl_manager.manual_dir)

  def _split_generators(self, dl_manager):
    root = self._source_root(dl_manager)
    return {split: self._generate_examples(root, split) for split in ("train", "test")}

  def _encoded_frames(self, video) -> list[bytes]:
    if video.frame_paths is None:
      return [encode_png(f, self.CHANNELS) for f in frame_io.iter_frames(video)]
    # Image folders decode and encode one frame per task, in parallel.
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
      return list(pool.map(lambda p: encode_png(frame_io.read_frame(p), self.CHANNELS), video.frame_paths))

  def _generate_examples(self, root: str, split: str):
    for video in registry.list_videos(self.SOURCE, root, split):
      labels = video.labels
      yield (
        video.name,
        {
          "name": video.name,
          "frames": self._encoded_frames(video),
          "labels": (np.zeros(0, np.uint8) if labels is None else np.asarray(labels, np.uint8)),
          "has_labels": labels is not None,
        },
      )


class UcsdPed1(VideoAnomalyBuilder):
  """UCSD Ped1 (grey, 238x158)."""

  SOURCE = "ucsd_ped1"
  CHANNELS = 1
  HOMEPAGE = "http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _UCSD_INSTRUCTIONS.format(n=1)


class UcsdPed2(VideoAnomalyBuilder):
  """UCSD Ped2 (grey, 360x240)."""

  SOURCE = "ucsd_ped2"
  CHANNELS = 1
  HOMEPAGE = "http://www.svcl.ucsd.edu/projects/anomaly/dataset.htm"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _UCSD_INSTRUCTIONS.format(n=2)


class CuhkAvenue(VideoAnomalyBuilder):
  """CUHK Avenue (RGB, 640x360, .avi)."""

  SOURCE = "cuhk_avenue"
  HOMEPAGE = "http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download Avenue_Dataset.zip and ground_truth_demo.zip from
http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html and
extract both into the manual dir, so that it holds
'Avenue Dataset/training_videos/01.avi ...',
'Avenue Dataset/testing_videos/01.avi ...' and ground_truth_demo/testing_label_mask/1_label.mat ...
(ground_truth_demo may also sit inside 'Avenue Dataset').
"""


class Shanghaitech(VideoAnomalyBuilder):
  """ShanghaiTech Campus (RGB, 856x480)."""

  SOURCE = "shanghaitech"
  HOMEPAGE = "https://svip-lab.github.io/dataset/campus_dataset.html"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download shanghaitech.tar.gz (ShanghaiTech Campus) from
https://svip-lab.github.io/dataset/campus_dataset.html and extract it into the
manual dir, so that it holds shanghaitech/training/videos/01_001.avi ...,
shanghaitech/testing/frames/01_0014/000.jpg ... and
shanghaitech/testing/test_frame_mask/01_0014.npy ... (the inner shanghaitech/
level is optional).
"""


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  """Parameters of `data_pipeline.synthetic.generate` (see its DEFAULTS)."""

  params: dict = dataclasses.field(default_factory=dict)
  workers: int = 2  # Generator processes; the output does not depend on it.


class Synthetic(VideoAnomalyBuilder):
  """The procedural dataset of `data_pipeline.synthetic` (nothing to fetch)."""

  SOURCE = "synthetic"
  BUILDER_CONFIGS = [SyntheticConfig(name="default")]

  def _source_root(self, dl_manager) -> str:
    # Generated on the fly: the same parameters give byte-identical files.
    config = self.builder_config
    return synthetic.ensure(os.fspath(dl_manager.download_dir), workers=config.workers, **config.params)
