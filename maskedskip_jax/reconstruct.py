"""Batch reconstruction with a model bundle: the command line (the work is in deploy/reconstruct.py).

python -m maskedskip_jax.reconstruct --model BUNDLE_DIR --input clips.npy --output recon.npy
"""

import sys
import time

from maskedskip_jax import app as app_lib
from maskedskip_jax.deploy import reconstruct as reconstruct_lib


def main(argv=None) -> int:
  """`python -m maskedskip_jax.reconstruct` and the `maskedskip-reconstruct` console script; returns the exit code."""
  parser = app_lib.argument_parser("reconstruct", reconstruct_lib)
  parser.add_argument("--model", required=True, help="model bundle directory")
  parser.add_argument("--input", required=True, help="float32 (N, T, H, W, C) clips in [0, 1], .npy")
  parser.add_argument("--output", required=True, help="where to write float32 (N, H, W, C) .npy")
  parser.add_argument("--batch-size", type=int, default=16)
  args = parser.parse_args(argv)
  start = time.perf_counter()

  def work() -> str:
    shape = reconstruct_lib.run(args.model, args.input, args.output, args.batch_size)
    return f"wrote {args.output}: {shape} float32 in {time.perf_counter() - start:.1f} s"

  return app_lib.report_errors(work)


if __name__ == "__main__":
  sys.exit(main())
