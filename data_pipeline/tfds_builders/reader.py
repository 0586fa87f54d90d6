"""Feeding a built TFDS dataset into the frame store instead of raw files.

Listing reads every example once with the frames left encoded (names, labels
and frame counts only); each video's PNGs are decoded later, on the store's
decoding threads, from a one-example slice of the split.
"""

import dataclasses
import os

import cv2
import numpy as np
import tensorflow_datasets as tfds

from data_pipeline import tfdata
from data_pipeline.errors import UserError


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsVideo:
  """A video of a built TFDS split; duck-types `data_pipeline.video.Video`."""

  name: str
  num_frames: int
  index: int  # Position in the split (the builders disable shuffling).
  labels: np.ndarray | None = None
  mask_loader = None  # Pixel masks are not stored in the TFDS datasets.
  fingerprint: str = ""


def _decode_png(data: bytes) -> np.ndarray:
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
  if image.ndim == 3:
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
  return image


def list_videos(name: str, split: str, data_dir: str):
  """(records, reader, cache tag) of split `split` of TFDS dataset `name`."""
  tfdata.tf_module()  # Hides accelerators before TFDS creates TF ops.
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise UserError(
      f"TFDS dataset {name!r}: no builder; expected one of ucsd_ped1, ucsd_ped2, cuhk_avenue, shanghaitech, synthetic."
    ) from None
  if not builder.is_prepared():
    raise UserError(
      f"{data_dir}: TFDS dataset {name!r} is not built there; "
      "build it with `python3 -m data_pipeline.tfds_builders "
      f"--dataset {name} --data_dir {data_dir} "
      "--manual_dir ...`."
    )
  if split not in builder.info.splits:
    raise UserError(f"TFDS dataset {name!r}: no split {split!r}.")
  skip = {"frames": tfds.decode.SkipDecoding()}
  info_file = os.path.join(os.fspath(builder.data_dir), "dataset_info.json")
  stamp = f"{builder.info.full_name}@{os.stat(info_file).st_mtime_ns}"

  def dataset(split_spec):
    return builder.as_dataset(split=split_spec, decoders=skip, shuffle_files=False)

  records = []
  for i, example in enumerate(tfds.as_numpy(dataset(split))):
    labels = example["labels"] if example["has_labels"] else None
    records.append(
      TfdsVideo(
        name=example["name"].decode(), num_frames=len(example["frames"]), index=i, labels=labels, fingerprint=stamp
      )
    )

  def read(record):
    (example,) = tfds.as_numpy(dataset(f"{split}[{record.index}:{record.index + 1}]"))
    return map(_decode_png, example["frames"])

  tag = ("tfds", name, os.path.abspath(data_dir), split, stamp)
  return records, read, tag
