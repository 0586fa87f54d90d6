"""A split's frames, decoded once, resized and channel-converted, in one array.

Decoding JPEG/TIFF/AVI frames is the slow part of feeding a video model, and
training reads every frame T times per epoch. The store therefore decodes each
frame exactly once (threads: OpenCV releases the GIL) into a single uint8 array
(total_frames, H, W, C). With a `cache_dir` that array lives in an .npy file,
keyed by the sources' paths and modification times, and is memory-mapped, so
later runs start at once and splits larger than RAM still stream.
"""

from collections.abc import Callable, Iterable, Sequence
import concurrent.futures
import hashlib
import json
import os
import time
from typing import Any
import uuid

import cv2
import numpy as np

from data_pipeline import clips
from data_pipeline import frame_io
from data_pipeline.errors import UserError

FORMAT_VERSION = 1
# Frames per decode task for image-folder videos: small enough to spread one
# long video over all cores, large enough to keep task overhead negligible.
_CHUNK = 32

Reader = Callable[[Any], Iterable[np.ndarray]]


class FrameStore:
  """Frames of one split; video `v` is rows [offsets[v], offsets[v]+lengths[v]).

  Records are the source's `Video`s (or any object with `name`, `labels` and
  `mask_loader`); they keep ground truth out of the cache so that fixing a label
  file never needs a re-decode.
  """

  def __init__(self, frames: np.ndarray, lengths: Sequence[int], records: Sequence[Any], path: str | None = None):
    if frames.ndim != 4 or frames.dtype != np.uint8:
      raise ValueError(f"frames must be uint8 (N, H, W, C), got {frames.dtype} {frames.shape}.")
    self.frames = frames
    self.lengths = np.asarray(lengths, np.int64)
    self.offsets = clips.offsets_of(self.lengths)
    self._records = tuple(records)
    self.path = path
    if len(self._records) != len(self.lengths):
      raise ValueError("One record per video is required.")
    if int(self.lengths.sum()) != len(frames):
      raise ValueError(f"lengths sum to {int(self.lengths.sum())}, but the store holds {len(frames)} frames.")

  @property
  def image_size(self) -> tuple[int, int]:
    return tuple(self.frames.shape[1:3])

  @property
  def channels(self) -> int:
    return self.frames.shape[3]

  @property
  def total_frames(self) -> int:
    return len(self.frames)

  @property
  def num_videos(self) -> int:
    return len(self._records)

  @property
  def video_names(self) -> list[str]:
    return [r.name for r in self._records]

  def num_frames(self, v: int) -> int:
    return int(self.lengths[v])

  def video_frames(self, v: int) -> np.ndarray:
    """uint8 (n, H, W, C) frames of video `v` (a view, no copy)."""
    return self.frames[self.offsets[v] : self.offsets[v] + self.lengths[v]]

  def labels(self, v: int) -> np.ndarray | None:
    """uint8 (n,) frame labels of video `v` (1 = anomalous), or None."""
    labels = getattr(self._records[v], "labels", None)
    return None if labels is None else np.asarray(labels, np.uint8)

  def masks(self, v: int) -> np.ndarray | None:
    """uint8 (n, H0, W0) pixel masks at the original resolution, or None."""
    loader = getattr(self._records[v], "mask_loader", None)
    return None if loader is None else np.asarray(loader(), np.uint8)


def _log_info(message: str, *args) -> None:
  # absl is imported only when there is something to log: scoring a video with onnxruntime needs no absl.
  from absl import logging  # pylint: disable=g-import-not-at-top

  logging.info(message, *args)


def convert(frame: np.ndarray, image_size: tuple[int, int], channels: int) -> np.ndarray:
  """A decoded uint8 frame (H0, W0[, 3]) as uint8 (H, W, channels)."""
  frame = np.asarray(frame)
  if frame.ndim == 3 and frame.shape[2] == 1:
    frame = frame[..., 0]
  if channels == 1 and frame.ndim == 3:
    frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
  height, width = image_size
  if frame.shape[:2] != (height, width):
    # INTER_AREA averages when shrinking (no aliasing) but is poor at
    # enlarging, where bilinear is the usual choice.
    shrink = height <= frame.shape[0] and width <= frame.shape[1]
    frame = cv2.resize(frame, (width, height), interpolation=(cv2.INTER_AREA if shrink else cv2.INTER_LINEAR))
  if frame.ndim == 2:
    # Grey content is replicated after resizing: one resize instead of three.
    frame = np.repeat(frame[..., None], channels, axis=2)
  return frame


def _fingerprint(record: Any) -> list[Any]:
  """What identifies a record's frames on disk (changes when they change)."""
  paths = getattr(record, "frame_paths", None)
  if paths is None and getattr(record, "video_path", None) is not None:
    paths = (record.video_path,)
  if paths is None:
    return [record.name, record.num_frames, getattr(record, "fingerprint", "")]
  stats = []
  for path in paths:
    st = os.stat(path)
    stats.append([os.path.abspath(path), st.st_mtime_ns, st.st_size])
  return [record.name, record.num_frames, stats]


