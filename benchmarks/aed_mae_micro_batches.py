"""AED-MAE's stage-1 step at the paper's batch of 100, whole or in parts, on whatever device JAX has.

  python3 benchmarks/aed_mae_micro_batches.py --form=scan --parts=5         # train.micro_batches=5, as trained
  python3 benchmarks/aed_mae_micro_batches.py --form=unrolled --parts=5     # the same parts as a Python loop
  python3 benchmarks/aed_mae_micro_batches.py --form=whole                  # the batch at once (micro_batches=1)

`scan` is the package's own step (`aed_mae_step.train_step` with `micro_batches`); `unrolled` takes the same parts
one after another in a Python loop inside the jitted step (the package's `aed_mae_step.gradients` per part, keys
folded with the part's index, batch statistics carried), which is what the scan computes. Grey 80x160 with the
token side --patch (4 is the paper's on Ped2). Prints one JSON object: compile seconds, the wall seconds of each of
--steps steps, their losses (the same for scan and unrolled but rounding; `whole` draws its masks and BatchNorm
statistics over the whole batch), and the peak memory. Weights are freshly initialised; speed does not depend on
them.
"""

import argparse
import functools
import json
import os
import sys
import time

# Runnable as a plain script from anywhere in the checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench_env  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from maskedskip_jax.nn import aed_mae  # noqa: E402
from maskedskip_jax.nn import aed_mae_losses  # noqa: E402
from maskedskip_jax.train import aed_mae_step  # noqa: E402
from maskedskip_jax.train import step as step_lib  # noqa: E402

SIZE, OFFSET = (80, 160), 3


def unrolled_step(state, batch, *, model, tx, options):
  """Stage 1 on `options.micro_batches` parts in a Python loop: the update the scanned step computes."""
  inputs = aed_mae_step.step_inputs(batch, options.frame_offset)
  rng, masking, dropout = jax.random.split(state["rng"], 3)
  k = options.micro_batches
  n = batch["clips"].shape[0] // k
  grad = functools.partial(aed_mae_step.gradients, model=model, options=options)
  stats, acc = state["batch_stats"], None
  for i in range(k):
    part = jax.tree.map(lambda a, i=i: a[i * n : (i + 1) * n], inputs)
    keys = {name: jax.random.fold_in(key, i) for name, key in (("masking", masking), ("dropout", dropout))}
    (total, (stats, _)), grads = grad(state["params"], stats, part, keys)
    acc = (total, grads) if acc is None else jax.tree.map(jnp.add, acc, (total, grads))
  total, grads = jax.tree.map(lambda a: a / k, acc)
  return step_lib.apply_gradients(state, grads, tx=tx, batch_stats=stats, rng=rng), {"loss": total}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--form", choices=("scan", "unrolled", "whole"), default="scan")
  parser.add_argument("--batch", type=int, default=100, help="clips per step (100 is the paper's)")
  parser.add_argument("--parts", type=int, default=5, help="parts of the batch (scan and unrolled)")
  parser.add_argument("--patch", type=int, default=8, help="token side d (4 is the paper's on Ped2)")
  parser.add_argument("--steps", type=int, default=2, help="timed steps")
  args = parser.parse_args()
  if args.batch % args.parts:
    parser.error(f"--parts must divide --batch {args.batch}, got {args.parts}")
  bench_env.configure_jax()
  parts = 1 if args.form == "whole" else args.parts
  model = aed_mae.AedMae(channels=1, patch=args.patch)
  variables = aed_mae.init_variables(model, 0, (1, *SIZE, 3))
  tx = optax.adam(1e-4)
  state = {
    "params": variables["params"],
    "batch_stats": variables["batch_stats"],
    "opt_state": tx.init(variables["params"]),
    "step": jnp.int32(0),
    "rng": jax.random.key(0),
  }
  options = aed_mae_step.StageOptions(1, OFFSET, aed_mae_losses.Components(), parts)
  form = unrolled_step if args.form == "unrolled" else aed_mae_step.train_step
  step = jax.jit(functools.partial(form, model=model, tx=tx, options=options))
  batch = {"clips": np.random.default_rng(0).uniform(size=(args.batch, 2 * OFFSET + 1, *SIZE, 1)).astype(np.float32)}
  begin = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - begin
  seconds, losses = [], []
  for _ in range(args.steps):
    begin = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    seconds.append(round(time.perf_counter() - begin, 2))
    losses.append(float(metrics["loss"]))
  doc = {
    "form": args.form,
    "parts": parts,
    "batch": args.batch,
    "patch": args.patch,
    "frame": list(SIZE),
    "dtype": "float32",
    "compile_s": round(compile_s, 1),
    "step_s": seconds,
    "loss": losses,
    **bench_env.peak_memory(),
    "load_average": bench_env.load_average(),
    "environment": bench_env.environment(),
  }
  print(json.dumps(doc, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
