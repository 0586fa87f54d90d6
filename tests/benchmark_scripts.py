"""Where the benchmark scripts are (put on sys.path: the experimental layers live beside them, not in the package),
and the inputs the tests of tests/cli/test_benchmark*.py draw."""

import os
import sys

import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path[:0] = [p for p in (BENCH, ROOT) if p not in sys.path]


def uniform(seed, shape):
  # numpy draws: a jitted threefry draw costs seconds of XLA:CPU compile per shape.
  return jnp.asarray(np.random.default_rng(seed).random(shape, dtype=np.float32))
