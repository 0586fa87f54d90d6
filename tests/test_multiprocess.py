"""Two processes joined by jax.distributed on localhost train one model together."""

import os
import socket

import jax
import numpy as np

from maskedskip_jax import metrics_log
from maskedskip_jax import train

import tiny_run

STEPS, LR = 4, 1e-3


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
  data = tiny_run.make_dataset(str(tmp_path / "data"))
  # The single-frame autoencoder compiles in half the time of the full model; the
  # distributed machinery under test does not depend on the variant.
  settings = dict(train__num_steps=STEPS, train__checkpoint_every_steps=1, train__keep_checkpoints=STEPS,
                  train__learning_rate=LR, model__variant="autoencoder", model__temporal=1)
  flags = tiny_run.overrides(data, **settings)
  config = tiny_run.config(data, **settings)
  port = _free_port()
  multi = str(tmp_path / "two")
  procs = [tiny_run.popen_main(multi, flags + [f"--coordinator_address=localhost:{port}", "--num_processes=2",
                                               f"--process_id={i}"], JAX_PLATFORMS="cpu")
           for i in range(2)]
  outputs = [p.communicate(timeout=400) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  assert "batch 4 over 2 device(s), 2 process(es)" in outputs[0][1]

  single = str(tmp_path / "one")
  result = train.train(config, single)
  assert result["step"] == STEPS

  one, two = (metrics_log.read(os.path.join(w, "metrics.jsonl")) for w in (single, multi))
  assert [r["step"] for r in two] == list(range(1, STEPS + 1))  # written once, by process 0
  # Step 1 starts from identical parameters: the global batch, its loss and its
  # gradient agree to rounding. This fails if a process trains on the wrong rows: other
  # clips move both far beyond rounding. The gradient norm is a sum of
  # squares of sums over the batch and every pixel, in another order when the batch is
  # split; its rounding reaches ~1e-5 relative, hence the looser bound for it.
  np.testing.assert_allclose(two[0]["loss"], one[0]["loss"], rtol=1e-5, err_msg="loss")
  np.testing.assert_allclose(two[0]["grad_norm"], one[0]["grad_norm"], rtol=1e-4, err_msg="grad_norm")
  np.testing.assert_allclose(two[1]["loss"], one[1]["loss"], rtol=1e-5)
  # Later steps drift by BatchNorm-amplified rounding (see test_sharding).
  np.testing.assert_allclose([r["loss"] for r in two], [r["loss"] for r in one], rtol=2e-3)

  # After step 1: batch statistics depend only on the initial parameters and the
  # global batch, so they agree to rounding. Adam's first step moves each weight by
  # lr * g / (|g| + eps): where |g| is within a few eps of 0, rounding changes that
  # fraction, so a tiny share of weights may differ (and biases feeding a
  # BatchNorm, whose gradient is pure rounding noise, are left out).
  _, want, _ = train.restore_variables(config, single, step=1)
  _, got, _ = train.restore_variables(config, multi, step=1)
  kernels = differing = 0
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got)):
    name, a, b = jax.tree_util.keystr(path), np.asarray(a), np.asarray(b)
    if "batch_stats" in name:
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=name)
    elif "kernel" in name:
      kernels += a.size
      differing += int(np.sum(~np.isclose(b, a, rtol=1e-5, atol=1e-7)))
  assert kernels > 10_000 and differing < 0.005 * kernels, (differing, kernels)
