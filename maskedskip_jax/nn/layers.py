"""Building blocks of MaskedSkipUNet: masked convolutions, space<->depth, ConvBlock.

Everything is NHWC (or NTHWC for 3-D convs). Kernel layouts follow Flax/XLA
(`(*spatial, in, out)`), so a PyTorch kernel `(out, in, *spatial)` maps by a
transpose (see `convert_torch.py`).
"""

from collections.abc import Sequence
import contextlib
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.nn import conv_lowering

Dtype = jnp.dtype


def centre_square_mask(kernel_size: int, mask_size: int, temporal: int | None = None) -> np.ndarray:
  """1 everywhere except a centred `mask_size` square (in the centre time slice when 3-D).

  Returned with two trailing singleton axes so it broadcasts over (in, out) channels:
  a small numpy constant, never a full-size array (XLA would constant-fold it slowly).
  """
  if mask_size > kernel_size or (kernel_size - mask_size) % 2:
    raise ValueError(f"mask {mask_size} must be <= kernel {kernel_size} with the same parity")
  lo = (kernel_size - mask_size) // 2
  hi = lo + mask_size
  if temporal is None:
    mask = np.ones((kernel_size, kernel_size), np.float32)
    mask[lo:hi, lo:hi] = 0
  else:
    mask = np.ones((temporal, kernel_size, kernel_size), np.float32)
    mask[(temporal - 1) // 2, lo:hi, lo:hi] = 0
  return mask[..., None, None]


def torch_uniform_init(fan_in: int):
  """PyTorch's default conv init for weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  Matching it keeps the reference's Adam lr 1e-2 recipe meaningful.
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Conv(nn.Module):
  """A SAME-padded 2-D or 3-D convolution whose kernel is multiplied by a fixed mask.

  With `mask=None` it is a plain convolution (param `kernel`). With a mask the param
  is called `masked_kernel`: the name lets the optimiser find masked kernels
  (`models.masked_kernel_labels`) without the model knowing about optimisers. The
  `mask` attribute is the one source of the mask (`kernel_masks` reads it).
  Multiplying inside `apply` makes masked taps contribute nothing and receive exactly
  zero gradient, so they stay at zero under any optimiser update.

  `centre_frame=True` (3-D kernels only) returns just the centre frame of the SAME
  3-D conv over (T, H, W), input (B,T,H,W,C) -> (B,H,W,Co). `centre_only=True`
  computes it as one 2-D conv over the T frames stacked on channels (kernel
  (T,k,k,Ci,Co) -> (k,k,T*Ci,Co)): the same maths, T times fewer FLOPs, and XLA's
  2-D path is much faster than its 3-D one. With a T-tap kernel and SAME padding
  the centre output sees every input frame, so nothing is lost. `centre_only=False`
  runs the full 3-D conv and slices (kept to test the fast path against).
  `lowering` picks how 2-D convs are computed (`conv_lowering`: same maths).
  """

  features: int
  kernel_size: Sequence[int]
  mask: np.ndarray | None = None
  centre_frame: bool = False
  centre_only: bool = True
  lowering: str = "auto"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    nd = len(self.kernel_size)
    cin = x.shape[-1]
    fan_in = cin * int(np.prod(self.kernel_size))
    init = torch_uniform_init(fan_in)
    name = "kernel"
    if self.mask is not None:
      name, mask, base = "masked_kernel", self.mask, init
      init = lambda key, shape, dtype=jnp.float32: base(key, shape, dtype) * mask.astype(dtype)
    kernel = self.param(name, init, (*self.kernel_size, cin, self.features), self.param_dtype)
    bias = self.param("bias", torch_uniform_init(fan_in), (self.features,), self.param_dtype)
    if self.mask is not None:
      kernel = kernel * self.mask.astype(kernel.dtype)
    kernel, bias = kernel.astype(self.dtype), bias.astype(self.dtype)
    x = x.astype(self.dtype)
    if self.centre_frame and self.centre_only:
      b, t, h, w, c = x.shape
      k = self.kernel_size
      kernel = jnp.transpose(kernel, (1, 2, 0, 3, 4)).reshape(k[1], k[2], t * c, self.features)
      x = jnp.transpose(x, (0, 2, 3, 1, 4)).reshape(b, h, w, t * c)
      nd = 2
    if nd == 2:
      y = conv_lowering.conv2d_same(x, kernel, self.lowering)
    else:
      y = jax.lax.conv_general_dilated(x, kernel, (1,) * 3, "SAME", dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    if self.centre_frame and not self.centre_only:
      y = y[:, (y.shape[1] - 1) // 2]
    return y + bias


@contextlib.contextmanager
def kernel_masks():
  """Collects {module path: mask} of every masked `Conv` called inside; wrap a `model.init`, even an abstract one
  (`jax.eval_shape`), to learn from the modules themselves which kernels are masked and how.

  Only code that runs is seen: wrap a fresh function, not a jitted one whose trace may be cached.
  """
  masks = {}

  def record(call, args, kwargs, context):
    module = context.module
    if context.method_name == "__call__" and isinstance(module, Conv) and module.mask is not None:
      masks[module.path] = module.mask
    return call(*args, **kwargs)

  with nn.intercept_methods(record):
    yield masks


def space_to_depth(x: jax.Array) -> jax.Array:
  """(B,H,W,C) -> (B,H/2,W/2,4C) with channel = c*4 + p1*2 + p2 (the reference's einops order)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c)
  x = jnp.transpose(x, (0, 1, 3, 5, 2, 4))
  return x.reshape(b, h // 2, w // 2, c * 4)


def depth_to_space(x: jax.Array) -> jax.Array:
  """Inverse of `space_to_depth`: (B,H,W,4C) -> (B,2H,2W,C)."""
  b, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(b, h, w, c, 2, 2)
  x = jnp.transpose(x, (0, 1, 4, 2, 5, 3))
  return x.reshape(b, h * 2, w * 2, c)


def batch_norm(train: bool, dtype: Dtype, param_dtype: Dtype, name: str) -> nn.BatchNorm:
  # PyTorch defaults: eps 1e-5, running average momentum 0.1 (Flax keeps 0.9 of the old value).
  return nn.BatchNorm(
    use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, param_dtype=param_dtype, name=name
  )


class ConvBlock(nn.Module):
  """One encoder/decoder stage (SPEC §1): 3/5/7 convs -> BN -> ReLU -> space<->depth -> 1x1 -> BN -> ReLU.

  `last=True` ends with the bare 1x1 output (the model applies the sigmoid). The
  reference still owns a second BatchNorm there that it never applies; we create
  its variables at init only, so parameter counts and imported checkpoints match,
  while `apply` never computes it.
  `ed_mask=True` masks the centre (k-2)x(k-2) of each 3/5/7 kernel (the
  `ed_masks_skip_unet` ablation). `kernels=()` leaves the conv layer out: the
  caller has computed what replaces it (SSMCTB's `penultimate` placement).
  """

  features: int
  decode: bool = False
  last: bool = False
  ed_mask: bool = False
  kernels: tuple[int, ...] = (3, 5, 7)
  lowering: str = "auto"
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    width = self.features * (4 if self.decode else 1)
    kw = dict(lowering=self.lowering, dtype=self.dtype, param_dtype=self.param_dtype)
    ys = []
    for i, k in enumerate(self.kernels):
      mask = centre_square_mask(k, k - 2) if self.ed_mask else None
      ys.append(Conv(width, (k, k), mask, name=f"convs_{i}", **kw)(x))
    y = jnp.concatenate(ys, axis=-1) if ys else x
    y = nn.relu(batch_norm(train, self.dtype, self.param_dtype, "batch_norm_1")(y))
    y = depth_to_space(y) if self.decode else space_to_depth(y)
    y = Conv(self.features, (1, 1), name="conv_last", **kw)(y)
    bn2 = batch_norm(train, self.dtype, self.param_dtype, "batch_norm_2")
    if not self.last:
      return nn.relu(bn2(y))
    if self.is_initializing():
      bn2(y)
    return y
