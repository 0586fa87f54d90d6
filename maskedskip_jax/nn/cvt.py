"""CvT blocks (Wu et al., ICCV 2021) as AED-MAE (Ristea et al., CVPR 2024, Sec. 3) uses them.

A block is pre-norm attention plus a pre-norm MLP, each with a residual. Its queries, keys and values come from a
depthwise k x k convolution plus BatchNorm over the token grid (CvT's 'dw_bn' projection) followed by a pointwise
projection; AED-MAE replaces every dense layer inside the block by a pointwise convolution. A pointwise (kernel 1)
convolution over the token sequence is the same affine map per token as a dense layer and XLA compiles both to one
dot, so here it is the paper's layer without the paper's speed argument, which is about PyTorch kernels.

Tokens travel as a sequence (B, 1 + K, D): the [CLS] token first, then K grid tokens. When a masked auto-encoder
has dropped tokens, `index` (B, K) gives each remaining token's raster position in the h x w grid; the depthwise
convolutions scatter the tokens onto that grid with zeros at the dropped positions, so every kernel tap sees its
true spatial neighbour, and nothing of a dropped token reaches the encoder. (The authors' code instead reshapes
the K kept tokens into an h x K/h grid of unrelated neighbours.) `index=None` is the full grid in raster order.
The [CLS] token bypasses the convolutions, as in CvT, and goes through the pointwise layers like any token.

Choices the papers leave open, taken from CvT's and the AED-MAE authors' code: attention logits scaled by
dim^-0.5 (the full width, not the head width), LayerNorm epsilon 1e-6, exact GELU, MLP width `mlp_ratio` x dim
with dropout after the activation, biases on the Q/K/V projections. Parameters are `param_dtype`; compute runs in
`dtype` except the softmax, which is float32 because bf16 logits lose the small differences attention relies on.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

LN_EPS = 1e-6
BN_MOMENTUM = 0.9  # Flax's decay of the running averages: PyTorch's BatchNorm momentum 0.1


def to_grid(tokens: jax.Array, hw: tuple[int, int], index: jax.Array | None) -> jax.Array:
  """(B, K, D) tokens at raster positions `index` (B, K) -> (B, h, w, D), zeros where no token is."""
  b, _, d = tokens.shape
  h, w = hw
  if index is None:
    return tokens.reshape(b, h, w, d)
  grid = jnp.zeros((b, h * w, d), tokens.dtype).at[jnp.arange(b)[:, None], index].set(tokens)
  return grid.reshape(b, h, w, d)


def from_grid(grid: jax.Array, index: jax.Array | None) -> jax.Array:
  """(B, h, w, D) -> the (B, K, D) tokens at raster positions `index` (all of them, in order, for None)."""
  b, h, w, d = grid.shape
  flat = grid.reshape(b, h * w, d)
  return flat if index is None else jnp.take_along_axis(flat, index[..., None], axis=1)


class Pointwise(nn.Module):
  """A kernel-1 convolution over the token sequence (B, L, D_in) -> (B, L, features)."""

  features: int
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Conv(
      self.features, (1,), use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype, name="conv"
    )(x)


class ConvEmbed(nn.Module):
  """Convolutional token embedding: a patch x patch conv with stride patch (non-overlapping tokens), LayerNorm.

  (B, H, W, C) -> (B, H / patch, W / patch, dim).
  """

  dim: int
  patch: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.patch
    x = nn.Conv(
      self.dim, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype, param_dtype=self.param_dtype, name="proj"
    )(x)
    return nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(x)


class DepthwiseProjection(nn.Module):
  """CvT's 'dw_bn' projection: depthwise k x k conv (no bias) on the token grid, then BatchNorm over the tokens.

  The BatchNorm statistics are taken over the tokens that exist (B x K), never over the zeros of dropped ones.
  """

  kernel: int = 3
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array, hw: tuple[int, int], index: jax.Array | None, train: bool) -> jax.Array:
    d = tokens.shape[-1]
    k = self.kernel
    grid = nn.Conv(
      d,
      (k, k),
      padding="SAME",
      feature_group_count=d,
      use_bias=False,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="conv",
    )(to_grid(tokens, hw, index))
    return nn.BatchNorm(
      use_running_average=not train, momentum=BN_MOMENTUM, dtype=self.dtype, param_dtype=self.param_dtype, name="bn"
    )(from_grid(grid, index))


class ConvAttention(nn.Module):
  """Multi-head self-attention with convolutional Q/K/V projections; (B, 1 + K, dim) -> same."""

  dim: int
  heads: int = 4
  kernel: int = 3
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, hw: tuple[int, int], index: jax.Array | None, train: bool) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    b, length, _ = x.shape
    cls, tokens = x[:, :1], x[:, 1:]
    qkv = []
    for name in "qkv":
      t = DepthwiseProjection(self.kernel, name=f"conv_proj_{name}", **kw)(tokens, hw, index, train)
      t = Pointwise(self.dim, name=f"proj_{name}", **kw)(jnp.concatenate([cls, t], axis=1))
      qkv.append(t.reshape(b, length, self.heads, self.dim // self.heads))
    q, k, v = qkv
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * self.dim**-0.5
    attn = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("bhqk,bkhd->bqhd", attn, v).reshape(b, length, self.dim)
    return Pointwise(self.dim, name="proj", **kw)(out)


class PointwiseMlp(nn.Module):
  """Pointwise conv to `hidden`, exact GELU, dropout, pointwise conv back to `dim`."""

  dim: int
  hidden: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.gelu(Pointwise(self.hidden, name="fc1", **kw)(x), approximate=False)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return Pointwise(self.dim, name="fc2", **kw)(x)


class CvtBlock(nn.Module):
  """x + attn(LN(x)), then x + mlp(LN(x)), on (B, 1 + K, dim) token sequences (see the module docstring).

  `train` selects BatchNorm's batch statistics and enables dropout (rng stream 'dropout').
  """

  dim: int
  heads: int = 4
  mlp_ratio: float = 2.0
  kernel: int = 3
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
    self, x: jax.Array, hw: tuple[int, int], index: jax.Array | None = None, train: bool = False
  ) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    y = nn.LayerNorm(epsilon=LN_EPS, name="norm1", **kw)(x)
    x = x + ConvAttention(self.dim, self.heads, self.kernel, name="attn", **kw)(y, hw, index, train)
    y = nn.LayerNorm(epsilon=LN_EPS, name="norm2", **kw)(x)
    hidden = int(self.dim * self.mlp_ratio)
    return x + PointwiseMlp(self.dim, hidden, self.dropout, name="mlp", **kw)(y, train)
