"""Model throughput: training clips/s and inference frames/s of one variant, as JSON.

  python3 benchmarks/model_speed.py --variant maskedskip_unet --batch 16 \
      --image-size 256 --latent-dim 512 --channels 3 --temporal 3 \
      --dtype bfloat16 --steps 20

The training step is the project's own (`maskedskip_jax.train.step.train_step`: jitted,
state donated, Adam, norm loss, BatchNorm statistics updated). Inference is the
plain per-clip `apply` in eval mode (one scored frame per clip); `--streaming`
adds the frame-reusing path of `maskedskip_jax.eval.streaming` when it exists.
Tracing/compiling and the first run are timed apart from the steady state, which
is the median of `--steps` steps, each bracketed by `block_until_ready`.
"""

import argparse
import functools
import json
import os
import sys
import time

# Runnable as a plain script from anywhere in the checkout; the experimental layers sit beside it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_env  # pylint: disable=g-import-not-at-top,wrong-import-position
import experimental  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from maskedskip_jax.nn import conv_lowering  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import initialization  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import optim  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


TRAIN_STEP = "maskedskip_jax.train.step.train_step"


def _cost_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and cost.get("flops") else None
  except Exception:  # pylint: disable=broad-except
    return None


def clips(shape, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


def clip_shape(model, batch_size: int, image_size: int) -> tuple[int, ...]:
  return (batch_size, model.temporal, image_size, image_size, model.channels)


def bench_train(
  model,
  image_size: int,
  batch_size: int,
  steps: int,
  warmup: int = 2,
  learning_rate: float = 1e-2,
  patch_names=(),
  profile_dir: str = "",
) -> tuple[dict, dict]:
  """Times the jitted, state-donating train step; returns timings and the trained variables.

  `profile_dir`: after timing, a jax.profiler trace of 3 more steps goes there (for a missed target's why).
  """
  tx = optim.make_optimizer(learning_rate)
  shape = clip_shape(model, batch_size, image_size)
  init = functools.partial(train_state.init_state, model=model, tx=tx, input_shape=(1, *shape[1:]))
  state = jax.device_put(init(0))
  batch = {"clips": jax.device_put(clips(shape))}
  jitted = jax.jit(functools.partial(step_lib.train_step, model=model, tx=tx), donate_argnums=0)
  begin = time.perf_counter()
  with experimental.patches(patch_names):
    lowered = jitted.lower(state, batch)
  trace_s = time.perf_counter() - begin
  begin = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - begin
  begin = time.perf_counter()
  state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  first_s = time.perf_counter() - begin
  for _ in range(warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready((state, metrics))
  holder = [state]

  def run():
    new_state, out = compiled(holder[0], batch)
    jax.block_until_ready((new_state, out))
    holder[0] = new_state

  ms, times, cpu_ms = bench_env.median_ms(run, steps)
  if profile_dir:
    with jax.profiler.trace(profile_dir):
      for _ in range(3):
        run()
  flops = _cost_flops(compiled)
  out = {
    "train_step": TRAIN_STEP,
    "trace_s": round(trace_s, 3),
    "compile_s": round(compile_s, 3),
    "first_step_s": round(first_s, 3),
    "cold_start_s": round(trace_s + compile_s + first_s, 3),
    "step_ms_median": round(ms, 3),
    "step_ms_min": round(min(times), 3),
    "step_ms_max": round(max(times), 3),
    "step_cpu_ms_median": round(cpu_ms, 3),
    "clips_per_s": round(batch_size / ms * 1e3, 3),
    "loss": float(metrics["loss"]),
  }
  if flops:
    out["flops_per_step"] = flops
    out["tflops_per_s"] = round(flops / ms / 1e9, 4)
  out.update({f"{k}_after_train": v for k, v in bench_env.peak_memory().items()})
  return out, {"params": holder[0]["params"], "batch_stats": holder[0]["batch_stats"]}


def bench_infer(
  model, variables, image_size: int, batch_size: int, steps: int, warmup: int = 2, patch_names=()
) -> dict:
  """Plain eval-mode apply on whole clips: one scored (centre) frame per clip."""
  x = jax.device_put(clips(clip_shape(model, batch_size, image_size), seed=1))
  fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
  begin = time.perf_counter()
  with experimental.patches(patch_names):
    lowered = fn.lower(variables, x)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - begin
  begin = time.perf_counter()
  jax.block_until_ready(compiled(variables, x))
  first_s = time.perf_counter() - begin
  for _ in range(warmup):
    jax.block_until_ready(compiled(variables, x))
  ms, _, cpu_ms = bench_env.median_ms(lambda: jax.block_until_ready(compiled(variables, x)), steps)
  out = {
    "compile_s": round(compile_s, 3),
    "first_step_s": round(first_s, 3),
    "step_ms_median": round(ms, 3),
    "step_cpu_ms_median": round(cpu_ms, 3),
    "frames_per_s": round(batch_size / ms * 1e3, 3),
  }
  out.update({f"{k}_after_inference": v for k, v in bench_env.peak_memory().items()})
  return out


def bench_streaming(model, variables, image_size: int, batch_size: int, steps: int) -> dict:
  """`maskedskip_jax.eval.streaming`'s device step: B new frames encoded once, B clips decoded and scored.

  Timed by `benchmarks/inference_speed.py` (the streaming path's own benchmark) on
  device-resident inputs, so the figure is frames scored per second.
  """
  try:
    import inference_speed  # pylint: disable=g-import-not-at-top

    from maskedskip_jax.eval import streaming  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    return {"skipped": f"streaming path not importable: {e}"}
  scorer = streaming.StreamingScorer(model, variables, (image_size, image_size), batch_size=batch_size)
  compile_s, median_s = inference_speed.streaming_device(scorer, steps)
  out = {
    "batch": batch_size,
    "compile_s": round(compile_s, 3),
    "step_ms_median": round(median_s * 1e3, 3),
    "frames_per_s": round(batch_size / median_s, 3),
  }
  out.update({f"{k}_after_streaming": v for k, v in bench_env.peak_memory().items()})
  return out


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--variant", default="maskedskip_unet", choices=models.VARIANTS)
  parser.add_argument("--batch", type=int, default=16, help="training clips per step")
  parser.add_argument("--infer-batch", type=int, default=None, help="inference clips per call (default --batch)")
  parser.add_argument("--image-size", type=int, default=256)
  parser.add_argument("--latent-dim", type=int, default=512)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument("--temporal", type=int, default=None, help="default: the variant's own")
  parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES), help="compute dtype; params stay f32")
  parser.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps after the first")
  parser.add_argument(
    "--full-3d-skips",
    action="store_true",
    help="compute the masked skips as full 3-D convs (centre-only is the default)",
  )
  parser.add_argument("--streaming", action="store_true", help="also time maskedskip_jax.eval.streaming")
  parser.add_argument(
    "--conv-lowering",
    default="auto",
    choices=conv_lowering.LOWERINGS,
    help="model.conv_lowering: auto = the CPU fast paths on CPU, XLA's convs elsewhere",
  )
  parser.add_argument(
    "--patches", default="", help=f"comma-separated experimental changes: {', '.join(experimental.PATCHES)}"
  )
  parser.add_argument("--skip-train", action="store_true")
  parser.add_argument("--skip-inference", action="store_true", help="train step only (--streaming still runs)")
  parser.add_argument("--compilation-cache", default="", help="persistent compilation cache directory")
  parser.add_argument("--profile-dir", default="", help="also write a jax.profiler trace of 3 train steps here")
  args = parser.parse_args(argv)
  args.patches = [p for p in args.patches.split(",") if p]
  if any(p not in experimental.PATCHES for p in args.patches):
    parser.error(f"--patches: known: {', '.join(experimental.PATCHES)}; got {args.patches}")
  if min(args.batch, args.steps, args.image_size, args.latent_dim) < 1 or args.warmup < 0:
    parser.error("--batch, --steps, --image-size and --latent-dim must be positive, --warmup >= 0")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  bench_env.configure_jax(args.compilation_cache)
  model = models.build(
    args.variant,
    latent_dim=args.latent_dim,
    channels=args.channels,
    temporal=args.temporal,
    centre_only=not args.full_3d_skips,
    dtype=DTYPES[args.dtype],
    param_dtype=jnp.float32,
    conv_lowering=args.conv_lowering,
  )
  models.check_input_shape(model, clip_shape(model, 1, args.image_size))
  infer_batch = args.infer_batch or args.batch
  report = {
    "variant": args.variant,
    "batch": args.batch,
    "infer_batch": infer_batch,
    "image_size": args.image_size,
    "latent_dim": args.latent_dim,
    "channels": args.channels,
    "temporal": model.temporal,
    "dtype": args.dtype,
    "param_dtype": "float32",
    "centre_only": not args.full_3d_skips,
    "steps": args.steps,
    "patches": args.patches,
    "conv_lowering": conv_lowering.resolve(args.conv_lowering),
    **bench_env.environment(),
    "load_average_start": bench_env.load_average(),
  }
  variables = None
  if not args.skip_train:
    report["train"], variables = bench_train(
      model,
      args.image_size,
      args.batch,
      args.steps,
      args.warmup,
      patch_names=args.patches,
      profile_dir=args.profile_dir,
    )
  if variables is None:
    shape = clip_shape(model, 1, args.image_size)
    variables = initialization.init_variables(model, 0, shape)
  if not args.skip_inference:
    report["inference"] = bench_infer(
      model, variables, args.image_size, infer_batch, args.steps, args.warmup, args.patches
    )
  if args.streaming:
    report["streaming"] = bench_streaming(model, variables, args.image_size, infer_batch, args.steps)
  report["load_average_end"] = bench_env.load_average()
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
