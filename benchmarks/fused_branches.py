"""Experimental: the three parallel 3/5/7 convs of a ConvBlock as one 7x7 conv.

The 3x3 and 5x5 kernels are zero-padded to 7x7 and the three kernels stacked on
the output axis, so one SAME conv yields exactly the concatenation the block
feeds its BatchNorm (same parameters, same names, same channel order; only the
summation order of the zero taps differs). It trades 147/83 = 1.77x the
multiply-adds for one large conv instead of three smaller ones (one input read,
one input-gradient conv instead of three summed).

Lives in benchmarks/ to be measured (`cpu_ab.py --fused-branches`), not used by the
package. `patched()` swaps it in for `layers.ConvBlock`, which `models` looks up at
call time.
"""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.nn import layers


class BranchParams(nn.Module):
  """Holds one branch's `kernel`/`masked_kernel` and `bias` exactly as `layers.Conv` would."""

  features: int
  kernel_size: int
  cin: int
  mask: np.ndarray | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self):
    k = self.kernel_size
    fan_in = self.cin * k * k
    init = layers.torch_uniform_init(fan_in)
    name = "kernel"
    if self.mask is not None:
      name, mask, base = "masked_kernel", self.mask, init
      init = lambda key, shape, dtype=jnp.float32: base(key, shape, dtype) * mask.astype(dtype)
    kernel = self.param(name, init, (k, k, self.cin, self.features), self.param_dtype)
    bias = self.param("bias", layers.torch_uniform_init(fan_in), (self.features,), self.param_dtype)
    if self.mask is not None:
      kernel = kernel * self.mask.astype(kernel.dtype)
    return kernel, bias


class FusedConvBlock(layers.ConvBlock):
  """`layers.ConvBlock` with its three branch convs computed as one (same params, same maths)."""

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    width = self.features * (4 if self.decode else 1)
    big = max(self.kernels)
    kernels, biases = [], []
    for i, k in enumerate(self.kernels):
      mask = layers.centre_square_mask(k, k - 2) if self.ed_mask else None
      kernel, bias = BranchParams(width, k, x.shape[-1], mask, self.param_dtype, name=f"convs_{i}")()
      pad = (big - k) // 2
      kernels.append(jnp.pad(kernel, ((pad, pad), (pad, pad), (0, 0), (0, 0))))
      biases.append(bias)
    kernel = jnp.concatenate(kernels, axis=-1).astype(self.dtype)
    y = jax.lax.conv_general_dilated(
      x.astype(self.dtype), kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    y = y + jnp.concatenate(biases).astype(self.dtype)
    y = nn.relu(layers.batch_norm(train, self.dtype, self.param_dtype, "batch_norm_1")(y))
    y = layers.depth_to_space(y) if self.decode else layers.space_to_depth(y)
    y = layers.Conv(self.features, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, name="conv_last")(y)
    bn2 = layers.batch_norm(train, self.dtype, self.param_dtype, "batch_norm_2")
    if not self.last:
      return nn.relu(bn2(y))
    if self.is_initializing():
      bn2(y)
    return y


@contextlib.contextmanager
def patched():
  """Models built and traced inside this context use `FusedConvBlock`."""
  original = layers.ConvBlock
  layers.ConvBlock = FusedConvBlock
  try:
    yield
  finally:
    layers.ConvBlock = original
