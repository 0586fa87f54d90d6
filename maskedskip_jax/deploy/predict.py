"""Anomaly scores, and alarm events, for any video, stream or camera with a model bundle.

  python -m maskedskip_jax.predict --model BUNDLE_DIR --video FILE_OR_FRAME_DIR|URL|CAMERA --out OUT_DIR \
      [--postprocess gaussian:sigma=3] [--threshold X] [--min-duration S] [--merge-gap S] [--realtime] \
      [--batch-size N] [--no-overlay] [--backend jax|onnxruntime]

Writes OUT_DIR/scores.csv (frame,score,score_smoothed: one row per input frame), OUT_DIR/overlay.mp4 (each frame
with its anomaly heat map blended in and the running score curve underneath) and, given a threshold (`--threshold`,
or the bundle's calibrated alarm: `alarms.py`), OUT_DIR/events.json: the runs of frames whose smoothed score is above
it (`eval/events.py`). Frames stream through: each is read, resized to the bundle's image_size and encoded once,
and kept only while the clips that need it are pending, so any length fits in memory.

A video file or frame folder is scored as fast as it can be read, and the output folder appears only when complete
(written under a temporary name, then renamed). A live source (a stream URL, a camera index, or a file read with
`--realtime` at its own frame rate: `sources.py`) is scored as frames arrive, one frame per step unless
`--batch-size` says otherwise, and its outputs are written into OUT_DIR as it goes, with latency measured and a
summary.json at the end (`live.py`): a dropped stream is retried, and Ctrl-C or SIGTERM ends it cleanly.

An AED-MAE bundle is scored by its paper's Eq. 6 as its evaluation scored it (`eval/aed_mae_scorer.py`): whole
videos (its filters look ahead), with the jax backend, so a file or frame folder and not a live source.

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
from maskedskip_jax.deploy import alarms
from maskedskip_jax.deploy import bundle_files
from maskedskip_jax.deploy import live
from maskedskip_jax.deploy import onnx_runtime
from maskedskip_jax.deploy import smoothing
from maskedskip_jax.deploy import sources
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import events as events_lib
from maskedskip_jax.eval import overlay
from maskedskip_jax.eval import postprocess as postprocess_lib
from maskedskip_jax.train import console

DEFAULT_POSTPROCESS = alarms.DEFAULT_POSTPROCESS
MAX_OVERLAY_WIDTH = 1280  # larger sources are scaled down for the overlay video: encoding time, file size
OUTPUT_FILES = ("scores.csv", "overlay.mp4", "events.json", "summary.json")
BACKENDS = ("jax", "onnxruntime")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")  # nn.dtypes.COMPUTE_DTYPES, which imports jax


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


def _scorer(model_dir: str, backend: str, batch_size: int, write_overlay: bool, dtype: str, patch: int):
  """(the backend's scorer, the model's T). A scorer has `image_size`, `frame_shape` and `stream(videos)`, which
  yields items with `frame`, `score` (patch-max with `patch`) and `score_map` (at image_size with the overlay)."""
  if backend == "onnxruntime":
    scorer = onnx_runtime.OnnxScorer(model_dir, patch=patch)
    return scorer, scorer.temporal
  from maskedskip_jax.deploy import aed_mae_bundle  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.eval import streaming  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.nn import dtypes  # pylint: disable=g-import-not-at-top

  model, variables, config = bundle.load(model_dir, dtype=dtypes.compute_dtype(dtype))
  image_size = config.get("image_size")
  if not image_size:
    raise UserError(f"{model_dir}: model.json has no image_size; re-export the bundle with one")
  map_size = image_size if write_overlay else None
  if aed_mae_bundle.is_record(config):
    # Frame indices are clamped into the video, as in its evaluation: one readable frame is enough.
    return aed_mae_bundle.scorer(model, variables, image_size, config["aed_mae"], batch_size, map_size), 1
  scorer = streaming.StreamingScorer(
    model, variables, image_size, batch_size=batch_size, patch=patch, map_size=map_size
  )
  return scorer, model.temporal


def _check_aed_mae(backend: str, is_live: bool) -> None:
  if backend != "jax":
    raise UserError(f"--backend {backend}: an AED-MAE bundle runs with the jax backend (it has no ONNX graphs)")
  if is_live:
    raise UserError(
      "an AED-MAE bundle scores whole videos (its Eq. 6 maps go through a 3-D mean and a temporal Gaussian over "
      "frames ahead): pass a video file or frame folder without --realtime; live sources need a U-Net-family bundle"
    )


def _notes(settings: alarms.Settings) -> None:
  """The settings' notes, once the source is known good (an error stays the only line)."""
  for note in settings.notes:
    print(note, file=sys.stderr, flush=True)


def _shown(frame: np.ndarray, display: tuple[int, int]) -> np.ndarray:
  frame = overlay.to_rgb(frame)
  if frame.shape[:2] != display:
    frame = cv2.resize(frame, display[::-1], interpolation=cv2.INTER_AREA)
  return frame


