"""Input pipeline throughput: training clips/s once the frame store is built.

  python3 benchmarks/pipeline_speed.py --root /work/shared/data/ped2_dev \
      --dataset generic --image-size 256 --channels 3 --backend tfdata \
      --batch-size 16 --steps 200

Prints one JSON object. The one-time frame-store build (decode + resize of every
frame) is timed separately from streaming, since a cached store skips it.
"""

import argparse
import json
import os
import platform
import sys
import time

# Runnable as a plain script from anywhere in the checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_env  # pylint: disable=g-import-not-at-top,wrong-import-position

from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", required=True)
  parser.add_argument("--dataset", default="ucsd_ped2")
  parser.add_argument("--split", default="train")
  parser.add_argument("--image-size", type=int, default=256)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--temporal", type=int, default=3)
  parser.add_argument("--backend", default="tfdata")
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--warmup", type=int, default=10, help="batches drawn before timing (pipeline start-up)")
  parser.add_argument("--cache-dir", default=None)
  args = parser.parse_args(argv)

  begin = time.perf_counter()
  store = pipeline.load_split(args.dataset, args.root, args.split, args.image_size, args.channels, args.cache_dir)
  build_s = time.perf_counter() - begin
  it = pipeline.train_iterator(store, global_batch_size=args.batch_size, temporal=args.temporal, backend=args.backend)
  begin = time.perf_counter()
  for _ in range(args.warmup):
    next(it)
  startup_s = time.perf_counter() - begin
  checksum = 0.0
  begin = time.perf_counter()
  for _ in range(args.steps):
    # Touch the batch as a consumer would, so lazy work cannot hide.
    checksum += float(next(it)["clips"][:, :, 0, 0].sum())
  stream_s = time.perf_counter() - begin
  clips = args.steps * args.batch_size
  print(
    json.dumps(
      {
        "dataset": args.dataset,
        "root": os.path.abspath(args.root),
        "split": args.split,
        "backend": pipeline.resolve_backend(args.backend),
        "clip_shape": [args.temporal, args.image_size, args.image_size, args.channels],
        "batch_size": args.batch_size,
        "steps": args.steps,
        "videos": store.num_videos,
        "frames": store.total_frames,
        "store_build_s": round(build_s, 3),
        "store_frames_per_s": round(store.total_frames / build_s, 1),
        "cached": args.cache_dir is not None,
        "startup_s": round(startup_s, 3),
        "clips_per_s": round(clips / stream_s, 1),
        "batches_per_s": round(args.steps / stream_s, 2),
        "cpu": bench_env.cpu_name(),
        "cores": bench_env.cores(),
        "python": platform.python_version(),
        "checksum": checksum,
      },
      indent=1,
    )
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
