"""Anomaly scores for any video with a model bundle.

  python -m maskedskip_jax.predict --model BUNDLE_DIR --video FILE_OR_FRAME_DIR --out OUT_DIR \
      [--postprocess gaussian:sigma=3] [--batch-size N] [--no-overlay] [--backend jax|onnxruntime]

Writes OUT_DIR/scores.csv (frame,score,score_smoothed: one row per input frame) and OUT_DIR/overlay.mp4 (each
frame with its anomaly heat map blended in and the running score curve underneath). The video streams through:
each frame is read, resized to the bundle's image_size and encoded once, and kept only while the clips that need
it are pending, so any length fits in memory. The output folder appears only when complete.

Backends: 'jax' runs the bundle's weights with the model code (`eval/streaming.py`); 'onnxruntime' runs the
bundle's ONNX graphs (`onnx_runtime.py`, float32, the graphs' own batch) and needs no jax: nothing this module
imports at its top imports jax, which the jax backend imports when it starts.
"""

import contextlib
import csv
import itertools
import os
import sys
import time

import cv2
import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.deploy import onnx_runtime
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import overlay
from maskedskip_jax.eval import postprocess as postprocess_lib
from maskedskip_jax.train import console

DEFAULT_POSTPROCESS = "gaussian:sigma=3"
MAX_OVERLAY_WIDTH = 1280  # larger sources are scaled down for the overlay video: encoding time, file size
OUTPUT_FILES = ("scores.csv", "overlay.mp4")
BACKENDS = ("jax", "onnxruntime")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")  # nn.dtypes.COMPUTE_DTYPES, which imports jax


def open_frames(path: str):
  """(frame iterator, frame count or 0 if unknown, fps) for a video file or a folder of images.

  Frames are uint8 RGB (H, W, 3) or grey (H, W), as in training (`data_pipeline.frame_io`).
  """
  from data_pipeline import frame_io  # pylint: disable=g-import-not-at-top
  from data_pipeline.sources import folders  # pylint: disable=g-import-not-at-top

  if os.path.isdir(path):
    paths = folders.frame_files(path)
    return (frame_io.read_frame(p) for p in paths), len(paths), 25.0
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
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame
    finally:
      capture.release()

  return frames(), count, fps if 0 < fps < 1000 else 25.0


def prepare(frame: np.ndarray, image_size, channels: int, where: str) -> np.ndarray:
  """A decoded frame as the model's uint8 (H, W, C) input: resized, grey<->RGB converted as in training."""
  from data_pipeline import framestore  # pylint: disable=g-import-not-at-top

  frame = np.asarray(frame)
  if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3))) or frame.dtype != np.uint8:
    got = frame.shape[2] if frame.ndim == 3 else f"shape {frame.shape}"
    raise UserError(f"{where}: expected 8-bit grey or RGB frames, got {got} channels ({frame.dtype})")
  return framestore.convert(frame, tuple(image_size), channels)


def _display_size(frame: np.ndarray) -> tuple[int, int]:
  """(H, W) of the overlay video: the source's, scaled down to MAX_OVERLAY_WIDTH if wider; fixed by frame 0."""
  h, w = np.shape(frame)[:2]
  if w <= MAX_OVERLAY_WIDTH:
    return h, w
  return max(1, round(h * MAX_OVERLAY_WIDTH / w)), MAX_OVERLAY_WIDTH


def _check_out_dir(out_dir: str) -> None:
  if not os.path.exists(out_dir):
    return
  if not os.path.isdir(out_dir):
    raise UserError(f"{out_dir}: exists and is not a folder")
  extra = set(os.listdir(out_dir)) - set(OUTPUT_FILES)
  if extra:
    raise UserError(
      f"{out_dir}: exists and holds other files ({sorted(extra)[0]}, ...); pass an empty or new --out folder"
    )


