"""CUHK Avenue: .avi videos with per-frame pixel masks in MATLAB files.

    Avenue Dataset/training_videos/01.avi ...
    Avenue Dataset/testing_videos/01.avi ...
    ground_truth_demo/testing_label_mask/1_label.mat   (volLabel: 1 x n cell of masks)

`ground_truth_demo` ships as a separate archive, so it may sit beside or
inside the 'Avenue Dataset' folder.
"""

import os

import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.sources import folders
from data_pipeline.sources import labels as labels_lib
from data_pipeline.sources import matfile
from data_pipeline.video import Video

_DATASET = "Avenue Dataset"
_SPLIT_DIR = {"train": "training_videos", "test": "testing_videos"}
_LABEL_DIR = os.path.join("ground_truth_demo", "testing_label_mask")


def dataset_dir(root: str) -> str:
  """The folder holding training_videos/ and testing_videos/."""
  if not os.path.isdir(root):
    raise UserError(f"{root}: dataset root folder not found.")
  nested = os.path.join(root, _DATASET)
  return nested if os.path.isdir(nested) else root


def _label_dir(root: str, base: str) -> str | None:
  for parent in (base, root, os.path.dirname(os.path.normpath(base))):
    candidate = os.path.join(parent, _LABEL_DIR)
    if os.path.isdir(candidate):
      return candidate
  return None


def read_masks(path: str) -> list[np.ndarray]:
  """The per-frame masks of one N_label.mat file."""
  vol = matfile.load_variable(path, "volLabel")
  try:
    masks = matfile.cells(vol)
  except TypeError:
    raise UserError(
      f"{path}: volLabel is a {vol.dtype} array of shape {vol.shape}; expected a 1 x n cell of masks."
    ) from None
  if any(m.ndim != 2 for m in masks):
    raise UserError(f"{path}: volLabel holds non-2-D masks; expected one H x W mask per frame.")
  return masks


def _label_file(label_dir: str, name: str) -> str | None:
  # Official files drop the leading zero: video 01.avi -> 1_label.mat.
  names = [f"{name}_label.mat"]
  if name.isdigit():
    names.append(f"{int(name)}_label.mat")
  return labels_lib.optional_file(*sorted({os.path.join(label_dir, n) for n in names}))


def _with_labels(video: Video, path: str) -> Video:
  masks = read_masks(path)
  if len(masks) != video.num_frames:
    raise UserError(f"{path}: found {len(masks)} masks, expected {video.num_frames} (frames of {video.video_path}).")
  frame_labels = np.array([m.any() for m in masks], np.uint8)
  del masks  # several hundred MB for long videos; reloaded on demand
  return labels_lib.with_ground_truth(video, frame_labels, lambda: labels_lib.stack_masks(read_masks(path), path))


def list_videos(root: str, split: str) -> list[Video]:
  """Avenue videos; test videos with a label file get labels and masks."""
  folders.check_split(split)
  base = dataset_dir(root)
  split_dir = folders.require_dir(os.path.join(base, _SPLIT_DIR[split]), f"{split} split")
  videos = folders.scan_split(split_dir, folders=False)
  if split == "train":
    return videos
  label_dir = _label_dir(root, base)
  if label_dir is None:
    return videos
  out = []
  for video in videos:
    path = _label_file(label_dir, video.name)
    out.append(video if path is None else _with_labels(video, path))
  return out