def cache_key(records: Sequence[Any], image_size: tuple[int, int], channels: int, cache_tag: Sequence[Any] = ()) -> str:
  blob = json.dumps([FORMAT_VERSION, list(cache_tag), list(image_size), channels, [_fingerprint(r) for r in records]])
  return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _decode_tasks(records, reader):
  """(video, first frame, frame paths or None) units of decoding work."""
  for v, record in enumerate(records):
    paths = getattr(record, "frame_paths", None)
    if reader is None and paths is not None:
      for first in range(0, len(paths), _CHUNK):
        yield v, first, paths[first : first + _CHUNK]
    else:
      yield v, 0, None


def _decode_into(out: np.ndarray, records: Sequence[Any], reader: Reader | None, num_threads: int | None) -> None:
  offsets = clips.offsets_of([r.num_frames for r in records])
  image_size, channels = out.shape[1:3], out.shape[3]

  def run(task):
    v, first, paths = task
    record = records[v]
    if paths is not None:
      frames, expected = map(frame_io.read_frame, paths), len(paths)
    else:
      frames = (reader or frame_io.iter_frames)(record)
      expected = record.num_frames
    count = 0
    for frame in frames:
      if count == expected:
        break
      out[offsets[v] + first + count] = convert(frame, image_size, channels)
      count += 1
    if count != expected:
      where = getattr(record, "video_path", None) or record.name
      raise UserError(f"{where}: decoded {count} frames, expected {expected} (was the file changed while loading?).")

  workers = num_threads or os.cpu_count() or 1
  pool = concurrent.futures.ThreadPoolExecutor(workers)
  try:
    futures = [pool.submit(run, t) for t in _decode_tasks(records, reader)]
    for future in concurrent.futures.as_completed(futures):
      future.result()
  finally:
    pool.shutdown(wait=True, cancel_futures=True)


def _open_cached(base: str, shape: tuple[int, ...], lengths: list[int]) -> np.ndarray | None:
  try:
    with open(base + ".json") as f:
      index = json.load(f)
    frames = np.load(base + ".npy", mmap_mode="r", allow_pickle=False)
  except (OSError, ValueError):
    return None
  if index.get("lengths") != lengths or frames.dtype != np.uint8 or tuple(frames.shape) != shape:
    return None
  return frames


def _write_json(path: str, content: Any) -> None:
  tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex}"
  with open(tmp, "w") as f:
    json.dump(content, f)
  os.replace(tmp, path)


def build(
  records: Sequence[Any],
  image_size: tuple[int, int],
  channels: int,
  cache_dir: str | None = None,
  cache_tag: Sequence[Any] = (),
  reader: Reader | None = None,
  num_threads: int | None = None,
) -> FrameStore:
  """Decodes `records` into a FrameStore, or opens the matching cached one.

  Args:
    records: `Video`s of one split (anything with name, num_frames, labels,
      mask_loader, and frame_paths / video_path unless `reader` is given).
    image_size: (H, W) of the stored frames.
    channels: 1 (grey) or 3 (RGB).
    cache_dir: folder for `<key>.npy` + `<key>.json`; None keeps it in memory.
    cache_tag: extra values for the cache key (dataset name, root, split).
    reader: record -> iterable of uint8 frames; default `frame_io`.
    num_threads: decoding threads; default all cores.
  """
  height, width = image_size
  if height < 1 or width < 1:
    raise UserError(f"image_size must be two positive integers, got {tuple(image_size)}.")
  if channels not in (1, 3):
    raise UserError(f"channels must be 1 or 3, got {channels}.")
  records = list(records)
  if not records:
    raise UserError(f"The split has no videos (cache tag {list(cache_tag)}).")
  lengths = [int(r.num_frames) for r in records]
  shape = (sum(lengths), height, width, channels)
  start = time.time()
  if cache_dir is None:
    frames = np.empty(shape, np.uint8)
    _decode_into(frames, records, reader, num_threads)
    frames.setflags(write=False)
    _log_info("Decoded %d frames in %.1f s.", shape[0], time.time() - start)
    return FrameStore(frames, lengths, records)

  os.makedirs(cache_dir, exist_ok=True)
  base = os.path.join(cache_dir, cache_key(records, image_size, channels, cache_tag))
  frames = _open_cached(base, shape, lengths)
  if frames is not None:
    _log_info("Opened cached frame store %s.npy.", base)
    return FrameStore(frames, lengths, records, path=base + ".npy")
  tmp = f"{base}.npy.tmp-{os.getpid()}-{uuid.uuid4().hex}"
  try:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    _decode_into(out, records, reader, num_threads)
    out.flush()
    del out
    os.replace(tmp, base + ".npy")
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  # The index is written last: its presence marks a complete store.
  _write_json(
    base + ".json",
    {
      "format": FORMAT_VERSION,
      "tag": [str(t) for t in cache_tag],
      "names": [r.name for r in records],
      "lengths": lengths,
      "shape": list(shape),
    },
  )
  _log_info("Decoded %d frames into %s.npy in %.1f s.", shape[0], base, time.time() - start)
  frames = np.load(base + ".npy", mmap_mode="r", allow_pickle=False)
  return FrameStore(frames, lengths, records, path=base + ".npy")
