"""ShanghaiTech Campus: training videos, test frame folders, per-video .npy ground truth.

training/videos/01_001.avi ...
testing/frames/01_0014/000.jpg ...
testing/test_frame_mask/01_0014.npy     (n,) 0/1 per frame
testing/test_pixel_mask/01_0014.npy     (n, H, W), nonzero = anomalous
"""

import os

from data_pipeline.errors import UserError
from data_pipeline.sources import folders
from data_pipeline.sources import frames
from data_pipeline.video import Video


def dataset_dir(root: str) -> str:
  """The folder holding training/ and testing/, given it or its parent."""
  if not os.path.isdir(root):
    raise UserError(f"{root}: dataset root folder not found.")
  for nested in ("shanghaitech", "ShanghaiTech"):
    candidate = os.path.join(root, nested)
    if not os.path.isdir(os.path.join(root, "training")) and os.path.isdir(candidate):
      return candidate
  return root


def list_videos(root: str, split: str) -> list[Video]:
  """ShanghaiTech videos; test videos get labels/masks where their .npy exist."""
  folders.check_split(split)
  base = dataset_dir(root)
  if split == "train":
    videos_dir = os.path.join(base, "training", "videos")
    frames_dir = os.path.join(base, "training", "frames")
    # Some copies ship the training set already extracted to frames.
    if not os.path.isdir(videos_dir) and os.path.isdir(frames_dir):
      return folders.scan_split(frames_dir, files=False)
    folders.require_dir(videos_dir, "train split")
    return folders.scan_split(videos_dir, folders=False)
  test_dir = folders.require_dir(os.path.join(base, "testing", "frames"), "test split")
  return frames.attach_per_video(base, folders.scan_split(test_dir, files=False))
