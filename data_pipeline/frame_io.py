"""Reading the frames of a `Video` with OpenCV, as uint8 RGB (H, W, 3) or grey (H, W)."""

from collections.abc import Iterator, Sequence
import concurrent.futures
import os

import cv2
import numpy as np

from data_pipeline.errors import UserError
from data_pipeline.video import Video

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".avi", ".mp4")

# Trailing bytes some encoders leave after a JPEG's end-of-image marker.
_JPEG_TAIL = 1024


def _to_uint8(image: np.ndarray, path: str) -> np.ndarray:
  if image.dtype == np.uint8:
    return image
  if image.dtype == np.uint16:
    # Rescale the full 16-bit range; a plain cast would wrap around.
    return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
  raise UserError(f"{path}: unsupported pixel type {image.dtype}; expected 8- or 16-bit images.")


def _to_rgb_or_grey(image: np.ndarray, path: str) -> np.ndarray:
  if image.ndim == 2:
    return image
  channels = image.shape[2]
  if channels == 1:
    return image[..., 0]
  if channels == 3:
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
  if channels == 4:
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
  raise UserError(f"{path}: {channels} channels; expected 1, 3 or 4.")


# Markers with no length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xDA)}


def _jpeg_header_error(data: bytes) -> str | None:
  """What is wrong with a JPEG's marker segments up to its scan, or None.

  libjpeg decodes a file whose tables are damaged after only a warning, filling the
  picture with garbage; a damaged table or segment is caught here instead.
  """
  if data[:2] != b"\xff\xd8":
    return "no start-of-image marker"
  pos = 2
  while True:
    if pos + 4 > len(data):
      return "ends inside its header"
    if data[pos] != 0xFF:
      return f"damaged header: expected a marker at byte {pos}, found 0x{data[pos]:02x}"
    while pos + 1 < len(data) and data[pos + 1] == 0xFF:  # fill bytes
      pos += 1
    marker = data[pos + 1]
    if marker in _STANDALONE or marker == 0x00:
      return f"damaged header: unexpected marker 0xff{marker:02x} at byte {pos}"
    length = int.from_bytes(data[pos + 2 : pos + 4], "big")
    end = pos + 2 + length
    if length < 2 or end > len(data):
      return f"damaged header: segment 0xff{marker:02x} at byte {pos} runs past the end"
    if marker == 0xC4 and not _valid_huffman_tables(data[pos + 4 : end]):
      return f"damaged Huffman table at byte {pos}"
    if marker == 0xDA:  # start of scan: entropy-coded data follows, up to the end marker
      return None
    pos = end


def _valid_huffman_tables(body: bytes) -> bool:
  """A DHT segment is one or more tables that exactly fill it, each a realisable code."""
  pos = 0
  while pos < len(body):
    if pos + 17 > len(body) or body[pos] >> 4 > 1 or body[pos] & 0x0F > 3:
      return False
    counts = body[pos + 1 : pos + 17]
    codes = 0  # Kraft: at each length, the codes so far must fit in that many bits
    for bits, count in enumerate(counts, 1):
      codes = 2 * codes + count
      if codes > 1 << bits:
        return False
    pos += 17 + sum(counts)
  return pos == len(body) and len(body) > 0


def read_frame(path: str | os.PathLike) -> np.ndarray:
  """Reads one image file as uint8 RGB (H, W, 3) or grey (H, W)."""
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UserError(f"{path}: cannot read image ({e.strerror}).") from None
  # OpenCV decodes a cut-off JPEG without complaint, padding it with grey;
  # an interrupted copy would then silently poison training.
  if path.lower().endswith((".jpg", ".jpeg")):
    if b"\xff\xd9" not in data[-_JPEG_TAIL:]:
      raise UserError(f"{path}: truncated JPEG (no end-of-image marker).")
    if problem := _jpeg_header_error(data):
      raise UserError(f"{path}: corrupt JPEG ({problem}).")
  # UNCHANGED keeps single-channel greys and the depth of 16-bit TIFFs.
  try:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
  except cv2.error:  # raised instead of returning None, e.g. for empty files
    image = None
  if image is None or image.size == 0:
    raise UserError(f"{path}: not a readable image (corrupt or unsupported format).")
  return _to_rgb_or_grey(_to_uint8(image, path), path)


def _open_video(path: str) -> cv2.VideoCapture:
  if not os.path.isfile(path):
    raise UserError(f"{path}: video file not found.")
  # One fixed backend, so counting and reading decode the same frames.
  backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
  capture = cv2.VideoCapture(path, backend)
  if not capture.isOpened():
    raise UserError(f"{path}: not a readable video (truncated, corrupt or unsupported codec); read 0 frames.")
  return capture


def count_frames(path: str) -> int:
  """Decodes a container video once and returns its number of frames.

  The header's frame count is an estimate for some codecs, so it only serves
  to notice truncated files: fewer decodable frames than claimed is an error.
  """
  capture = _open_video(path)
  try:
    claimed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    count = 0
    # grab() decodes without the colour conversion that read() adds.
    while capture.grab():
      count += 1
  finally:
    capture.release()
  if count == 0:
    raise UserError(f"{path}: no decodable frames (truncated or corrupt video); read 0 frames.")
  if count < claimed:
    raise UserError(f"{path}: truncated video: read {count} frames, its header claims {claimed}.")
  return count


def count_frames_many(paths: Sequence[str]) -> list[int]:
  """`count_frames` over many files; OpenCV releases the GIL while decoding."""
  if len(paths) <= 1:
    return [count_frames(p) for p in paths]
  workers = min(len(paths), os.cpu_count() or 1, 8)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    return list(pool.map(count_frames, paths))


def _iter_container(path: str, num_frames: int) -> Iterator[np.ndarray]:
  capture = _open_video(path)
  try:
    for index in range(num_frames):
      ok, frame = capture.read()
      if not ok:
        raise UserError(f"{path}: truncated video: read {index} frames, expected {num_frames}.")
      yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
  finally:
    capture.release()


def iter_frames(video: Video) -> Iterator[np.ndarray]:
  """Yields the video's `num_frames` frames in order (uint8 RGB or grey)."""
  if video.frame_paths is not None:
    for path in video.frame_paths:
      yield read_frame(path)
  else:
    yield from _iter_container(video.video_path, video.num_frames)
