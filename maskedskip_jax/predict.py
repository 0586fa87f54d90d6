"""Anomaly scores for any video with a model bundle: the command line (the work is in deploy/predict.py).

  python -m maskedskip_jax.predict --model BUNDLE_DIR --video FILE_OR_FRAME_DIR|URL|CAMERA --out OUT_DIR \
      [--threshold X] [--min-duration S] [--merge-gap S] [--realtime] [--postprocess gaussian:sigma=3] \
      [--batch-size N] [--no-overlay] [--backend jax|onnxruntime]

Exit status: 0 when the source was scored to its end, or a live source was stopped by Ctrl-C or SIGTERM (its
outputs are complete up to that point); 1 with one `error:` line for bad input, or for a stream that could not be
reopened after its retries (everything read before it dropped is written).

With `--backend onnxruntime` this imports no jax: the bundle's ONNX graphs run with numpy, OpenCV and onnxruntime.
That is why this module builds its own parser and error line rather than taking `app`'s, which imports the config
schema and with it the model code.
"""

import argparse
import os
import sys

import cv2

from maskedskip_jax.deploy import predict as predict_lib
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import overlay


def main(argv=None) -> int:
  """`python -m maskedskip_jax.predict` and the `maskedskip-predict` console script; returns the exit code."""
  parser = argparse.ArgumentParser(
    prog="python -m maskedskip_jax.predict", description=predict_lib.__doc__.split("\n")[0]
  )
  parser.add_argument("--model", required=True, help="model bundle folder (--mode=export)")
  parser.add_argument(
    "--video",
    required=True,
    help="a video file (.mp4, .avi, ...), a folder of frames, a stream URL (rtsp://, http(s)://) or a camera index",
  )
  parser.add_argument(
    "--out", required=True, help="output folder (new, or an earlier prediction's; a live source needs a new one)"
  )
  parser.add_argument(
    "--postprocess",
    default=None,
    help="smoothing for score_smoothed, e.g. 'median:window=17', 'gaussian:sigma=3', 'none' "
    f"(default: the bundle's alarm chain, else {predict_lib.DEFAULT_POSTPROCESS})",
  )
  parser.add_argument(
    "--threshold", type=float, default=None, help="score_smoothed above this is abnormal (default: the bundle's alarm)"
  )
  parser.add_argument("--min-duration", type=float, default=None, help="shortest event, seconds (default 0.5)")
  parser.add_argument("--merge-gap", type=float, default=None, help="events this close merge, seconds (default 1)")
  parser.add_argument("--realtime", action="store_true", help="read a file at its frame rate, as a live stream")
  parser.add_argument("--read-timeout", type=float, default=10.0, help="seconds without a frame: a stalled stream")
  parser.add_argument("--retries", type=int, default=5, help="reconnection attempts before giving up")
  parser.add_argument("--retry-wait", type=float, default=1.0, help="first wait before reconnecting, doubling")
  parser.add_argument(
    "--batch-size", type=int, default=None, help="frames per step (jax backend; default 16, 1 for a live source)"
  )
  parser.add_argument("--no-overlay", action="store_true", help="write scores.csv only")
  parser.add_argument(
    "--heat-max", type=float, default=overlay.DEFAULT_VMAX, help="score-map value drawn fully hot in the overlay"
  )
  parser.add_argument(
    "--dtype",
    choices=predict_lib.COMPUTE_DTYPES,
    default="auto",
    help="compute dtype; auto = bfloat16 on GPU/TPU, float32 on CPU (onnxruntime: always float32)",
  )
  parser.add_argument(
    "--backend",
    choices=predict_lib.BACKENDS,
    default="jax",
    help="jax: the bundle's weights and the model code; onnxruntime: the bundle's ONNX graphs, no jax needed",
  )
  args = parser.parse_args(argv)
  cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our own one-line errors say it better
  os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # FFmpeg's too (a dropped stream); read at its first use
  try:
    result = predict_lib.predict(
      args.model,
      args.video,
      args.out,
      postprocess=args.postprocess,
      batch_size=args.batch_size,
      write_overlay=not args.no_overlay,
      vmax=args.heat_max,
      dtype=args.dtype,
      backend=args.backend,
      threshold=args.threshold,
      min_duration=args.min_duration,
      merge_gap=args.merge_gap,
      realtime=args.realtime,
      read_timeout=args.read_timeout,
      retries=args.retries,
      retry_wait=args.retry_wait,
    )
  except UserError as e:  # one line, exit code 1: as app.report_errors
    print(f"error: {e}", file=sys.stderr)
    return 1
  found = ""
  if result["events"] is not None:
    found = f", {result['events']} event(s) above {result['threshold']:.6g} ({result['threshold_source']})"
  print(f"scored {result['frames']} frames in {result['seconds']:.1f} s{found} -> {result['out_dir']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
