"""Batch reconstruction with a model bundle: the command line (the work is in deploy/reconstruct.py).

  python -m maskedskip_jax.reconstruct --model BUNDLE_DIR --input clips.npy --output recon.npy
"""

import argparse
import sys
import time

from maskedskip_jax.deploy import reconstruct as reconstruct_lib
from maskedskip_jax.errors import UserError


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m maskedskip_jax.reconstruct", description=reconstruct_lib.__doc__.split("\n")[0])
  parser.add_argument("--model", required=True, help="model bundle directory")
  parser.add_argument("--input", required=True, help="float32 (N, T, H, W, C) clips in [0, 1], .npy")
  parser.add_argument("--output", required=True, help="where to write float32 (N, H, W, C) .npy")
  parser.add_argument("--batch-size", type=int, default=16)
  args = parser.parse_args(argv)
  start = time.perf_counter()
  try:
    shape = reconstruct_lib.run(args.model, args.input, args.output, args.batch_size)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {args.output}: {shape} float32 in {time.perf_counter() - start:.1f} s")
  return 0


def cli() -> None:
  """The `maskedskip-reconstruct` console script."""
  sys.exit(main())


if __name__ == "__main__":
  cli()
