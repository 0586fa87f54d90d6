"""Finding videos on disk: split folders, frame folders in natural order, video files."""

from collections.abc import Callable
import os
import re

from data_pipeline import frame_io
from data_pipeline.errors import UserError
from data_pipeline.video import Video

SPLITS = ("train", "test")


def check_split(split: str) -> None:
  if split not in SPLITS:
    raise UserError(f"split {split!r}: expected one of {', '.join(SPLITS)}.")


def natural_key(name: str) -> tuple[list, str]:
  """Sort key putting '2.jpg' before '10.jpg' (digit runs compare as numbers)."""
  # re.split with a group alternates text and digit runs, so the list elements
  # at each position always share a type and compare cleanly.
  parts = re.split(r"(\d+)", name)
  key = [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)]
  return key, name


def require_dir(path: str, what: str) -> str:
  if not os.path.isdir(path):
    raise UserError(f"{path}: {what} folder not found.")
  return path


def _visible(folder: str) -> list[str]:
  # Hidden entries are OS debris ('.DS_Store', '._001.tif'), never frames.
  return [n for n in os.listdir(folder) if not n.startswith(".")]


def frame_files(folder: str) -> tuple[str, ...]:
  """Absolute paths of the image files in `folder`, in natural order."""
  names = [
    n
    for n in _visible(folder)
    if n.lower().endswith(frame_io.IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, n))
  ]
  if not names:
    raise UserError(f"{folder}: empty video folder (no {'/'.join(frame_io.IMAGE_EXTENSIONS)} frames).")
  names.sort(key=natural_key)
  folder = os.path.abspath(folder)
  return tuple(os.path.join(folder, n) for n in names)


def frame_folder_video(name: str, folder: str) -> Video:
  paths = frame_files(folder)
  return Video(name=name, num_frames=len(paths), frame_paths=paths)


def container_videos(named_paths: list[tuple[str, str]]) -> list[Video]:
  """Videos for (name, file) pairs; frame counts come from decoding each file."""
  paths = [os.path.abspath(p) for _, p in named_paths]
  counts = frame_io.count_frames_many(paths)
  return [Video(name=name, num_frames=n, video_path=path) for (name, _), path, n in zip(named_paths, paths, counts)]


def scan_split(
  split_dir: str, *, folders: bool = True, files: bool = True, is_video_name: Callable[[str], bool] = lambda name: True
) -> list[Video]:
  """All videos directly under `split_dir`, naturally sorted by name.

  Args:
    split_dir: folder holding one sub-folder of frames or one video file per
      video.
    folders: whether sub-folders of frames count as videos.
    files: whether .avi/.mp4 files count as videos.
    is_video_name: filters sub-folders/stems, e.g. to skip 'Test001_gt'.
  """
  folder_entries, file_entries = {}, {}
  for entry in _visible(split_dir):
    path = os.path.join(split_dir, entry)
    stem, ext = os.path.splitext(entry)
    if folders and os.path.isdir(path) and is_video_name(entry):
      folder_entries[entry] = path
    elif files and ext.lower() in frame_io.VIDEO_EXTENSIONS and os.path.isfile(path) and is_video_name(stem):
      if stem in file_entries:
        raise UserError(f"{path}: two video files named {stem!r} in {split_dir}; keep one.")
      file_entries[stem] = path
  both = sorted(set(folder_entries) & set(file_entries))
  if both:
    raise UserError(
      f"{file_entries[both[0]]}: video {both[0]!r} exists both as a frame folder and as a video file; keep one."
    )
  if not folder_entries and not file_entries:
    raise UserError(
      f"{split_dir}: no videos found (expected frame folders or {'/'.join(frame_io.VIDEO_EXTENSIONS)} files)."
    )
  videos = [frame_folder_video(n, p) for n, p in folder_entries.items()]
  videos += container_videos(sorted(file_entries.items()))
  return sorted(videos, key=lambda v: natural_key(v.name))
