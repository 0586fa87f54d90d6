"""SSMCTB: the self-supervised masked convolutional transformer block (Madan, Ristea et al., TPAMI 2024).

A masked convolution whose only live taps are four k'xk' corner sub-kernels at distance d from a 1x1 masked
centre (receptive field k = 2k' + 2d + 1, SAME padding k' + d), so every output value is a prediction of the input
value it sits on from context alone; ReLU; then a channel-wise transformer that turns each channel into one token
(global average pooling -> linear projection to `embed_dim` -> + learned position embeddings -> `num_blocks` x
[LayerNorm -> multi-head self-attention -> residual, LayerNorm -> MLP -> residual]), averages every final token
over its embedding to one scalar per channel and rescales the channels by its sigmoid. The output has the input's
shape, and the block is trained to reproduce its input: `weight * mean(Huber_delta(output - input))` (paper
Eq. 7-8; defaults k' = 1, d = 1, delta = 1, embedding 64, 4 heads, 2 blocks from its Sec. 4.3 / Table X). The
seed text lost Eq. 8's lambda (it says only that SSPCAB's value is kept): the stated default is 0.1, SSPCAB's, and
the parts ablation also reports lambda = 1.

3-D (`temporal=D`): the kernel is (D, k, k) and the live taps are the k'xk'xk' corner cubes, i.e. the spatial
corners in the first k' and last k' time slices (paper Fig. 3, 8 sub-kernels). The paper's cube is
D = 2k' + 2d + 1 (`paper_kernel_size`): corners at distance d from the masked centre in time as in space
(`Options.depth='paper'`). Its live taps for a clip's centre frame are d+1..d+k' frames away, so it needs clips of
T >= 2k' + 2d + 1 frames; shorter ones are refused, naming that minimum. `depth='clip'` (D = T, what models built
before issue 19 have) keeps the corners in the clip's first and last k' frames: temporal distance (T-1)/2 - k',
0 for T = 3. `centre_frame=True` computes only the centre frame's output (and its loss against the centre input
frame); the paper reconstructs every frame (`centre_frame=False`).

Placement (`Options.placement`): the paper replaces its host's penultimate convolution (Sec. 4.3; Table VIII's
best is the late decoder placement). Here that is `penultimate`: the last decoder block's 3/5/7 conv layer (the
layer before the network's final 1x1 conv) is the block instead, on the same input; its width becomes the input's.
`latent_skip`, `all_skips` and `decoder` (a block inserted before the last decoder block) are placements the paper
does not test.

Where the published code (github.com/ristea/ssmctb, torch_ssmctb*.py) differs from the paper, we follow the paper:
  * its loss is MSE, `mean((out - in)**2)`, not the Huber loss of Eq. 7;
  * its "transformer" is a single multi-head attention (5 heads x 64) with no LayerNorm, no residuals, no MLP and
    no second block; we run the paper's Eq. 1-2 blocks (MLP hidden 4 x embedding, GELU: the paper leaves it open);
  * its sub-kernels are separate convs with PyTorch's init (fan-in c k'^2); ours is one `layers.Conv` with a
    fixed mask whose init uses the full kernel's fan-in, c k^2 (smaller initial weights; Adam adapts).
Position embeddings start at N(0, 0.02) (ViT) rather than the code's N(0, 1).

The loss leaves the block through `sow` into the 'losses' collection, so a model that contains blocks keeps
returning just its reconstruction:
  y, upd = model.apply(variables, x, train=True, mutable=['batch_stats', 'losses'])
  loss = norm_loss(target, y) + ssmctb.total_ssl_loss(upd)      # lambda is already inside
When 'losses' is not mutable (evaluation) the loss is not even computed. The sown value overwrites rather than
appends, so a 'losses' entry left in `variables` by `model.init` cannot double-count; still drop it from the
train state (`without_losses`). Gradients reach the block's input too, as in the paper and its code
(`stop_target_gradient=True` treats the input as a fixed target instead).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import layers

LOSS_COLLECTION = "losses"
PLACEMENTS = ("none", "latent_skip", "all_skips", "decoder", "penultimate")
DEPTHS = ("paper", "clip")  # the 3-D kernel's depth: 2k' + 2d + 1, or T


def paper_kernel_size(kernel_prime: int, distance: int) -> int:
  """Side of the receptive field, 2k' + 2d + 1 (also the paper's 3-D depth)."""
  return 2 * kernel_prime + 2 * distance + 1


def _check_geometry(kernel_prime: int, distance: int, temporal: int | None) -> None:
  if not isinstance(kernel_prime, (int, np.integer)) or kernel_prime < 1:
    raise UserError(f"model.ssmctb.kernel_prime: expected an integer >= 1, got {kernel_prime!r}")
  if not isinstance(distance, (int, np.integer)) or distance < 0:
    raise UserError(f"model.ssmctb.distance: expected an integer >= 0, got {distance!r}")
  if temporal is not None and (temporal < 2 * kernel_prime + 1 or temporal % 2 == 0):
    raise UserError(
      f"model.ssmctb.temporal: kernel depth must be odd and >= 2k'+1 = {2 * kernel_prime + 1}, got {temporal}"
    )


def ssmctb_mask(kernel_prime: int = 1, distance: int = 1, temporal: int | None = None) -> np.ndarray:
  """1 on the k'xk' corner sub-kernels (corner cubes when 3-D), 0 elsewhere; shape (*kernel, 1, 1).

  `temporal=None` gives the 2-D (k, k) mask; `temporal=D` the (D, k, k) mask whose live time slices are the
  first and last k'. A small numpy constant, so XLA never constant-folds a full-size mask.
  """
  _check_geometry(kernel_prime, distance, temporal)
  k = paper_kernel_size(kernel_prime, distance)
  edge = np.zeros(k, bool)
  edge[:kernel_prime] = edge[k - kernel_prime :] = True
  mask = np.logical_and.outer(edge, edge)
  if temporal is not None:
    t_edge = np.zeros(temporal, bool)
    t_edge[:kernel_prime] = t_edge[temporal - kernel_prime :] = True
    mask = t_edge[:, None, None] & mask[None]
  return mask.astype(np.float32)[..., None, None]


def huber(error: jax.Array, delta: float) -> jax.Array:
  """Elementwise Huber: e^2 / 2 below delta, delta (|e| - delta / 2) from it on (paper Eq. 7)."""
  a = jnp.abs(error)
  return jnp.where(a < delta, 0.5 * error * error, delta * (a - 0.5 * delta))


def ssl_loss(output: jax.Array, target: jax.Array, delta: float = 1.0, weight: float = 0.1) -> jax.Array:
  """weight * mean Huber(output - target), in float32 (bf16 squares of small errors underflow)."""
  diff = output.astype(jnp.float32) - target.astype(jnp.float32)
  return weight * jnp.mean(huber(diff, delta))


def total_ssl_loss(mutated) -> jax.Array:
  """Sum of every sown SSMCTB loss in the collections returned by `apply(..., mutable=[..., 'losses'])`."""
  leaves = jax.tree_util.tree_leaves(dict(mutated).get(LOSS_COLLECTION, {}))
  return sum((jnp.asarray(v, jnp.float32) for v in leaves), jnp.zeros((), jnp.float32))


def without_losses(variables) -> dict:
  """`variables` minus the 'losses' collection `model.init` creates (it is an output, not state)."""
  return {k: v for k, v in dict(variables).items() if k != LOSS_COLLECTION}


class ChannelTransformerGate(nn.Module):
  """Per-channel gates in (0, 1) from a channel-token transformer: (B, *spatial, C) -> (B, C)."""

  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  embed_dim: int = 64
  num_heads: int = 4
  num_blocks: int = 2
  mlp_ratio: int = 4

  @nn.compact
  def __call__(self, y: jax.Array) -> jax.Array:
    c = y.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    # Global average pooling (the paper's best pooled size, 1x1): one 1-number token per channel.
    pooled = jnp.mean(y.astype(jnp.float32), axis=tuple(range(1, y.ndim - 1)))
    z = nn.Dense(self.embed_dim, name="projection", **kw)(pooled[..., None].astype(self.dtype))
    pos = self.param("pos_embedding", nn.initializers.normal(0.02), (c, self.embed_dim), self.param_dtype)
    z = z + pos.astype(self.dtype)
    for i in range(self.num_blocks):
      h = nn.LayerNorm(epsilon=1e-6, name=f"norm_attn_{i}", **kw)(z)
      z = z + nn.MultiHeadDotProductAttention(self.num_heads, name=f"attention_{i}", **kw)(h)
      h = nn.LayerNorm(epsilon=1e-6, name=f"norm_mlp_{i}", **kw)(z)
      h = nn.Dense(self.mlp_ratio * self.embed_dim, name=f"mlp_{i}_hidden", **kw)(h)
      z = z + nn.Dense(self.embed_dim, name=f"mlp_{i}_out", **kw)(nn.gelu(h))
    return nn.sigmoid(jnp.mean(z.astype(jnp.float32), axis=-1))


class SSMCTB(nn.Module):
  """The block. 2-D: (B, H, W, C) -> (B, H, W, C). 3-D (`temporal` = kernel depth D): (B, T, H, W, C) ->
  the same shape, or (B, H, W, C) with `centre_frame=True`. Sows `weight * Huber loss` into 'losses'.
  """

  kernel_prime: int = 1
  distance: int = 1
  centre_frame: bool = False
  delta: float = 1.0
  weight: float = 0.1
  stop_target_gradient: bool = False
  embed_dim: int = 64
  num_heads: int = 4
  num_blocks: int = 2
  temporal: int | None = None  # None: the 2-D block; else the 3-D kernel's depth
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    want = 4 if self.temporal is None else 5
    if x.ndim != want:
      layout = "(B, H, W, C)" if want == 4 else "(B, T, H, W, C)"
      raise UserError(f"model.ssmctb: a {want - 2}-D block expects {layout} input, got shape {x.shape}")
    assert self.delta > 0, self.delta  # config.validate and Options.check checked it
    mask = ssmctb_mask(self.kernel_prime, self.distance, self.temporal)
    k = mask.shape[-3]
    c = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    target = x
    if self.temporal is None:
      conv = layers.Conv(c, (k, k), mask, name="conv", **kw)
    else:
      t = x.shape[1]
      if self.centre_frame:
        target = x[:, (t - 1) // 2]
      # The fast centre-only path folds time into channels, which needs kernel depth == T.
      conv = layers.Conv(
        c,
        (self.temporal, k, k),
        mask,
        centre_frame=self.centre_frame,
        centre_only=self.temporal == t,
        name="conv",
        **kw,
      )
    y = nn.relu(conv(x))
    gate = ChannelTransformerGate(
      embed_dim=self.embed_dim, num_heads=self.num_heads, num_blocks=self.num_blocks, name="transformer", **kw
    )(y)
    gate = gate.reshape(gate.shape[0], *(1,) * (y.ndim - 2), c)
    out = (y * gate.astype(y.dtype)).astype(self.dtype)
    if self.is_mutable_collection(LOSS_COLLECTION):
      if self.stop_target_gradient:
        target = jax.lax.stop_gradient(target)
      loss = ssl_loss(out, target, self.delta, self.weight)
      # Overwrite instead of appending: a value left over from `init` must not be counted again.
      self.sow(LOSS_COLLECTION, "ssl_loss", loss, reduce_fn=lambda _, new: new, init_fn=lambda: 0.0)
    return out


@dataclasses.dataclass(frozen=True)
class Options:
  """Where a model puts SSMCTBs and how they are built; frozen, so it can be a Flax module attribute.

  placement: 'none' | 'latent_skip' (skip 4) | 'all_skips' | 'decoder' (inserted before the last decoder block) |
  'penultimate' (the paper's: instead of the last decoder block's 3/5/7 conv layer, see the module docstring).
  dims: 2 = a 2-D block on the centre frame's skip output; 3 = a 3-D block on the T-frame encoder features before
  the skip conv, with kernel depth `depth` ('paper': 2k' + 2d + 1, needs T >= that; 'clip': T). The decoder only
  has the centre frame, so its placements always get a 2-D block. `depth` defaults to 'clip' here so that bundles
  written before it existed rebuild with their shapes; the config schema's default is 'paper'.
  """

  placement: str = "none"
  dims: int = 2
  kernel_prime: int = 1
  distance: int = 1
  delta: float = 1.0
  weight: float = 0.1
  depth: str = "clip"

  def check(self, temporal: int) -> "Options":
    if self.placement not in PLACEMENTS:
      raise UserError(f"model.ssmctb.placement: expected one of {PLACEMENTS}, got {self.placement!r}")
    if self.dims not in (2, 3):
      raise UserError(f"model.ssmctb.dims: expected 2 or 3, got {self.dims!r}")
    if self.depth not in DEPTHS:
      raise UserError(f"model.ssmctb.depth: expected one of {DEPTHS}, got {self.depth!r}")
    if self.delta <= 0 or self.weight < 0:
      raise UserError(f"model.ssmctb: delta must be > 0 and weight >= 0, got {self.delta}, {self.weight}")
    depth = self.kernel_depth(temporal)
    _check_geometry(self.kernel_prime, self.distance, depth)
    if depth is not None and temporal < depth:
      # SAME padding would put every live temporal tap of the centre frame's output in the zero padding.
      raise UserError(
        f"model.ssmctb.depth: the paper's 3-D block (corner cubes at distance d={self.distance} in time too) needs "
        f"clips of T >= 2k'+2d+1 = {depth} frames, got T={temporal}; raise model.temporal or use depth 'clip'"
      )
    return self

  def kernel_depth(self, temporal: int) -> int | None:
    """The 3-D block's kernel depth for clips of `temporal` frames; None where the block is 2-D."""
    if self.dims != 3 or self.placement not in ("latent_skip", "all_skips"):
      return None
    return paper_kernel_size(self.kernel_prime, self.distance) if self.depth == "paper" else temporal

  def at_skip(self, i: int) -> bool:
    return self.placement == "all_skips" or (self.placement == "latent_skip" and i == 4)

  def at_decoder(self) -> bool:
    return self.placement == "decoder"

  def at_penultimate(self) -> bool:
    return self.placement == "penultimate"

  def block(
    self, name: str | None = None, *, temporal: int | None = None, dtype=jnp.float32, param_dtype=jnp.float32
  ) -> SSMCTB:
    """A block; leave `name` out in `setup`, where the attribute it is assigned to names it."""
    return SSMCTB(
      kernel_prime=self.kernel_prime,
      distance=self.distance,
      temporal=temporal,
      delta=self.delta,
      weight=self.weight,
      dtype=dtype,
      param_dtype=param_dtype,
      name=name,
    )
