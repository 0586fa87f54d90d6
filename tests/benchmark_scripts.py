"""Where the benchmark scripts are (put on sys.path: the experimental layers live beside them, not in the package),
and the inputs the tests of tests/cli/test_benchmark*.py draw."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path[:0] = [p for p in (BENCH, ROOT) if p not in sys.path]


def uniform(seed, shape):
  # numpy draws: a jitted threefry draw costs seconds of XLA:CPU compile per shape.
  return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))


def run_script(name: str, *args: str, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
  """benchmarks/<name> with `args` in a fresh interpreter from the checkout's root, its output captured as text:
  each script defines absl flags or argparse options that would clash inside a test worker."""
  return subprocess.run(
    [sys.executable, os.path.join(BENCH, name), *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
