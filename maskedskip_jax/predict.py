"""Anomaly scores for any video with a model bundle: the command line (the work is in deploy/predict.py).

  python -m maskedskip_jax.predict --model BUNDLE_DIR --video FILE_OR_FRAME_DIR --out OUT_DIR \
      [--postprocess gaussian:sigma=3] [--batch-size N] [--no-overlay] [--backend jax|onnxruntime]

With `--backend onnxruntime` this imports no jax: the bundle's ONNX graphs run with numpy, OpenCV and onnxruntime.
That is why this module builds its own parser and error line rather than taking `app`'s, which imports the config
schema and with it the model code.
"""

import argparse
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
  parser.add_argument("--video", required=True, help="a video file (.mp4, .avi, ...) or a folder of frames")
  parser.add_argument("--out", required=True, help="output folder (new, or an earlier prediction's)")
  parser.add_argument(
    "--postprocess",
    default=predict_lib.DEFAULT_POSTPROCESS,
    help="smoothing for score_smoothed, e.g. 'median:window=17', 'gaussian:sigma=3', 'none'",
  )
  parser.add_argument("--batch-size", type=int, default=16, help="frames per step (jax backend)")
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
    )
  except UserError as e:  # one line, exit code 1: as app.report_errors
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"scored {result['frames']} frames in {result['seconds']:.1f} s -> {result['out_dir']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
