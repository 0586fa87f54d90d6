"""AED-MAE's inference speed: frames per second of scoring a video as the evaluation and predict do.

  python3 benchmarks/aed_mae_speed.py                               # the paper's Avenue setting: RGB 320x640, d = 16
  python3 benchmarks/aed_mae_speed.py --setting ped2 --frames 64    # grey 80x160, d = 4

Prints one JSON object. `forward_frames_per_s`: the network alone (both decoders and the classifier, on stacked
frames already on the device), the median of --steps timed batches; `end_to_end_frames_per_s`: the whole score
(`AedMaeScorer.stream`: uint8 frames from the host, stacking, Eq. 6, the 3-D mean filter, the frame maximum and the
temporal Gaussian) over one video of --frames frames, compile time apart, with --masking's test-time token dropping
(`cover`, the default, runs ceil(1 / mask ratio) forwards per frame, `random` and `none` one). Weights are freshly
initialised: speed does not depend on them. The paper's 1655 frames/s is an RTX 3090's; compare like with like.
"""

import argparse
import json
import os
import sys
import time

# Runnable as a plain script from anywhere in the checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_env  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from maskedskip_jax.eval import aed_mae_scorer  # noqa: E402
from maskedskip_jax.nn import aed_mae  # noqa: E402

# name -> (token side d, (H, W), channels c), as benchmarks/aed_mae_size.py.
SETTINGS = {"avenue": (16, (320, 640), 3), "shanghaitech": (8, (160, 320), 3), "ped2": (4, (80, 160), 1)}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--setting", choices=sorted(SETTINGS), default="avenue")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--frames", type=int, default=64, help="frames of the scored video")
  parser.add_argument("--steps", type=int, default=5, help="timed forward batches")
  parser.add_argument("--masking", choices=aed_mae_scorer.MASKING, default=aed_mae_scorer.ScoreSettings.masking)
  args = parser.parse_args()
  bench_env.configure_jax()
  patch, (h, w), c = SETTINGS[args.setting]
  model = aed_mae.AedMae(channels=c, patch=patch)
  variables = aed_mae.init_variables(model, 0, (1, h, w, 3 * c))
  forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
  x = jax.device_put(np.random.default_rng(0).uniform(size=(args.batch, h, w, 3 * c)).astype(np.float32))
  begin = time.perf_counter()
  jax.block_until_ready(forward(variables, x))
  forward_compile = time.perf_counter() - begin
  median, times, _ = bench_env.median_ms(lambda: jax.block_until_ready(forward(variables, x)), args.steps)
  settings = aed_mae_scorer.ScoreSettings(masking=args.masking)
  scorer = aed_mae_scorer.AedMaeScorer(
    model, variables, (h, w), frame_offset=3, batch_size=args.batch, settings=settings
  )
  begin = time.perf_counter()
  scorer.compile()
  score_compile = time.perf_counter() - begin
  video = np.random.default_rng(1).integers(0, 256, (args.frames, h, w, c), dtype=np.uint8)
  begin = time.perf_counter()
  scored = sum(1 for _ in scorer.stream([video]))
  seconds = time.perf_counter() - begin
  doc = {
    "setting": args.setting,
    "patch": patch,
    "frame": [h, w],
    "channels": c,
    "dtype": "float32",
    "batch": args.batch,
    "forward_compile_s": round(forward_compile, 2),
    "forward_ms_per_batch": [round(t, 1) for t in times],
    "forward_frames_per_s": round(args.batch / (median / 1e3), 2),
    "score_compile_s": round(score_compile, 2),
    "frames_scored": scored,
    "end_to_end_frames_per_s": round(scored / seconds, 2),
    "masking": args.masking,
    "paper_frames_per_s": {"value": 1655, "device": "RTX 3090"},
    "load_average": bench_env.load_average(),
    "environment": bench_env.environment(),
  }
  print(json.dumps(doc, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
