"""The community "frames" repackaging (ped1/ped2/avenue/shanghaitech as JPEG folders).

<root>/training/frames/<video>/0.jpg ...     (0-based frame names)
<root>/testing/frames/<video>/0.jpg ...
test labels, first found wins:
  <root>/testing/test_frame_mask/<video>.npy   per-video 0/1
    (+ optional <root>/testing/test_pixel_mask/<video>.npy, (n, H, W))
  <root>/<name>.mat            gt: per test video one [start end] pair or
                               a 2 x k matrix of pairs (1-based inclusive)
  <root>/frame_labels_<name>.npy   all test frames concatenated
  <root>/gt_label.json         JSON, or a numpy pickle despite its name
"""

import glob
import json
import os

import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.sources import folders
from data_pipeline.sources import labels as labels_lib
from data_pipeline.sources import matfile
from data_pipeline.sources import safe_pickle
from data_pipeline.video import Video

_SPLIT_DIR = {"train": "training", "test": "testing"}


def attach_per_video(root: str, videos: list[Video]) -> list[Video]:
  """Labels from testing/test_frame_mask, masks from testing/test_pixel_mask."""
  label_dir = os.path.join(root, "testing", "test_frame_mask")
  mask_dir = os.path.join(root, "testing", "test_pixel_mask")
  out = []
  for video in videos:
    label_path = os.path.join(label_dir, video.name + ".npy")
    mask_path = os.path.join(mask_dir, video.name + ".npy")
    frame_labels = mask_loader = None
    if os.path.isfile(label_path):
      frame_labels = labels_lib.read_label_file(label_path, video.num_frames)
    if os.path.isfile(mask_path):
      mask_loader = labels_lib.npy_mask_loader(mask_path, video.num_frames)
    out.append(labels_lib.with_ground_truth(video, frame_labels, mask_loader))
  return out


def _pick(root: str, pattern: str, preferred: str) -> str | None:
  found = sorted(glob.glob(os.path.join(glob.escape(root), pattern)))
  if len(found) <= 1:
    return found[0] if found else None
  preferred = os.path.join(root, preferred)
  if preferred in found:
    return preferred
  raise UserError(
    f"{found[0]}: several candidate label files in {root} "
    f"({', '.join(os.path.basename(f) for f in found)}); "
    f"keep one or name it {os.path.basename(preferred)}."
  )


def _pairs(value: np.ndarray, where: str) -> list[tuple[int, int]]:
  """[start end] pairs of one video: a pair, or a 2 x k matrix of columns."""
  array = np.asarray(value)
  if array.size == 0:
    return []
  if array.size == 2:
    array = array.reshape(2, 1)
  if array.ndim != 2 or array.shape[0] != 2:
    raise UserError(f"{where}: ranges of shape {array.shape}; expected [start end] or a 2 x k matrix of pairs.")
  if array.dtype.kind not in "iuf" or (array != np.round(array)).any():
    raise UserError(f"{where}: ranges must be whole frame numbers.")
  return [(int(s), int(e)) for s, e in array.T]


def _mat_entries(path: str, num_videos: int) -> list[np.ndarray]:
  gt = matfile.load_variable(path, "gt")
  if gt.dtype == object:
    return matfile.cells(gt)
  # A plain matrix with one pair per video: rows (k x 2) or columns (2 x k).
  if gt.ndim == 2 and gt.shape == (num_videos, 2):
    return list(gt)
  if gt.ndim == 2 and gt.shape == (2, num_videos):
    return list(gt.T)
  raise UserError(
    f"{path}: gt of shape {gt.shape}; expected a cell or matrix with one entry per test video ({num_videos})."
  )


def _from_mat(path: str, videos: list[Video]) -> list[np.ndarray]:
  entries = _mat_entries(path, len(videos))
  if len(entries) != len(videos):
    raise UserError(f"{path}: found {len(entries)} gt entries, expected {len(videos)} (one per test video).")
  return [
    labels_lib.ranges_to_labels(
      _pairs(entry, f"{path} entry {i} ({v.name})"), v.num_frames, f"{path} entry {i} ({v.name})"
    )
    for i, (entry, v) in enumerate(zip(entries, videos), 1)
  ]


def _split_concatenated(values, path: str, videos: list[Video]) -> list[np.ndarray]:
  flat = np.asarray(values)
  if flat.ndim == 2 and flat.shape[0] == 1:
    flat = flat[0]  # saved as (1, total) by some repackagings
  total = sum(v.num_frames for v in videos)
  if flat.ndim != 1 or flat.shape[0] != total:
    raise UserError(
      f"{path}: found labels of shape {flat.shape}, expected "
      f"({total},): every test frame of {len(videos)} videos "
      "in order."
    )
  bounds = np.cumsum([0] + [v.num_frames for v in videos])
  return [
    labels_lib.as_labels(flat[a:b], v.num_frames, f"{path} ({v.name})")
    for a, b, v in zip(bounds[:-1], bounds[1:], videos)
  ]


def _from_json_or_pickle(path: str, videos: list[Video]) -> list[np.ndarray]:
  with open(path, "rb") as f:
    head = f.read(1)
  if head == b"\x80":  # pickle protocol >= 2 marker; never valid JSON
    values = safe_pickle.load(path)
  else:
    try:
      with open(path, encoding="utf-8") as f:
        values = json.load(f)
    except (ValueError, UnicodeDecodeError):
      values = safe_pickle.load(path)
  if isinstance(values, np.ndarray) and values.dtype == object:
    values = list(values)
  per_video = isinstance(values, (list, tuple)) and len(values) == len(videos) and all(np.ndim(x) == 1 for x in values)
  if per_video:
    return [labels_lib.as_labels(x, v.num_frames, f"{path} ({v.name})") for x, v in zip(values, videos)]
  try:
    return _split_concatenated(values, path, videos)
  except ValueError:  # ragged lists
    raise UserError(
      f"{path}: expected one label list per test video ({len(videos)}) or all labels concatenated."
    ) from None


def _global_labels(root: str, videos: list[Video]) -> list[np.ndarray] | None:
  name = os.path.basename(os.path.normpath(os.path.abspath(root)))
  mat = _pick(root, "*.mat", f"{name}.mat")
  if mat is not None:
    return _from_mat(mat, videos)
  npy = _pick(root, "frame_labels_*.npy", f"frame_labels_{name}.npy")
  if npy is not None:
    return _split_concatenated(labels_lib.load_npy(npy), npy, videos)
  pickled = os.path.join(root, "gt_label.json")
  if os.path.isfile(pickled):
    return _from_json_or_pickle(pickled, videos)
  return None


def list_videos(root: str, split: str) -> list[Video]:
  """Frame-folder videos; test videos labelled from the first label source found."""
  folders.check_split(split)
  folders.require_dir(root, "dataset root")
  split_dir = folders.require_dir(os.path.join(root, _SPLIT_DIR[split], "frames"), f"{split} split")
  videos = folders.scan_split(split_dir, files=False)
  if split == "train":
    return videos
  videos = attach_per_video(root, videos)
  if os.path.isdir(os.path.join(root, "testing", "test_frame_mask")):
    return videos
  per_video = _global_labels(root, videos)
  if per_video is None:
    return videos
  return [labels_lib.with_ground_truth(v, y, v.mask_loader) for v, y in zip(videos, per_video)]
