"""The generic layout (also written by the synthetic generator).

<root>/train/<video>/<frames>   or   <root>/train/<video>.avi|.mp4
<root>/test/<video>/<frames>    or   <root>/test/<video>.avi|.mp4
<root>/test/<video>.txt         one 0/1 per frame (or <video>.npy, (n,))
<root>/test/<video>_mask.npy    optional uint8 (n, H, W), nonzero = anomalous
"""

import os

from data_pipeline.sources import folders
from data_pipeline.sources import labels as labels_lib
from data_pipeline.video import Video


def _with_ground_truth(split_dir: str, video: Video) -> Video:
  stem = os.path.join(split_dir, video.name)
  label_path = labels_lib.optional_file(stem + ".txt", stem + ".npy")
  mask_path = stem + "_mask.npy"
  frame_labels = mask_loader = None
  if label_path is not None:
    frame_labels = labels_lib.read_label_file(label_path, video.num_frames)
  if os.path.isfile(mask_path):
    mask_loader = labels_lib.npy_mask_loader(mask_path, video.num_frames)
  return labels_lib.with_ground_truth(video, frame_labels, mask_loader)


def list_videos(root: str, split: str) -> list[Video]:
  """Videos of `<root>/<split>`; ground truth is read for any split that has it."""
  folders.check_split(split)
  folders.require_dir(root, "dataset root")
  split_dir = folders.require_dir(os.path.join(root, split), f"{split} split")
  videos = folders.scan_split(split_dir)
  return [_with_ground_truth(split_dir, v) for v in videos]
