"""Registry of the experimental speed changes kept in benchmarks/, to time them before adoption.

Adopted changes leave this registry for the package (the FFT weight gradients and
small-map im2col are now `maskedskip_jax.conv_lowering`, chosen by `--conv-lowering`).

Each named module has a `patched()` context manager; a model traced inside it
uses the changed layer (the same parameters, the same maths). `patches(names)`
enters several at once.
"""

import contextlib
import importlib

PATCHES = {
  "fused_branches": "fused_branches"  # the 3/5/7 branch convs as one 7x7 conv
}


@contextlib.contextmanager
def patches(names=()):
  with contextlib.ExitStack() as stack:
    for name in names:
      stack.enter_context(importlib.import_module(PATCHES[name]).patched())
    yield
