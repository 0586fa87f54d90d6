"""How a SAME, stride-1 2-D convolution is lowered: XLA's own conv, or the CPU fast paths.

Same parameters and the same maths either way; only the order of the sums differs.
Two shapes of this network are slow in XLA:CPU's direct convolution (profiled on the
2-core machine; the figures are in BENCHMARKS.md):

* the **weight gradient of the large masked skip kernels** (17x17 and 11x11, run as
  one 2-D conv over T*C channels by the centre-only path). XLA computes it as a conv
  whose "kernel" is the whole H x W output-gradient map contracted over the batch,
  at a small fraction of the machine's peak. As a cross-correlation done with real
  FFTs of size (H+k-1, W+k-1), the contraction over (n, h, w) becomes a product per
  frequency summed over n: far less work, with float32 rounding error only.
  Forward and input gradient stay XLA's, so inference is bit-identical.
* **convs whose small kernel exceeds the map** (the decoder's 5x5 / 7x7 at 4x4): XLA
  swaps the operands into a slow generic loop. Gathering the k*k shifted copies of the
  tiny padded map and doing one matmul is the same sum. Only up to 7x7: gathering the
  copies of a 17x17 kernel makes compilation much slower, so a large kernel over a
  small map keeps XLA's forward and takes the FFT weight gradient.

`lowering`: 'xla' (always XLA's conv), 'cpu' (the two paths above where they apply),
'auto' ('cpu' when tracing for the CPU backend, else 'xla': cuDNN's direct backward
and small-map convs have not been measured to lose on GPU, so nothing changes there).
"""

import jax
import jax.numpy as jnp

LOWERINGS = ("auto", "xla", "cpu")
FFT_MIN_KERNEL = 11  # measured: the FFT weight gradient loses to XLA's for 5x5/7x7 kernels
IM2COL_MAX_TAPS = 49  # im2col only up to 7x7 (compile time grows with the taps gathered)
# Below a 4x4 map or 2048 channel pairs the conv is too small for XLA's slow loop to matter, and each
# im2col costs compile time (BENCHMARKS.md has the measurement).
IM2COL_MIN_SIDE = 4
IM2COL_MIN_CHANNEL_PAIRS = 2048
_DN = ("NHWC", "HWIO", "NHWC")


def resolve(lowering: str) -> str:
  if lowering not in LOWERINGS:
    raise ValueError(f"conv lowering must be one of {LOWERINGS}, got {lowering!r}")
  if lowering == "auto":
    return "cpu" if jax.default_backend() == "cpu" else "xla"
  return lowering


def _xla_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DN)


def weight_grad_fft(x: jax.Array, dy: jax.Array, kh: int, kw: int) -> jax.Array:
  """dW (kh, kw, Ci, Co) of a SAME stride-1 conv of x (B,H,W,Ci) given dY (B,H,W,Co), in float32.

  dW[i,j,c,o] = sum_{n,h,w} xpad[n,h+i,w+j,c] dY[n,h,w,o]. With FFT size
  (H+kh-1, W+kw-1) the circular correlation never wraps for the kh x kw lags kept,
  so it equals the linear one.
  """
  _, h, w, _ = x.shape
  size = (h + kh - 1, w + kw - 1)
  xp = jnp.pad(x.astype(jnp.float32), ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  fx = jnp.fft.rfft2(xp, axes=(1, 2))
  fdy = jnp.fft.rfft2(dy.astype(jnp.float32), s=size, axes=(1, 2))
  spectrum = jnp.einsum("nuvc,nuvo->uvco", fx, jnp.conj(fdy))
  return jnp.fft.irfft2(spectrum, s=size, axes=(0, 1))[:kh, :kw]


@jax.custom_vjp
def conv_fft_weight_grad(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """XLA's SAME conv (odd kernel) whose kernel gradient is computed by FFT."""
  return _xla_conv(x, kernel)


def _fft_fwd(x, kernel):
  return _xla_conv(x, kernel), (x, kernel)


def _fft_bwd(res, dy):
  x, kernel = res
  (dx,) = jax.vjp(lambda x: _xla_conv(x, kernel), x)[1](dy)
  dw = weight_grad_fft(x, dy, kernel.shape[0], kernel.shape[1]).astype(kernel.dtype)
  return dx, dw


conv_fft_weight_grad.defvjp(_fft_fwd, _fft_bwd)


def im2col_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """SAME, stride-1 conv of x (B,H,W,Ci) with kernel (kh,kw,Ci,Co) (odd sizes) as one contraction."""
  kh, kw, ci, co = kernel.shape
  _, h, w, _ = x.shape
  xp = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  cols = jnp.concatenate([xp[:, i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-1)
  return jnp.einsum("bhwk,ko->bhwo", cols, kernel.reshape(kh * kw * ci, co))


def path(x_shape, kernel_shape, lowering: str) -> str:
  """Which form `conv2d_same` uses for these shapes: 'xla', 'fft_weight_grad' or 'im2col'."""
  kh, kw = kernel_shape[:2]
  if resolve(lowering) == "xla" or not (kh % 2 and kw % 2):
    return "xla"
  h, w = x_shape[1], x_shape[2]
  big_enough = min(h, w) >= IM2COL_MIN_SIDE and kernel_shape[2] * kernel_shape[3] >= IM2COL_MIN_CHANNEL_PAIRS
  if (kh > h or kw > w) and kh * kw <= IM2COL_MAX_TAPS and big_enough:
    return "im2col"
  if max(kh, kw) >= FFT_MIN_KERNEL:
    return "fft_weight_grad"
  return "xla"


def conv2d_same(x: jax.Array, kernel: jax.Array, lowering: str = "auto") -> jax.Array:
  """SAME, stride-1 NHWC x HWIO conv, lowered as `lowering` says (see the module docstring)."""
  form = path(x.shape, kernel.shape, lowering)
  if form == "im2col":
    return im2col_conv(x, kernel)
  if form == "fft_weight_grad":
    return conv_fft_weight_grad(x, kernel)
  return _xla_conv(x, kernel)