def _scorer(model_dir: str, backend: str, batch_size: int, write_overlay: bool, dtype: str):
  """(the backend's scorer, the model's T). A scorer has `image_size`, `frame_shape` and `stream(videos)`, which
  yields items with `frame`, `score` and `score_map` (at image_size when the overlay is written)."""
  if backend == "onnxruntime":
    scorer = onnx_runtime.OnnxScorer(model_dir)
    return scorer, scorer.temporal
  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.eval import streaming  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.nn import dtypes  # pylint: disable=g-import-not-at-top

  model, variables, config = bundle.load(model_dir, dtype=dtypes.compute_dtype(dtype))
  image_size = config.get("image_size")
  if not image_size:
    raise UserError(f"{model_dir}: model.json has no image_size; re-export the bundle with one")
  map_size = image_size if write_overlay else None
  scorer = streaming.StreamingScorer(model, variables, image_size, batch_size=batch_size, map_size=map_size)
  return scorer, model.temporal


def predict(
  model_dir: str,
  video: str,
  out_dir: str,
  *,
  postprocess: str = DEFAULT_POSTPROCESS,
  batch_size: int = 16,
  write_overlay: bool = True,
  vmax: float = overlay.DEFAULT_VMAX,
  dtype: str = "auto",
  progress: bool = True,
  backend: str = "jax",
) -> dict:
  """Scores every frame of `video` and writes OUT_DIR; returns {'frames', 'seconds', 'out_dir', 'postprocess'}."""
  if backend not in BACKENDS:
    raise UserError(f"--backend: expected one of {BACKENDS}, got {backend!r}")
  if backend == "onnxruntime" and dtype not in ("auto", "float32"):
    raise UserError(f"--dtype: the onnxruntime backend computes in float32, got {dtype!r}")
  steps = postprocess_lib.parse_chain(postprocess)
  if batch_size < 1:
    raise UserError(f"--batch-size: must be a positive integer, got {batch_size}")
  if not vmax > 0:
    raise UserError(f"--heat-max: must be > 0, got {vmax}")
  out_dir = os.path.abspath(out_dir)
  _check_out_dir(out_dir)
  scorer, temporal = _scorer(model_dir, backend, batch_size, write_overlay, dtype)
  image_size, channels = scorer.image_size, scorer.frame_shape[2]
  source, total, fps = open_frames(video)
  # Read the first T frames before anything is compiled or written: a too-short video fails fast.
  head = list(itertools.islice(source, temporal))
  if len(head) < temporal:
    raise UserError(f"{video}: {len(head)} readable frame(s); the model needs at least T={temporal}")
  shown = {}  # frame index -> the frame as the overlay shows it, kept until its score arrives
  display = _display_size(head[0])

  def model_frames():
    for k, frame in enumerate(itertools.chain(head, source)):
      x = prepare(frame, image_size, channels, f"{video} frame {k}")
      if write_overlay:
        frame = overlay.to_rgb(frame)
        if frame.shape[:2] != display:
          frame = cv2.resize(frame, display[::-1], interpolation=cv2.INTER_AREA)
        shown[k] = frame
      yield x

  begin = time.perf_counter()
  # The video is closed (exits run in reverse) before its folder is renamed into place.
  with (
    atomic.directory(out_dir) as tmp,
    overlay.VideoSink(os.path.join(tmp, "overlay.mp4"), fps) if write_overlay else contextlib.nullcontext() as sink,
  ):
    curve = overlay.ScoreCurve(display[1], max(24, display[0] // 5), total)
    scores = []
    with console.Progress(total or None, unit="frame", desc="predict", disable=not progress) as bar:
      for item in scorer.stream([model_frames()]):
        scores.append(item.score)
        if sink is not None:
          curve.add(item.score)
          sink.write(overlay.overlay_frame(shown.pop(item.frame), item.score_map, curve, vmax))
        bar.update(1)
    if sink is not None:
      sink.close()
    smoothed = postprocess_lib.postprocess([np.asarray(scores, np.float64)], steps)[0]
    with open(os.path.join(tmp, "scores.csv"), "w", newline="") as f:
      out = csv.writer(f)
      out.writerow(["frame", "score", "score_smoothed"])
      out.writerows([k, f"{s:.8g}", f"{p:.8g}"] for k, (s, p) in enumerate(zip(scores, smoothed)))
  if total and total != len(scores):
    print(
      f"warning: {video}: its header claims {total} frames, {len(scores)} were readable and scored", file=sys.stderr
    )
  return {
    "frames": len(scores),
    "seconds": time.perf_counter() - begin,
    "out_dir": out_dir,
    "postprocess": postprocess_lib.describe(steps),
  }
