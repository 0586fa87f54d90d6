"""Interleaved A/B timing of speed candidates for the train step (or inference), in one process.

  python3 benchmarks/cpu_ab.py --candidates base,no_ynn,fused_branches --rounds 15

Every candidate is compiled up front, then the rounds time one step of each in
turn, so a neighbour's load drifting over minutes hits all candidates alike (a
shared 2-core box is never quiet). Reports each candidate's median step and the
median over rounds of its time divided by the baseline's in the same round, in
wall time and in process CPU time (the load-robust one).
Candidates are XLA compiler options (given per compile, no XLA_FLAGS needed), model
patches (`fused_branches`: benchmarks/fused_branches.py) or the model's conv lowering
(`maskedskip_jax.conv_lowering`: `base` is the package default, `auto`, which on CPU
is the FFT weight gradients + small-map im2col; `xla_convs` is XLA's plain convs,
`cpu_convs` forces the CPU paths on any backend: the GPU A/B of benchmarks/gpu_checks.sh),
whose forward output is checked against the base model with the same variables.

  python3 benchmarks/cpu_ab.py --candidates base,cpu_convs --batch 16 --image-size 256 \
      --latent-dim 512 --dtype bfloat16 --rounds 10     # on a GPU
"""

import argparse
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_env  # pylint: disable=g-import-not-at-top,wrong-import-position
import experimental  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import model_speed  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import optim  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top,wrong-import-position
from maskedskip_jax.train import step as step_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

# name -> (XLA compiler options, experimental model changes from experimental.PATCHES, model.conv_lowering)
CANDIDATES = {
  "base": ({}, (), "auto"),
  "xla_convs": ({}, (), "xla"),
  "cpu_convs": ({}, (), "cpu"),
  "no_ynn": ({"xla_cpu_experimental_ynn_fusion_type": ""}, (), "auto"),
  "eigen_single_thread": ({"xla_cpu_multi_thread_eigen": False}, (), "auto"),
  "onednn": ({"xla_cpu_use_onednn": True}, (), "auto"),
  "vector_width_512": ({"xla_cpu_prefer_vector_width": 512}, (), "auto"),
  "concurrency_scheduler": ({"xla_cpu_enable_concurrency_optimized_scheduler": True}, (), "auto"),
  "fast_math": ({"xla_cpu_enable_fast_math": True}, (), "auto"),
  "fused_branches": ({}, ("fused_branches",), "auto"),
}


def _compile(fn, args, options, patch_names, donate):
  jitted = jax.jit(fn, donate_argnums=0 if donate else ())
  begin = time.perf_counter()
  with experimental.patches(patch_names):
    lowered = jitted.lower(*args)
  compiled = lowered.compile(compiler_options=options or None)
  return compiled, time.perf_counter() - begin


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--candidates", default="base,no_ynn,fused_branches")
  parser.add_argument("--what", default="train", choices=("train", "inference"))
  parser.add_argument("--variant", default="maskedskip_unet", choices=models.VARIANTS)
  parser.add_argument("--latent-dim", type=int, default=64)
  parser.add_argument("--image-size", type=int, default=64)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument(
    "--dtype",
    default="float32",
    choices=tuple(model_speed.DTYPES),
    help="compute dtype (bfloat16 on GPU/TPU); params stay float32",
  )
  parser.add_argument("--rounds", type=int, default=15)
  args = parser.parse_args(argv)
  names = args.candidates.split(",")
  unknown = [n for n in names if n not in CANDIDATES]
  if unknown or names[0] != "base":
    parser.error(f"--candidates: start with base; known: {', '.join(CANDIDATES)}; unknown: {unknown}")
  bench_env.configure_jax()

  model = models.build(
    args.variant,
    latent_dim=args.latent_dim,
    channels=args.channels,
    dtype=model_speed.DTYPES[args.dtype],
    param_dtype=jnp.float32,
  )
  shape = model_speed.clip_shape(model, args.batch, args.image_size)
  x = jax.device_put(model_speed.clips(shape))
  tx = optim.make_optimizer(1e-2)
  # Not jitted: the project's init_state draws parameters on the host from a concrete seed.
  init = functools.partial(train_state.init_state, model=model, tx=tx, input_shape=(1, *shape[1:]))
  kept = init(0)  # never donated: inference and the equivalence check use it
  variables = {"params": kept["params"], "batch_stats": kept["batch_stats"]}
  runners, report = (
    {},
    {
      "what": args.what,
      "train_step": model_speed.TRAIN_STEP,
      "shape": list(shape),
      "dtype": args.dtype,
      **bench_env.environment(),
      "load_average_start": bench_env.load_average(),
    },
  )
  base_apply = jax.jit(lambda v, x: model.apply(v, x))
  for name in names:
    options, patch_names, lowering = CANDIDATES[name]
    cand = model.clone(conv_lowering=lowering)
    state = init(0)  # a state per candidate: each one's step donates its own
    if args.what == "train":
      fn = functools.partial(step_lib.train_step, model=cand, tx=tx)
      compiled, seconds = _compile(fn, (state, {"clips": x}), options, patch_names, donate=True)
      holder = [state]

      def run(compiled=compiled, holder=holder):
        holder[0], metrics = compiled(holder[0], {"clips": x})
        jax.block_until_ready((holder[0], metrics))
    else:
      compiled, seconds = _compile(
        lambda v, x, m=cand: m.apply(v, x), (variables, x), options, patch_names, donate=False
      )
      run = functools.partial(lambda c: jax.block_until_ready(c(variables, x)), compiled)
    for _ in range(2):
      run()
    runners[name] = run
    report.setdefault("compile_s", {})[name] = round(seconds, 2)
    if patch_names or lowering != "auto":
      with experimental.patches(patch_names):
        changed = jax.jit(cand.apply)(variables, x)
      report.setdefault("max_abs_diff_vs_base", {})[name] = float(jnp.max(jnp.abs(changed - base_apply(variables, x))))

  times = {n: [] for n in names}
  cpu = {n: [] for n in names}
  for _ in range(args.rounds):
    for name in names:
      begin, begin_cpu = time.perf_counter(), time.process_time()
      runners[name]()
      times[name].append((time.perf_counter() - begin) * 1e3)
      cpu[name].append((time.process_time() - begin_cpu) * 1e3)
  for key, series in (("", times), ("cpu_", cpu)):
    base = np.asarray(series["base"])
    report[f"step_{key}ms_median"] = {n: round(float(np.median(t)), 2) for n, t in series.items()}
    report[f"{key}ratio_to_base"] = {n: round(float(np.median(np.asarray(t) / base)), 3) for n, t in series.items()}
  report["rounds"] = args.rounds
  report["load_average_end"] = bench_env.load_average()
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
