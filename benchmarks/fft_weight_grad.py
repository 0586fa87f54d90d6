"""Experimental: the weight gradient of large-kernel 2-D convs by FFT; forward and input gradient unchanged.

A SAME conv's weight gradient, dW[i,j,c,o] = sum_{n,h,w} xpad[n,h+i,w+j,c] dY[n,h,w,o],
is a cross-correlation of each input map with each output-gradient map. XLA:CPU
computes it as a conv whose "kernel" is the whole H x W gradient map and whose
contraction depth is the batch: 8 GFLOP/s for the 17x17 skip conv, where that one
op took ~22% of the small CPU config's train step. Through real FFTs of size
(H+k-1) x (W+k-1) the contraction over (n, h, w) becomes a product per frequency
summed over n, ~20x less work; the result agrees with a float64 reference at
least as closely as XLA's direct form (relative error ~5e-7 in float32).

The forward pass and the input gradient stay XLA's own convs, so inference is
bit-identical. `patched()` routes `layers`' conv calls through `conv_same` for
kernels of at least `min_kernel` taps (the 17x17 and 11x11 skip convs by
default: the FFT form loses to XLA's for 5x5/7x7 at small maps with many channels).
"""

import contextlib
import functools

import jax
import jax.numpy as jnp

from maskedskip_jax import layers

_DN = ("NHWC", "HWIO", "NHWC")


def weight_grad_fft(x: jax.Array, dy: jax.Array, kh: int, kw: int) -> jax.Array:
  """dW (kh, kw, Ci, Co) of a SAME stride-1 conv of x (B,H,W,Ci) given dY (B,H,W,Co), in float32.

  With FFT size (H+kh-1, W+kw-1) the circular correlation never wraps for the
  kh x kw lags kept, so it equals the linear one.
  """
  _, h, w, _ = x.shape
  size = (h + kh - 1, w + kw - 1)
  xp = jnp.pad(x.astype(jnp.float32), ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  fx = jnp.fft.rfft2(xp, axes=(1, 2))
  fdy = jnp.fft.rfft2(dy.astype(jnp.float32), s=size, axes=(1, 2))
  spectrum = jnp.einsum("nuvc,nuvo->uvco", fx, jnp.conj(fdy))
  return jnp.fft.irfft2(spectrum, s=size, axes=(0, 1))[:kh, :kw]


def _conv(x, kernel):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DN)


@jax.custom_vjp
def conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """SAME, stride-1 NHWC/HWIO conv (odd kernel); its kernel gradient is computed by FFT."""
  return _conv(x, kernel)


def _conv_same_fwd(x, kernel):
  return _conv(x, kernel), (x, kernel)


def _conv_same_bwd(res, dy):
  x, kernel = res
  (dx,) = jax.vjp(lambda x: _conv(x, kernel), x)[1](dy)
  dw = weight_grad_fft(x, dy, kernel.shape[0], kernel.shape[1]).astype(kernel.dtype)
  return dx, dw


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


def _routed_conv(original, min_kernel, lhs, rhs, window_strides, padding, *args, dimension_numbers=None, **kw):
  plain_2d = (rhs.ndim == 4 and tuple(dimension_numbers or ()) == _DN and padding == "SAME"
              and tuple(window_strides) == (1, 1) and not args and not kw)
  if plain_2d and max(rhs.shape[:2]) >= min_kernel and rhs.shape[0] % 2 and rhs.shape[1] % 2:
    return conv_same(lhs, rhs)
  return original(lhs, rhs, window_strides, padding, *args, dimension_numbers=dimension_numbers, **kw)


class _Overlay:
  """A module stand-in: the given attributes, and everything else from `base`."""

  def __init__(self, base, **overrides):
    self._base = base
    self.__dict__.update(overrides)

  def __getattr__(self, name):
    return getattr(self._base, name)


@contextlib.contextmanager
def patched(min_kernel: int = 11):
  """Models traced inside this context take large-kernel weight gradients by FFT.

  Only `layers`' view of `jax.lax.conv_general_dilated` changes, nothing global.
  """
  original = layers.jax
  routed = functools.partial(_routed_conv, jax.lax.conv_general_dilated, min_kernel)
  layers.jax = _Overlay(jax, lax=_Overlay(jax.lax, conv_general_dilated=routed))
  try:
    yield
  finally:
    layers.jax = original
