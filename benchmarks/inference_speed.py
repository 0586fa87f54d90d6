"""Inference throughput: streaming scorer (each frame encoded once) against clip-by-clip scoring.

  python3 benchmarks/inference_speed.py                                   # published network, 256², batch 64
  python3 benchmarks/inference_speed.py --latent-dim 64 --size 64 --batch 8 --steps 10   # a small CPU run

Prints one JSON object. Frames/s counts frames scored (one clip per frame). Both paths compute the frame scores
on the device; compile time is reported apart. Step times are the median of --steps timed steps, each waited
for with block_until_ready. `streaming.end_to_end_frames_per_s` also includes feeding uint8 frames from the
host and handing scores back (`StreamingScorer.stream`).
"""

import argparse
import json
import os
import sys
import time

# Runnable as a plain script from anywhere in the checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from maskedskip_jax.eval import streaming  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import initialization  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import scoring  # pylint: disable=g-import-not-at-top,wrong-import-position


def timed(fn, steps):
  """(median seconds per call, all times) of `fn()` run `steps` times, each waited for."""
  times = []
  for _ in range(steps):
    begin = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - begin)
  return float(np.median(times)), times


def streaming_device(scorer, steps):
  """The scorer's step on device-resident inputs: B new frames encoded, B clips decoded and scored."""
  b, t = scorer.batch_size, scorer.model.temporal
  begin = time.perf_counter()
  scorer.compile()
  compile_s = time.perf_counter() - begin
  rng = np.random.default_rng(0)
  frames = jax.device_put(rng.integers(0, 256, (b, *scorer.frame_shape), dtype=np.uint8))
  write = jax.device_put(np.arange(b, dtype=np.int32) % scorer.ring_size)
  read = jax.device_put(rng.integers(0, scorer.ring_size, (b, t)).astype(np.int32))
  state = {"ring": scorer._ring()}  # pylint: disable=protected-access

  def step():
    state["ring"], out = scorer._run_step(state["ring"], frames, write, read)  # pylint: disable=protected-access
    return out["score"]

  step()
  median, _ = timed(step, steps)
  return compile_s, median


def per_clip(model, variables, batch, size, steps, patch):
  """model.apply on (B, T, H, W, C) clips, then the same scoring: T encodings per frame scored."""
  fn = jax.jit(
    lambda v, x: scoring.frame_scores(
      scoring.score_maps(x[:, (x.shape[1] - 1) // 2], model.apply(v, x, train=False)), patch
    )
  )
  clips = jax.device_put(
    np.random.default_rng(1).uniform(0, 1, (batch, model.temporal, size, size, model.channels)).astype(np.float32)
  )
  begin = time.perf_counter()
  compiled = fn.lower(variables, clips).compile()
  compile_s = time.perf_counter() - begin
  compiled(variables, clips)
  median, _ = timed(lambda: compiled(variables, clips), steps)
  return compile_s, median


def end_to_end(scorer, frames_total):
  rng = np.random.default_rng(2)
  video = rng.integers(0, 256, (min(frames_total, 256), *scorer.frame_shape), dtype=np.uint8)
  frames = (video[k % len(video)] for k in range(frames_total))
  begin = time.perf_counter()
  count = sum(1 for _ in scorer.stream([frames]))
  return count / (time.perf_counter() - begin)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--variant", default="maskedskip_unet")
  parser.add_argument("--latent-dim", type=int, default=512)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument(
    "--dtype",
    choices=("auto", "float32", "bfloat16"),
    default="auto",
    help="compute dtype (params float32); auto = bfloat16 on GPU/TPU, float32 on CPU",
  )
  parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
  parser.add_argument("--stream-frames", type=int, default=0, help="frames for the end-to-end run (0: 8 steps)")
  parser.add_argument("--compilation-cache", default="", help="JAX persistent compilation cache folder")
  args = parser.parse_args(argv)
  if args.compilation_cache:
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser(args.compilation_cache))
  dtype = args.dtype
  if dtype == "auto":
    dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
  model = models.build(
    args.variant,
    latent_dim=args.latent_dim,
    channels=args.channels,
    dtype={"float32": jnp.float32, "bfloat16": jnp.bfloat16}[dtype],
  )
  # The weights do not change the speed; host-side init needs no compile.
  variables = jax.device_put(
    initialization.init_variables(model, 0, (1, model.temporal, args.size, args.size, model.channels))
  )
  scorer = streaming.StreamingScorer(model, variables, (args.size, args.size), batch_size=args.batch)
  s_compile, s_step = streaming_device(scorer, args.steps)
  e2e = end_to_end(scorer, args.stream_frames or 8 * args.batch)
  c_compile, c_step = per_clip(model, scorer.variables, args.batch, args.size, args.steps, 16)
  device = jax.devices()[0]
  result = {
    "device": getattr(device, "device_kind", str(device)),
    "backend": jax.default_backend(),
    "jax": jax.__version__,
    "dtype": dtype,
    "params_dtype": "float32",
    "variant": args.variant,
    "latent_dim": args.latent_dim,
    "batch": args.batch,
    "size": args.size,
    "channels": args.channels,
    "temporal": model.temporal,
    "timed_steps": args.steps,
    "streaming": {
      "compile_s": s_compile,
      "step_ms_median": 1e3 * s_step,
      "device_frames_per_s": args.batch / s_step,
      "end_to_end_frames_per_s": e2e,
    },
    "per_clip": {"compile_s": c_compile, "step_ms_median": 1e3 * c_step, "frames_per_s": args.batch / c_step},
    "speedup_device": c_step / s_step,
  }
  print(json.dumps(result, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
