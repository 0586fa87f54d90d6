"""Import a state_dict saved by the published PyTorch code into a model bundle: the command line.

The work is in deploy/convert_torch.py.

  python -m maskedskip_jax.convert_torch --checkpoint REF.pt --variant maskedskip_unet \
      --latent-dim 512 --channels 3 --temporal 3 --out BUNDLE_DIR
"""

import sys

from maskedskip_jax import app as app_lib
from maskedskip_jax.deploy import convert_torch as convert_torch_lib
from maskedskip_jax.nn import models


def main(argv=None) -> int:
  """`python -m maskedskip_jax.convert_torch` and `maskedskip-convert-torch`; returns the exit code."""
  parser = app_lib.argument_parser("convert_torch", convert_torch_lib)
  parser.add_argument("--checkpoint", required=True, help="state_dict .pt saved by the reference code")
  parser.add_argument("--variant", required=True, choices=models.VARIANTS)
  parser.add_argument("--latent-dim", type=int, default=512)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--temporal", type=int, default=None, help="frames per clip (default: the variant's)")
  parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="recorded in model.json")
  parser.add_argument(
    "--export-batch", type=int, default=0, help="also write inference.stablehlo for this batch size at --image-size"
  )
  parser.add_argument("--out", required=True, help="model bundle directory to write (replaced if it is one)")
  args = parser.parse_args(argv)

  def work() -> str:
    out = convert_torch_lib.convert_checkpoint(
      args.checkpoint,
      args.out,
      args.variant,
      args.latent_dim,
      args.channels,
      args.temporal,
      args.image_size,
      args.export_batch,
    )
    return f"wrote model bundle {out}"

  return app_lib.report_errors(work)


if __name__ == "__main__":
  sys.exit(main())
