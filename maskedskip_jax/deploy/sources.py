"""Where predict's frames come from: a video file or frame folder, a network stream, or a camera.

`--video` names one of:
  a file or folder   read as fast as the scorer takes it (`open_file`), or at its own rate with `realtime` (`Feed`);
  a URL              rtsp://, rtsps://, rtmp://, http:// or https:// (an IP camera's RTSP or MJPEG stream): live;
  a camera index     a number such as `0` that is not an existing path: that local camera, live.

A live source is read by a background thread (`Feed`) that stamps each frame with its arrival time: latency counts
from when a frame could first be had. A failed read, or none for `read_timeout` s (a stall), drops the connection;
it is reopened at once, then after waits doubling from `retry_wait` s up to a minute, each attempt and the
reconnection announced in one line on stderr. Frames reset the count (a connection that opens but gives none is a
failed attempt); `retries` failures in a row end the feed with a one-line error. No frame is dropped here: a slow
scorer shows as growing latency. Frames are uint8 RGB (H, W, 3) or grey (H, W). Nothing here imports jax.
"""

from collections.abc import Callable, Iterator
import os
import queue
import re
import sys
import threading
import time
import typing

import cv2
import numpy as np

from maskedskip_jax.errors import UserError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")
DEFAULT_FPS = 25.0  # a frame folder's rate, and any source's that reports none
MAX_RETRY_WAIT = 60.0
_QUEUE_SECONDS = 10  # frames buffered between the reading thread and the scorer, in seconds of the source
_POLL = 0.1  # how often a waiting reader looks at its stop flag


def is_stream(spec: str) -> bool:
  return re.match(rf"({'|'.join(STREAM_SCHEMES)})://", spec, re.IGNORECASE) is not None


def is_camera(spec: str) -> bool:
  return spec.isdigit() and not os.path.exists(spec)


def is_live(spec: str, realtime: bool = False) -> bool:
  """Whether `spec` is read as it arrives (and predict writes its outputs as it goes)."""
  return realtime or is_stream(spec) or is_camera(spec)


def display_name(spec: str) -> str:
  """`spec` for messages: a URL's password replaced, a camera index named."""
  if is_camera(spec):
    return f"camera {spec}"
  return re.sub(r"^([a-z]+://[^/:@]+):[^/@]*@", r"\1:***@", spec, flags=re.IGNORECASE)


def _rgb(frame: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 and frame.shape[2] == 3 else frame


_sane_fps = lambda fps: fps if 0 < fps < 1000 else DEFAULT_FPS  # containers and cameras report 0, NaN or garbage


def open_file(path: str) -> tuple[Iterator[np.ndarray], int, float]:
  """(frame iterator, frame count or 0 if unknown, fps) for a video file or a folder of images."""
  from data_pipeline import frame_io  # pylint: disable=g-import-not-at-top
  from data_pipeline.sources import folders  # pylint: disable=g-import-not-at-top

  if os.path.isdir(path):
    paths = folders.frame_files(path)
    return (frame_io.read_frame(p) for p in paths), len(paths), DEFAULT_FPS
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such video file or frame folder")
  backend = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
  capture = cv2.VideoCapture(path, backend)
  if not capture.isOpened():
    capture.release()
    raise UserError(f"{path}: not a readable video (not a video file, corrupt, or an unsupported codec)")
  count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
  count = int(count) if 0 < count < 1e9 else 0  # some containers report garbage
  fps = capture.get(cv2.CAP_PROP_FPS)

  def frames():
    try:
      while True:
        ok, frame = capture.read()
        if not ok:
          return
        yield _rgb(frame)
    finally:
      capture.release()

  return frames(), count, _sane_fps(fps)


class Connection:
  """One open live connection: `read()` -> frame or None when it ended, dropped or stalled; `fps`; `close()`."""

  def __init__(self, capture, fps: float):
    self._capture, self.fps = capture, fps

  def read(self) -> np.ndarray | None:
    ok, frame = self._capture.read()
    return _rgb(frame) if ok and frame is not None else None

  def close(self) -> None:
    self._capture.release()


def open_capture(spec: str, read_timeout: float) -> Connection | None:
  """A connection to a stream URL or camera index, or None if it cannot be opened now."""
  # FFmpeg's own log lines would interleave with ours; set before its first use (read once per process).
  os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
  timeout_ms = int(read_timeout * 1000)
  params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
  if is_camera(spec):
    capture = cv2.VideoCapture(int(spec), cv2.CAP_ANY, params)
  else:
    capture = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, params)
  if not capture.isOpened():
    capture.release()
    return None
  return Connection(capture, _sane_fps(capture.get(cv2.CAP_PROP_FPS)))


class _PacedFile:
  """A file played at its own frame rate: frame k is released k / fps seconds after the first."""

  def __init__(self, path: str):
    self._frames, _, self.fps = open_file(path)
    self._start = None
    self._count = 0

  def read(self) -> np.ndarray | None:
    frame = next(self._frames, None)
    if frame is None:
      return None
    if self._start is None:
      self._start = time.monotonic()
    wait = self._start + self._count / self.fps - time.monotonic()
    if wait > 0:
      time.sleep(wait)
    self._count += 1
    return frame

  def close(self) -> None:
    self._frames.close()


class Frame(typing.NamedTuple):
  image: np.ndarray
  arrived: float  # time.monotonic() when it was read


_END = object()  # a connection ended; the feed goes on with the next one