def predict(
  model_dir: str,
  video: str,
  out_dir: str,
  *,
  postprocess: str | None = None,
  batch_size: int | None = None,
  write_overlay: bool = True,
  vmax: float = overlay.DEFAULT_VMAX,
  dtype: str = "auto",
  progress: bool = True,
  backend: str = "jax",
  threshold: float | None = None,
  min_duration: float | None = None,
  merge_gap: float | None = None,
  realtime: bool = False,
  read_timeout: float = 10.0,
  retries: int = 5,
  retry_wait: float = 1.0,
) -> dict:
  """Scores every frame of `video` (a file, frame folder, stream URL or camera index) into OUT_DIR.

  None for postprocess, min_duration, merge_gap: the bundle's alarm record's, else the defaults (`alarms.py`);
  batch_size None: 16 for a file, 1 for a live source. Returns {'frames', 'seconds', 'out_dir', 'postprocess',
  'threshold', 'events' (a count, or None without a threshold), 'summary' (live sources, else None)}.
  """
  if backend not in BACKENDS:
    raise UserError(f"--backend: expected one of {BACKENDS}, got {backend!r}")
  if backend == "onnxruntime" and dtype not in ("auto", "float32"):
    raise UserError(f"--dtype: the onnxruntime backend computes in float32, got {dtype!r}")
  if batch_size is not None and batch_size < 1:
    raise UserError(f"--batch-size: must be a positive integer, got {batch_size}")
  if not vmax > 0:
    raise UserError(f"--heat-max: must be > 0, got {vmax}")
  settings = alarms.resolve(
    model_dir, threshold=threshold, postprocess=postprocess, min_duration=min_duration, merge_gap=merge_gap
  )
  is_live = sources.is_live(video, realtime)
  if bundle_files.model_config(model_dir).get("variant") == bundle_files.AED_MAE_SCORE:
    _check_aed_mae(backend, is_live)
  if is_live:
    smoothing.radius(settings.steps)  # a chain that needs the whole video is refused before anything starts
  out_dir = os.path.abspath(out_dir)
  (live.check_out_dir if is_live else _check_out_dir)(out_dir)
  feed = None
  if is_live:  # its options are checked before the model loads
    feed = sources.Feed(video, realtime=realtime, read_timeout=read_timeout, retries=retries, retry_wait=retry_wait)
  batch_size = batch_size or (1 if is_live else 16)
  scorer, temporal = _scorer(model_dir, backend, batch_size, write_overlay, dtype, settings.patch)
  begin = time.perf_counter()
  summary = None
  if feed is not None:
    summary = _live(scorer, feed, out_dir, settings, write_overlay, vmax)
    count, found = summary["frames"], summary["events"]
  else:
    count, found = _file(scorer, temporal, video, out_dir, settings, write_overlay, vmax, progress)
  return {
    "frames": count,
    "seconds": time.perf_counter() - begin,
    "out_dir": out_dir,
    "postprocess": settings.postprocess,
    "threshold": settings.threshold,
    "threshold_source": settings.threshold_source,
    "events": found,
    "summary": summary,
  }


def _live(scorer, feed, out_dir, settings, write_overlay, vmax) -> dict:
  image_size, channels = scorer.image_size, scorer.frame_shape[2]
  if hasattr(scorer, "compile"):
    scorer.compile()  # before the first frame arrives: compiling would count as its latency
  fps = feed.open()
  _notes(settings)
  display = []  # fixed by the first frame

  def to_shown(frame):
    if not display:
      display.extend(_display_size(frame))
    return _shown(frame, tuple(display))

  return live.run(
    scorer,
    feed,
    fps,
    out_dir,
    settings,
    to_model=lambda frame, k: prepare(frame, image_size, channels, f"{feed.name} frame {k}"),
    to_shown=to_shown,
    write_overlay=write_overlay,
    vmax=vmax,
  )


def _file(scorer, temporal, video, out_dir, settings, write_overlay, vmax, progress):
  """Scores a file or frame folder into a complete OUT_DIR; (frames, events or None)."""
  image_size, channels = scorer.image_size, scorer.frame_shape[2]
  source, total, fps = sources.open_file(video)
  # Read the first T frames before anything is compiled or written: a too-short video fails fast.
  head = list(itertools.islice(source, temporal))
  if len(head) < temporal:
    raise UserError(f"{video}: {len(head)} readable frame(s); the model needs at least T={temporal}")
  _notes(settings)
  shown = {}  # frame index -> the frame as the overlay shows it, kept until its score arrives
  display = _display_size(head[0])

  def model_frames():
    for k, frame in enumerate(itertools.chain(head, source)):
      x = prepare(frame, image_size, channels, f"{video} frame {k}")
      if write_overlay:
        shown[k] = _shown(frame, display)
      yield x

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
    smoothed = postprocess_lib.postprocess([np.asarray(scores, np.float64)], settings.steps)[0]
    with open(os.path.join(tmp, "scores.csv"), "w", newline="") as f:
      out = csv.writer(f)
      out.writerow(["frame", "score", "score_smoothed"])
      out.writerows([k, f"{s:.8g}", f"{p:.8g}"] for k, (s, p) in enumerate(zip(scores, smoothed)))
    found = None
    if settings.threshold is not None:
      found = events_lib.segments(smoothed, settings.threshold, **settings.frames(fps))
      doc = alarms.document(settings, found, fps, source=video, frames=len(scores), complete=True)
      atomic.write_json(os.path.join(tmp, "events.json"), doc)
  if total and total != len(scores):
    print(
      f"warning: {video}: its header claims {total} frames, {len(scores)} were readable and scored", file=sys.stderr
    )
  return len(scores), None if found is None else len(found)
