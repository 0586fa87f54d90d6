"""Experimental: 2-D convs whose kernel is larger than their input map, as im2col + one matmul.

When a SAME conv's kernel exceeds the feature map (the decoder's first 5x5 and 7x7
convs see a 4x4 map at 64x64 input), XLA swaps the conv's operands and lowers it
to a slow generic loop on CPU (dim_labels 01fb_o01i->f01b). Gathering the k*k
shifted copies of the padded map (tiny at that size) and contracting them with the
flattened kernel is the same sum, done by the matmul library. Same parameters.

Measured with `cpu_ab.py --candidates base,small_map_im2col`; `patched()` swaps
it in for `layers.Conv`, which `layers.ConvBlock` looks up at call time.
"""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from maskedskip_jax import layers


def im2col_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """SAME, stride-1 2-D conv of x (B,H,W,Ci) with kernel (kh,kw,Ci,Co) (odd sizes) as one contraction."""
  kh, kw, ci, co = kernel.shape
  _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  cols = jnp.concatenate([xp[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
  return jnp.einsum("bhwk,ko->bhwo", cols, kernel.reshape(kh * kw * ci, co))


class SmallMapConv(layers.Conv):
  """`layers.Conv`, except 2-D convs with a kernel wider or taller than the map go through im2col."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    if len(k) != 2 or (k[0] <= x.shape[1] and k[1] <= x.shape[2]):
      return super().__call__(x)
    # Same parameter names, shapes and initialisers as the parent; only the compute differs.
    cin = x.shape[-1]
    fan_in = cin * k[0] * k[1]
    init = layers.torch_uniform_init(fan_in)
    name = "kernel"
    if self.mask is not None:
      name, mask, base = "masked_kernel", self.mask, init
      init = lambda key, shape, dtype=jnp.float32: base(key, shape, dtype) * mask.astype(dtype)
    kernel = self.param(name, init, (*k, cin, self.features), self.param_dtype)
    bias = self.param("bias", layers.torch_uniform_init(fan_in), (self.features,), self.param_dtype)
    if self.mask is not None:
      kernel = kernel * self.mask.astype(kernel.dtype)
    y = im2col_conv(x.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


@contextlib.contextmanager
def patched():
  """Models traced inside this context use `SmallMapConv`."""
  original = layers.Conv
  layers.Conv = SmallMapConv
  try:
    yield
  finally:
    layers.Conv = original
