"""No-learning anomaly scores: what frame differencing, a background model and optical flow achieve alone.

Each baseline turns a video's frames, exactly as the model sees them (the test store's uint8 frames at the eval
image size, grey or RGB as configured), into one map per frame, and pools the map into a frame score by the
model's own rule, `scoring.frame_scores` (the largest patch mean on the aligned and the half-offset grids). A
baseline therefore differs from the model in its map alone, and every number it gets is a floor the model has to
clear before its learning counts for anything.

  frame_diff  mean over channels of |x_t - x_{t-1}|, values in [0, 1]. Frame 0 is differenced with itself
              (x_{-1} = x_0, the edge replication the model's clips use), so its map is zero.
  mog2        foreground fraction of OpenCV's MOG2 background subtractor (detectShadows=False, OpenCV's other
              defaults: history 500, varThreshold 16), mask > 0 as 1.0. A fresh subtractor per video first learns
              the background in one pass over all the video's frames (OpenCV's default learning rate), then
              scores every frame in a second pass with learning off (learningRate=0): a frame's score does not
              depend on its position, and the first frames are not all foreground for want of a background.
              The background is learned from the test video itself, without labels (as a deployed background
              model learns from its camera).
  flow        magnitude of Farneback dense optical flow from grey frame t-1 to grey frame t (pyramid scale 0.5,
              3 levels, window 15, 3 iterations, poly_n 5, poly_sigma 1.2), in pixels divided by the frame width,
              so the map means "fraction of the frame width moved" at any resolution. Frame 0 has zero flow.

All three are deterministic: the same frames give the same scores.
"""

from collections.abc import Iterable, Iterator, Sequence
import functools

import cv2
import jax
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import scoring

BASELINES = ("frame_diff", "mog2", "flow")
# Frames pooled per call: one compiled shape per frame size, and a long video never holds all its maps at once.
_CHUNK = 64


def parse_names(value: str | Sequence[str]) -> tuple[str, ...]:
  """'frame_diff,flow' or ['frame_diff', 'flow'] -> ('frame_diff', 'flow'); '' or [] -> (); repeats dropped."""
  items = value.split(",") if isinstance(value, str) else list(value)
  names = []
  for item in items:
    name = str(item).strip()
    if not name:
      continue
    if name not in BASELINES:
      raise UserError(
        f"eval.baselines: unknown baseline {name!r}; expected comma-separated names from "
        f"{', '.join(BASELINES)} ('' for none)"
      )
    if name not in names:
      names.append(name)
  return tuple(names)


def protocol(patch: int) -> str:
  """The baselines' protocol in one paragraph, for reports."""
  return (
    f"no-learning baselines on the test frames exactly as the model sees them, each map pooled like the "
    f"model's (max mean over {patch}x{patch} patches on the aligned and offset-by-{patch // 2} grids). "
    "frame_diff: channel mean of |x_t - x_(t-1)| in [0, 1], frame 0 differenced with itself. "
    "mog2: OpenCV MOG2 (detectShadows=False, history 500, varThreshold 16) foreground fraction; a fresh "
    "subtractor per video learns the background in a first pass over the whole video (default learning "
    "rate, no labels), then scores every frame with learningRate=0. flow: Farneback optical flow "
    "(0.5, 3 levels, window 15, 3 iterations, poly 5 / 1.2) from grey frame t-1 to t, magnitude divided by "
    "the frame width; frame 0 zero. Scores then get the same post-processing and labelled videos as the "
    "model's."
  )


@functools.partial(jax.jit, static_argnums=1)
def _pool(maps, patch: int):
  return scoring.frame_scores(maps, patch)


def pool(maps: Iterable[np.ndarray], patch: int = 16) -> np.ndarray:
  """float64 (N,) frame scores of a stream of (H, W) maps, by `scoring.frame_scores`, in fixed-size chunks."""
  out, chunk = [], []

  def flush():
    n = len(chunk)
    batch = np.stack(chunk + [np.zeros_like(chunk[0])] * (_CHUNK - n)).astype(np.float32)
    out.append(np.asarray(_pool(batch, patch))[:n])
    chunk.clear()

  for m in maps:
    chunk.append(np.asarray(m, np.float32))
    if len(chunk) == _CHUNK:
      flush()
  if chunk:
    flush()
  return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def _as_uint8(frame: np.ndarray) -> np.ndarray:
  frame = np.asarray(frame)
  if frame.dtype == np.uint8:
    return frame
  return np.clip(np.rint(frame.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


def _grey(frame: np.ndarray) -> np.ndarray:
  """(H, W) uint8; the store's colour frames are RGB."""
  frame = _as_uint8(frame)
  return frame[..., 0] if frame.shape[-1] == 1 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _frame_diff_maps(frames) -> Iterator[np.ndarray]:
  prev = None
  for frame in frames:
    frame = np.asarray(frame)
    x = frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)
    yield np.zeros(x.shape[:2], np.float32) if prev is None else np.abs(x - prev).mean(axis=-1)
    prev = x


def _mog2_maps(frames) -> Iterator[np.ndarray]:
  subtractor = cv2.createBackgroundSubtractorMOG2(detectShadows=False)
  images = [_as_uint8(f) for f in frames]
  images = [im[..., 0] if im.shape[-1] == 1 else im for im in images]
  for image in images:  # the warm-up pass: learn the video's background
    subtractor.apply(image)
  for image in images:
    yield (subtractor.apply(image, learningRate=0) > 0).astype(np.float32)


def _flow_maps(frames) -> Iterator[np.ndarray]:
  prev = None
  for frame in frames:
    grey = _grey(frame)
    if prev is None:
      yield np.zeros(grey.shape, np.float32)
    else:
      flow = cv2.calcOpticalFlowFarneback(prev, grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
      yield np.hypot(flow[..., 0], flow[..., 1]) / grey.shape[1]
    prev = grey


_MAPS = {"frame_diff": _frame_diff_maps, "mog2": _mog2_maps, "flow": _flow_maps}


def video_maps(name: str, frames) -> Iterator[np.ndarray]:
  """The (H, W) float32 map of every frame of one video, for baseline `name` (see the module docstring)."""
  assert name in _MAPS, name  # config.validate and parse_names checked the names
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
    raise UserError(f"baselines: expected frames (N, H, W, C) with C 1 or 3, got shape {frames.shape}")
  return _MAPS[name](frames)


def video_scores(name: str, frames, patch: int = 16) -> np.ndarray:
  """float64 (N,) frame scores of one video: uint8 (N, H, W, C), or float in [0, 1], frames -> baseline `name`."""
  return pool(video_maps(name, frames), patch)


def score_store(store, names: str | Sequence[str] = BASELINES, patch: int = 16) -> dict[str, list[np.ndarray]]:
  """{name: [float64 (n_v,) scores of video v, ...]} for every video of `store` (a FrameStore)."""
  names = parse_names(names)
  return {name: [video_scores(name, store.video_frames(v), patch) for v in range(store.num_videos)] for name in names}
