"""Builds one of the TFDS datasets (the `tfds build` CLI needs Apache Beam).

  python3 -m data_pipeline.tfds_builders --dataset ucsd_ped2 \
      --manual_dir /data/ucsd --data_dir /data/tfds
  python3 -m data_pipeline.tfds_builders --dataset synthetic --data_dir /data/tfds

Then: pipeline.load_split('ucsd_ped2', None, 'train', ..., tfds_data_dir=...).
"""

import argparse
import sys

from data_pipeline.errors import UserError

NAMES = ("ucsd_ped1", "ucsd_ped2", "cuhk_avenue", "shanghaitech", "synthetic")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python3 -m data_pipeline.tfds_builders", description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True, choices=NAMES)
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--manual_dir", default=None, help="extracted archives (all but synthetic)")
  args = parser.parse_args(argv)
  # Imported here so that --help is instant.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  from data_pipeline import tfdata  # pylint: disable=g-import-not-at-top

  try:
    tfdata.tf_module()  # Keeps TF off accelerators.
    builder = tfds.builder(args.dataset, data_dir=args.data_dir)
    if args.manual_dir is None and builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
      raise UserError(
        f"--manual_dir is required for {args.dataset}: " + " ".join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())
      )
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"built {args.dataset} in {builder.data_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
