"""Ground truth checked against frame counts: per-frame labels and lazy pixel masks."""

from collections.abc import Callable, Iterable, Sequence
import dataclasses
import os

import numpy as np

from data_pipeline import frame_io
from data_pipeline.errors import UserError
from data_pipeline.sources import folders
from data_pipeline.video import Video


def as_labels(values, num_frames: int, where: str) -> np.ndarray:
  """0/1 values (any numeric or bool array) as uint8 (num_frames,).

  Args:
    values: array-like of per-frame labels; (1, n) and (n, 1) are accepted
      because MATLAB and some published .npy files keep a singleton axis.
    num_frames: the frame count the labels must match.
    where: the file (and entry) the labels came from, for messages.
  """
  array = np.asarray(values)
  if array.ndim == 2 and 1 in array.shape:
    array = array.reshape(-1)
  if array.ndim != 1:
    raise UserError(f"{where}: labels of shape {array.shape}; expected one label per frame ({num_frames},).")
  if array.dtype.kind not in "biuf":
    raise UserError(f"{where}: labels of type {array.dtype}; expected 0/1.")
  if array.shape[0] != num_frames:
    raise UserError(f"{where}: found {array.shape[0]} labels, expected {num_frames} (one per frame).")
  if not np.isin(array, (0, 1)).all():
    raise UserError(f"{where}: labels must be 0 or 1, found {np.unique(array)[:5].tolist()}.")
  return array.astype(np.uint8)


def load_npy(path: str, mmap: bool = False) -> np.ndarray:
  """np.load that never unpickles and names the file when it fails."""
  try:
    return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f"{path}: not a readable .npy array ({e}).") from None


def read_txt(path: str, num_frames: int) -> np.ndarray:
  """One 0/1 per frame, separated by any whitespace."""
  try:
    with open(path) as f:
      tokens = f.read().split()
  except (OSError, UnicodeDecodeError) as e:
    raise UserError(f"{path}: cannot read labels ({e}).") from None
  bad = [t for t in tokens if t not in ("0", "1")]
  if bad:
    raise UserError(f"{path}: label {bad[0]!r} is not 0 or 1.")
  return as_labels(np.array(tokens, dtype=np.uint8), num_frames, path)


def read_label_file(path: str, num_frames: int) -> np.ndarray:
  if path.endswith(".npy"):
    return as_labels(load_npy(path), num_frames, path)
  return read_txt(path, num_frames)


def ranges_to_labels(ranges: Iterable[tuple[int, int]], num_frames: int, where: str) -> np.ndarray:
  """Labels from 1-based inclusive [start, end] ranges of anomalous frames."""
  labels = np.zeros(num_frames, np.uint8)
  for start, end in ranges:
    if start > end:
      raise UserError(f"{where}: range [{start}:{end}] has start > end.")
    if start < 1 or end > num_frames:
      raise UserError(f"{where}: range [{start}:{end}] is outside the video's frames 1..{num_frames}.")
    labels[start - 1 : end] = 1
  return labels


def _binary_uint8(masks: np.ndarray) -> np.ndarray:
  # uint8 already satisfies 'nonzero = anomalous'; converting would double
  # the memory of multi-GB mask arrays for nothing.
  if masks.dtype == np.uint8:
    return masks
  return (masks != 0).astype(np.uint8)


def npy_mask_loader(path: str, num_frames: int) -> Callable[[], np.ndarray]:
  """A loader for an (n, H, W) .npy mask file, its shape checked now."""
  header = load_npy(path, mmap=True)  # reads the header only
  if header.ndim != 3 or header.shape[0] != num_frames:
    raise UserError(f"{path}: masks of shape {header.shape}; expected ({num_frames}, H, W), one per frame.")
  del header
  return lambda: _binary_uint8(load_npy(path))


def image_mask_loader(folder: str, num_frames: int) -> Callable[[], np.ndarray]:
  """A loader for a folder of one mask image per frame, its count checked now."""
  paths = folders.frame_files(folder)
  if len(paths) != num_frames:
    raise UserError(f"{folder}: found {len(paths)} mask images, expected {num_frames} (one per frame).")
  return lambda: stack_masks([frame_io.read_frame(p) for p in paths], folder)


def stack_masks(masks: Sequence[np.ndarray], where: str) -> np.ndarray:
  """Per-frame masks (grey or colour) as one uint8 (n, H, W) 0/1 array."""
  flat = [m.any(axis=-1) if m.ndim == 3 else m != 0 for m in masks]
  shapes = sorted({m.shape for m in flat})
  if len(shapes) != 1 or len(shapes[0]) != 2:
    raise UserError(f"{where}: masks of differing or non-2-D shapes {shapes[:3]}; expected one (H, W) for all frames.")
  return np.stack(flat).astype(np.uint8)


def with_ground_truth(
  video: Video, labels: np.ndarray | None = None, mask_loader: Callable[[], np.ndarray] | None = None
) -> Video:
  return dataclasses.replace(video, labels=labels, mask_loader=mask_loader)


def optional_file(*candidates: str) -> str | None:
  """The one existing file among `candidates`, None if none exists."""
  found = [c for c in candidates if os.path.isfile(c)]
  if len(found) > 1:
    raise UserError(f"{found[0]}: also found {found[1]}; keep one ground-truth file per video.")
  return found[0] if found else None
