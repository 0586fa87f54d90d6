"""UCSD Ped1 / Ped2: TIFF frame folders, frame ranges in a MATLAB script, mask folders.

UCSDpedN/Train/Train001/001.tif ...
UCSDpedN/Test/Test001/001.tif ...
UCSDpedN/Test/Test001_gt/001.bmp ...       (optional pixel masks)
UCSDpedN/Test/UCSDpedN.m                   (TestVideoFile{end+1}.gt_frame = [61:180];)
"""

import os
import re

from data_pipeline.errors import UserError
from data_pipeline.sources import folders
from data_pipeline.sources import labels as labels_lib
from data_pipeline.video import Video

_SPLIT_DIR = {"train": "Train", "test": "Test"}
_GT_LINE = re.compile(r"TestVideoFile\{end\+1\}\.gt_frame\s*=\s*\[(.*)\]\s*;?")
_RANGE = re.compile(r"(\d+)(?::(\d+))?")


def dataset_dir(root: str, ped: int) -> str:
  """The UCSDpedN folder, given it or a folder containing it."""
  name = f"UCSDped{ped}"
  if not os.path.isdir(root):
    raise UserError(f"{root}: dataset root folder not found.")
  if os.path.basename(os.path.normpath(root)) == name or any(
    os.path.isdir(os.path.join(root, d)) for d in _SPLIT_DIR.values()
  ):
    return root
  for candidate in (os.path.join(root, name), os.path.join(root, "UCSD_Anomaly_Dataset.v1p2", name)):
    if os.path.isdir(candidate):
      return candidate
  raise UserError(
    f"{root}: no {name} folder found (expected {root}/{name}/Train and Test, or Train and Test directly in it)."
  )


def _parse_ranges(text: str, where: str) -> list[tuple[int, int]]:
  ranges = []
  for item in re.split(r"[,\s]+", re.sub(r"\s*:\s*", ":", text.strip())):
    if not item:
      continue
    match = _RANGE.fullmatch(item)
    if not match:
      raise UserError(f"{where}: cannot parse {item!r}; expected start:end.")
    start = int(match.group(1))
    ranges.append((start, int(match.group(2) or start)))
  return ranges


def parse_gt_script(path: str) -> list[list[tuple[int, int]]]:
  """One list of 1-based inclusive (start, end) ranges per gt_frame entry."""
  try:
    with open(path, encoding="latin-1") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise UserError(f"{path}: cannot read ground truth ({e.strerror}).") from None
  entries = []
  for line_no, raw in enumerate(lines, 1):
    line = raw.split("%", 1)[0].strip()  # MATLAB comments
    if "gt_frame" not in line:
      continue
    match = _GT_LINE.fullmatch(line)
    where = f"{path} entry {len(entries) + 1} (line {line_no})"
    if not match:
      raise UserError(f"{where}: cannot parse {line!r}; expected TestVideoFile{{end+1}}.gt_frame = [start:end, ...];")
    entries.append(_parse_ranges(match.group(1), where))
  return entries


def _test_ground_truth(base: str, ped: int, videos: list[Video]) -> list[Video]:
  test_dir = os.path.join(base, "Test")
  script = os.path.join(test_dir, f"UCSDped{ped}.m")
  if not os.path.isfile(script):
    raise UserError(f"{script}: ground-truth file not found.")
  entries = parse_gt_script(script)
  if len(entries) != len(videos):
    first = min(len(entries), len(videos))
    extra = f"entry {first + 1} has no test video" if len(entries) > first else f"{videos[first].name} has no entry"
    raise UserError(f"{script}: {len(entries)} gt_frame entries for {len(videos)} test videos in {test_dir}; {extra}.")
  out = []
  for index, (video, ranges) in enumerate(zip(videos, entries), 1):
    where = f"{script} entry {index} ({video.name})"
    frame_labels = labels_lib.ranges_to_labels(ranges, video.num_frames, where)
    mask_dir = os.path.join(test_dir, f"{video.name}_gt")
    mask_loader = None
    if os.path.isdir(mask_dir):
      mask_loader = labels_lib.image_mask_loader(mask_dir, video.num_frames)
    out.append(labels_lib.with_ground_truth(video, frame_labels, mask_loader))
  return out


def list_videos(root: str, split: str, ped: int = 2) -> list[Video]:
  """Videos of UCSD Ped`ped` (1 or 2); test videos carry labels from the .m file."""
  folders.check_split(split)
  base = dataset_dir(root, ped)
  split_dir = folders.require_dir(os.path.join(base, _SPLIT_DIR[split]), f"{split} split")
  prefix = _SPLIT_DIR[split]
  # Skips 'Test001_gt' mask folders and anything else that is not a video.
  videos = folders.scan_split(
    split_dir, files=False, is_video_name=lambda n: re.fullmatch(prefix + r"\d+", n) is not None
  )
  if split == "test":
    videos = _test_ground_truth(base, ped, videos)
  return videos