class Feed:
  """A live source read by a background thread, as a sequence of connections, each an iterator of `Frame`s.

  Args:
    spec: the URL, camera index or (with `realtime`) file.
    realtime: play a file at its frame rate; its end ends the feed (no reconnection).
    stop: set (by a signal handler) to end the feed: the current connection's iterator ends at its next frame.
    read_timeout: seconds without a frame that count as a stall (and the open timeout).
    retries: failed reconnection attempts in a row before giving up; `error` then holds the one-line reason.
    retry_wait: the first wait before reopening, doubled for each further attempt.
    opener: spec, read_timeout -> a connection (`read`, `close`, `fps`) or None; tests substitute theirs.
  """

  def __init__(
    self,
    spec: str,
    *,
    realtime: bool = False,
    stop: threading.Event | None = None,
    read_timeout: float = 10.0,
    retries: int = 5,
    retry_wait: float = 1.0,
    opener: Callable | None = None,
    log=None,
  ):
    if not read_timeout > 0:
      raise UserError(f"--read-timeout: must be > 0 seconds, got {read_timeout}")
    if retries < 0:
      raise UserError(f"--retries: must be >= 0, got {retries}")
    if not retry_wait >= 0:
      raise UserError(f"--retry-wait: must be >= 0 seconds, got {retry_wait}")
    self.spec, self.name, self.realtime = spec, display_name(spec), realtime
    self.stop = stop or threading.Event()
    self.read_timeout, self.retries, self.retry_wait = read_timeout, retries, retry_wait
    self._opener = opener or (lambda s, t: _PacedFile(s) if realtime else open_capture(s, t))
    self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    self.error = None  # why the feed gave up, or None
    self.reconnects = 0  # connections opened after the first
    self.frames = 0  # frames read so far
    self._queue = None
    self._thread = None
    self._finished = False

  def open(self) -> float:
    """Opens the first connection (raising the one-line error if it cannot) and starts reading; returns its fps."""
    # A missing or unreadable file raises its own error; a stream gets its retries.
    first = self._opener(self.spec, self.read_timeout) if self.realtime else self._reopen("cannot open it")
    if first is None:
      raise UserError(self.error or f"{self.name}: stopped before it opened")
    self._queue = queue.Queue(maxsize=max(16, int(first.fps * _QUEUE_SECONDS)))
    self._thread = threading.Thread(target=self._read, args=(first,), name="predict-source", daemon=True)
    self._thread.start()
    return first.fps

  def connections(self) -> Iterator[Iterator[Frame]]:
    """Each connection's frames in turn, until the source ends, gives up or is stopped."""
    while not self._finished:
      yield self._frames()

  def _frames(self) -> Iterator[Frame]:
    while not self.stop.is_set():
      try:
        item = self._queue.get(timeout=_POLL)
      except queue.Empty:
        if self._thread.is_alive():
          continue
        item = None  # the thread ended without saying so (it was stopped)
      if item is None or item is _END:
        self._finished = item is None
        return
      yield item
    self._finished = True

  def close(self) -> None:
    """Stops the reading thread (it may still be waiting on its source for up to read_timeout)."""
    self.stop.set()
    if self._thread is not None:
      self._thread.join(timeout=_POLL * 5)

  def _put(self, item) -> bool:
    while not self.stop.is_set():
      try:
        self._queue.put(item, timeout=_POLL)
        return True
      except queue.Full:
        continue
    return False

  def _read(self, connection) -> None:
    barren = 0  # connections in a row that opened but gave no frame: each counts as a failed attempt
    try:
      while connection is not None and not self.stop.is_set():
        count, why = self._drain(connection)
        connection.close()
        if self.stop.is_set() or self.realtime:
          break
        if count and not self._put(_END):  # a connection without frames has nothing to end
          break
        barren = 0 if count else barren + 1
        self._log(f"warning: {self.name}: stream {why} after {count} frame(s) ({self.frames} in all)")
        connection = self._reopen("cannot reopen it", failed=barren)
        if connection is not None:
          self.reconnects += 1
    finally:
      self._put(None)

  def _drain(self, connection) -> tuple[int, str]:
    """Reads one connection until it fails; (frames read, why it ended)."""
    count = 0
    while not self.stop.is_set():
      begin = time.monotonic()
      image = connection.read()
      if image is None:
        stalled = time.monotonic() - begin >= self.read_timeout * 0.9
        return count, f"stalled (no frame for {self.read_timeout:g} s)" if stalled else "dropped"
      if not self._put(Frame(np.asarray(image), time.monotonic())):
        break
      count += 1
      self.frames += 1
    return count, "stopped"

  def _reopen(self, failure: str, failed: int = 0):
    """A new connection, after up to `retries` failed attempts with growing waits; None when giving up or stopped.

    `failed`: attempts that already failed in a row (connections that opened but gave no frame), so that a source
    that accepts and closes every connection runs out of retries like one that refuses them.
    """
    wait = min(MAX_RETRY_WAIT, self.retry_wait * 2 ** max(0, failed - 1))
    for attempt in range(failed, self.retries + 1):
      if attempt:
        self._log(f"warning: {self.name}: {failure}; retrying in {wait:g} s (attempt {attempt} of {self.retries})")
        if self.stop.wait(wait):
          return None
        wait = min(MAX_RETRY_WAIT, max(wait * 2, 0.1))
      connection = self._opener(self.spec, self.read_timeout)
      if connection is not None:
        if attempt or self._thread is not None:  # after a drop, say it is back even at the first attempt
          self._log(f"{self.name}: reconnected")
        return connection
    kept = f" after {self.frames} frame(s)" if self.frames else ""
    self.error = f"{self.name}: {failure} (gave up after {self.retries} retries{kept})"
    return None
