"""Seed 003's convolutional autoencoder (Almurumudhe & Hornyak 2025, Sec. 3.1, Table 1), model.variant='cae'.

Table 1, a Keras summary, read layer by layer: 3 x 3 'same' convolutions with ReLU of widths d/4, d/2, d, each
followed by a 2 x 2 max-pool, then a d-wide bottleneck convolution at 1/8 of the input size; the decoder mirrors it
with nearest-neighbour 2x upsampling before 3 x 3 convolutions of widths d/2, d/4 and the output's C channels, the
last with a sigmoid. At d = latent_dim = 128 and one grey channel that is the table's 32 -> 64 -> 128 -> 128 ->
64 -> 32 -> 1 and exactly its parameter count (each row's 9 * c_in * c_out + c_out; no layer has more). Dropout
(the text's rate; the table, which would list Dropout layers with no parameters, lists none, so their place is
not given) follows every hidden convolution's ReLU. Kernels are Glorot-uniform and biases zero, Keras's defaults.

The same interface as `models.MaskedSkipUNet`, so streaming evaluation, export and predict run it unchanged:
`encode` maps frames (N, H, W, C) to their one feature level, the bottleneck; `decode` takes a clip's T frames'
features (B, T, h, w, c) and reconstructs the centre frame from the centre's features alone; `__call__` takes clips
(B, T, H, W, C) and encodes only the centre frame. The network sees single frames; clips are longer (`temporal`,
default 3) because the hybrid loss and score weigh by motion against the neighbouring frames. The architecture
record fields a bundle stores for every model (skip kernels and masks, SSMCTB options, mask head) are empty here.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import ssmctb as ssmctb_lib

VARIANT = "cae"
DOWNSAMPLINGS = 3  # the three max-pools: H and W must be multiples of 2 ** 3


class Cae(nn.Module):
  """Table 1's autoencoder; `latent_dim` is the bottleneck width d (the paper's 128)."""

  variant: str = VARIANT
  latent_dim: int = 128
  channels: int = 1
  temporal: int = 3  # frames per clip; only the centre one is reconstructed, and only from itself
  dropout: float = 0.2
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  skip_kernels: tuple[int, ...] = ()
  skip_masks: tuple[int, ...] = ()
  ssmctb: ssmctb_lib.Options = ssmctb_lib.Options()
  mask_head: bool = False

  @property
  def size_multiple(self) -> int:
    return 2**DOWNSAMPLINGS

  @property
  def widths(self) -> tuple[int, int, int, int]:
    d = self.latent_dim
    return d // 4, d // 2, d, d

  def setup(self):
    kw = dict(
      kernel_size=(3, 3),
      padding="SAME",
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      kernel_init=nn.initializers.glorot_uniform(),
    )
    for i, width in enumerate(self.widths, start=1):
      setattr(self, f"encoder_{i}", nn.Conv(width, **kw))
    for j, width in enumerate((self.widths[1], self.widths[0], self.channels), start=1):
      setattr(self, f"decoder_{j}", nn.Conv(width, **kw))
    self.drop = nn.Dropout(self.dropout)

  def _hidden(self, conv: nn.Conv, x: jax.Array, train: bool) -> jax.Array:
    return self.drop(nn.relu(conv(x)), deterministic=not train)

  def encode(self, frames: jax.Array, train: bool = False) -> tuple[jax.Array]:
    """The bottleneck features (N, H/8, W/8, d) of independent frames (N, H, W, C) in [0, 1], as a 1-tuple."""
    if frames.ndim != 4:
      raise UserError(f"model.encode: expected frames (N, H, W, C), got shape {tuple(frames.shape)}")
    check_input_shape(self, (frames.shape[0], self.temporal, *frames.shape[1:]))
    x = frames.astype(self.dtype)
    for i in range(1, DOWNSAMPLINGS + 1):
      x = nn.max_pool(self._hidden(getattr(self, f"encoder_{i}"), x, train), (2, 2), strides=(2, 2))
    return (self._hidden(self.encoder_4, x, train),)

  def _decode(self, z: jax.Array, train: bool) -> jax.Array:
    for j in range(1, DOWNSAMPLINGS + 1):
      z = jnp.repeat(jnp.repeat(z, 2, axis=1), 2, axis=2)  # Keras UpSampling2D: nearest neighbour
      conv = getattr(self, f"decoder_{j}")
      z = conv(z) if j == DOWNSAMPLINGS else self._hidden(conv, z, train)
    return nn.sigmoid(z.astype(jnp.float32))

  def decode(self, feats, train: bool = False, return_mask: bool = False) -> jax.Array:
    """The centre frame's reconstruction (B, H, W, C) from `encode`'s features of a clip's T frames.

    feats: a 1-tuple of (B, T, h, w, d); only the centre frame's features are used.
    """
    if return_mask:
      raise UserError("model.mask_head: the cae variant has no mask head")
    if len(feats) != 1 or feats[0].ndim != 5 or feats[0].shape[1] != self.temporal:
      raise UserError(
        f"model.decode: expected one feature level shaped (B, T={self.temporal}, h, w, c), "
        f"got shapes {[tuple(f.shape) for f in feats]}"
      )
    return self._decode(feats[0][:, (self.temporal - 1) // 2], train)

  def __call__(self, x: jax.Array, train: bool = False, return_mask: bool = False) -> jax.Array:
    """Clips (B, T, H, W, C) -> the centre frame's reconstruction (B, H, W, C)."""
    check_input_shape(self, x.shape)
    if return_mask:
      raise UserError("model.mask_head: the cae variant has no mask head")
    (z,) = self.encode(x[:, (self.temporal - 1) // 2], train)
    return self._decode(z, train)


def check_input_shape(model: Cae, shape) -> None:
  """Raise UserError unless `shape` is (B, T, H, W, C) this model accepts."""
  if len(shape) != 5:
    raise UserError(f"model input: expected (batch, T, H, W, C), got shape {tuple(shape)}")
  _, t, h, w, c = shape
  m = model.size_multiple
  if t != model.temporal:
    raise UserError(f"model input: expected T={model.temporal} frames per clip, got {t}")
  if h % m or w % m or h == 0 or w == 0:
    raise UserError(f"model input: height and width must be multiples of {m} (three 2x max-pools), got {h}x{w}")
  if c != model.channels:
    raise UserError(f"model input: expected {model.channels} channels, got {c}")


def build(
  latent_dim: int = 128,
  channels: int = 1,
  temporal: int | None = None,
  dtype=jnp.float32,
  param_dtype=jnp.float32,
  *,
  ssmctb=None,
  mask_head: bool = False,
) -> Cae:
  """A checked Cae. `ssmctb` and `mask_head` are there to be refused: `models.build` passes them for any variant."""
  temporal = 3 if temporal is None else temporal
  if temporal < 1 or temporal % 2 == 0:
    raise UserError(f"model.temporal: must be a positive odd number (the target is the centre frame), got {temporal}")
  if latent_dim < 4 or latent_dim % 4:
    raise UserError(
      f"model.latent_dim: the cae's widths are latent/4, /2, /1; expected a multiple of 4, got {latent_dim}"
    )
  if channels not in (1, 3):
    raise UserError(f"model.channels: must be 1 or 3, got {channels}")
  placement = ssmctb.placement if isinstance(ssmctb, ssmctb_lib.Options) else dict(ssmctb or {}).get("placement")
  if placement not in (None, "none") or mask_head:
    raise UserError("model.variant: 'cae' has no SSMCTB blocks or mask head")
  return Cae(latent_dim=latent_dim, channels=channels, temporal=temporal, dtype=dtype, param_dtype=param_dtype)


def init_variables(model: Cae, seed: int, input_shape) -> dict:
  """{'params', 'batch_stats': {}} drawn on the host, deterministic in `seed`: Glorot-uniform kernels, zero biases.

  The distributions `model.init` draws from, without compiling a random draw per parameter.
  """
  check_input_shape(model, input_shape)
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  shapes = jax.eval_shape(lambda v: model.init(jax.random.key(0), v), x)
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4341]))  # 'CA'

  def draw(path, leaf):
    if str(path[-1].key) != "kernel":
      return jnp.zeros(leaf.shape, leaf.dtype)
    receptive = int(np.prod(leaf.shape[:-2]))
    limit = np.sqrt(6.0 / (receptive * (leaf.shape[-2] + leaf.shape[-1])))
    return jnp.asarray(rng.uniform(-limit, limit, leaf.shape), leaf.dtype)

  params = jax.tree_util.tree_map_with_path(draw, dict(shapes["params"]))
  return {"params": params, "batch_stats": {}}
