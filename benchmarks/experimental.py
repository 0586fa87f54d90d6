"""Registry of the experimental speed changes kept in benchmarks/, to time them before adoption.

Each named module has a `patched()` context manager; a model traced inside it
uses the changed layer (the same parameters, the same maths). `patches(names)`
enters several at once.
"""

import contextlib
import importlib

PATCHES = {
    "fft_weight_grad": "fft_weight_grad",     # large-kernel conv weight gradients by FFT
    "small_map_im2col": "small_map_conv",     # convs with a kernel larger than the map as im2col
    "fused_branches": "fused_branches",       # the 3/5/7 branch convs as one 7x7 conv
}


@contextlib.contextmanager
def patches(names=()):
  with contextlib.ExitStack() as stack:
    for name in names:
      stack.enter_context(importlib.import_module(PATCHES[name]).patched())
    yield
