"""MaskedSkipUNet and its ablation family (paper Table 2), selected by name.

Input (B, T, H, W, C) in [0, 1]; output the reconstructed centre frame (B, H, W, C).
The encoder sees each frame as an independent image (frames folded into the batch);
each skip passes through its own conv whose output for the centre frame is all the
decoder sees. With `mask_head` the last decoder block also predicts the map of pasted
pixels (synthetic-anomaly training, issue 9), returned only when asked for.
`build` and `check_input_shape` also serve seed 003's CAE (nn/cae.py, same encode / decode interface).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import cae as cae_lib
from maskedskip_jax.nn import conv_lowering as conv_lowering_lib
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import ssmctb as ssmctb_lib

SKIP_KERNELS = (17, 11, 7, 3)
SKIP_MASKS = (7, 5, 3, 1)


@dataclasses.dataclass(frozen=True)
class VariantSpec:
  skips: str  # 'none' | 'identity' | 'conv3d' | 'masked3d' | 'masked2d'
  active: tuple[bool, ...]  # which of skips 1..4 carry signal (the others are zeros)
  ed_mask: bool = False
  temporal: int = 3  # default T; T=1 variants see single frames


_ALL = (True, True, True, True)
SPECS = {
  "maskedskip_unet": VariantSpec("masked3d", _ALL),
  "autoencoder": VariantSpec("none", (False,) * 4, temporal=1),
  "unet": VariantSpec("identity", _ALL, temporal=1),
  "conv3d_skip_unet": VariantSpec("conv3d", _ALL),
  "masked2d_skip_unet": VariantSpec("masked2d", _ALL, temporal=1),
  "ed_masks_skip_unet": VariantSpec("masked3d", _ALL, ed_mask=True),
  "one_mask": VariantSpec("masked3d", (False, False, False, True)),
  "two_mask": VariantSpec("masked3d", (False, False, True, True)),
  "three_mask": VariantSpec("masked3d", (False, True, True, True)),
}
VARIANTS = tuple(SPECS)


def spec(variant: str) -> VariantSpec:
  if variant not in SPECS:
    raise UserError(f"model.variant: unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
  return SPECS[variant]


def default_temporal(variant: str) -> int:
  return spec(variant).temporal


class MaskedSkipUNet(nn.Module):
  """The whole family; `variant` picks the skip type (see `SPECS`).

  Three entry points share one set of parameters: `encode` (frames -> per-frame features), `decode` (a clip's
  features -> its centre frame) and `__call__` (clips: decode after encode); streaming calls the first two apart
  (`apply(..., method=MaskedSkipUNet.encode)`) to encode each frame once. `setup` declares the submodules under
  the names the single-method model gave them, so parameter paths, checkpoints and bundles are unchanged.
  """

  variant: str = "maskedskip_unet"
  latent_dim: int = 512
  channels: int = 3
  temporal: int = 3
  skip_kernels: tuple[int, ...] = SKIP_KERNELS
  skip_masks: tuple[int, ...] = SKIP_MASKS
  centre_only: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  ssmctb: ssmctb_lib.Options = ssmctb_lib.Options()  # SSMCTB blocks (issue 9); none by default
  conv_lowering: str = "auto"  # conv_lowering.LOWERINGS: how convs are computed, not what
  mask_head: bool = False  # one more output channel: the predicted anomaly map (see __call__)

  @property
  def widths(self) -> tuple[int, int, int, int]:
    d = self.latent_dim
    return d // 8, d // 4, d // 2, d

  def setup(self):
    # Flax names a submodule after the attribute it is assigned to; setattr keeps the numbered names.
    s, t = spec(self.variant), self.temporal
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    block_kw = dict(ed_mask=s.ed_mask, lowering=self.conv_lowering, **kw)
    for i, width in enumerate(self.widths, start=1):
      setattr(self, f"encoder_{i}", layers.ConvBlock(width, **block_kw))
      if not s.active[i - 1]:
        continue
      if self.ssmctb.at_skip(i):  # 3-D: on the T-frame features, before the skip conv; 2-D: on its output
        setattr(self, f"ssmctb_skip{i}", self.ssmctb.block(temporal=self.ssmctb.kernel_depth(t), **kw))
      if s.skips != "identity":
        setattr(self, self._skip_conv_name(i), self._skip_conv(i, width, s))
    if s.skips == "none" and self.ssmctb.at_skip(4):  # no skips: the latent map takes the latent block
      self.ssmctb_skip4 = self.ssmctb.block(**kw)
    if self.ssmctb.at_decoder():  # before the last decoder block
      self.ssmctb_decoder = self.ssmctb.block(**kw)
    if self.ssmctb.at_penultimate():  # instead of the last decoder block's conv layer, which is left out below
      self.ssmctb_penultimate = self.ssmctb.block(**kw)
    for j, width in enumerate((*self.widths[2::-1], self.channels + int(self.mask_head)), start=1):
      replaced = dict(kernels=()) if j == 4 and self.ssmctb.at_penultimate() else {}
      setattr(self, f"decoder_{j}", layers.ConvBlock(width, decode=True, last=j == 4, **replaced, **block_kw))

  def _skip_conv_name(self, i: int) -> str:
    return f"conv{i}" if spec(self.variant).skips == "conv3d" else f"mconv{i}"

  def _skip_conv(self, i: int, width: int, s: VariantSpec) -> layers.Conv:
    k, m, t = self.skip_kernels[i - 1], self.skip_masks[i - 1], self.temporal
    kw = dict(lowering=self.conv_lowering, dtype=self.dtype, param_dtype=self.param_dtype)
    if s.skips == "masked2d":
      return layers.Conv(width, (k, k), layers.centre_square_mask(k, m), **kw)
    mask = None if s.skips == "conv3d" else layers.centre_square_mask(k, m, t)
    return layers.Conv(width, (t, k, k), mask, centre_frame=True, centre_only=self.centre_only, **kw)

  def _skip(self, i: int, x: jax.Array, s: VariantSpec) -> jax.Array:
    """Skip i (1..4): x is (B, T, h, w, c); returns the centre frame's skip (B, h, w, c)."""
    t = x.shape[1]
    centre = x[:, (t - 1) // 2]
    if not s.active[i - 1]:
      return jnp.zeros_like(centre)
    block = getattr(self, f"ssmctb_skip{i}") if self.ssmctb.at_skip(i) else None
    if block is not None and block.temporal is not None:
      x = block(x)
      centre, block = x[:, (t - 1) // 2], None
    out = centre
    if s.skips != "identity":
      conv = getattr(self, self._skip_conv_name(i))
      out = conv(centre if len(conv.kernel_size) == 2 else x)
    return out if block is None else block(out)

  def encode(self, frames: jax.Array, train: bool = False) -> tuple[jax.Array, ...]:
    """Encoder features of independent frames (N, H, W, C) in [0, 1]: levels 1..4, each (N, h_i, w_i, c_i)."""
    if frames.ndim != 4:
      raise UserError(f"model.encode: expected frames (N, H, W, C), got shape {tuple(frames.shape)}")
    check_input_shape(self, (frames.shape[0], self.temporal, *frames.shape[1:]))
    feats = [frames.astype(self.dtype)]
    for i in range(1, len(self.widths) + 1):
      feats.append(getattr(self, f"encoder_{i}")(feats[-1], train))
    return tuple(feats[1:])

  def decode(self, feats, train: bool = False, return_mask: bool = False):
    """The centre frame's reconstruction (B, H, W, C) from the features of a clip's frames.

    feats: levels 1..4, each (B, T, h_i, w_i, c_i): `encode`'s output for the T frames of each clip.
    return_mask: (recon, predicted anomaly map (B, H, W)); the map is the last channel of the same sigmoid
    output, so every consumer that calls the model plainly (scoring, streaming, export) gets C channels unchanged.
    """
    if return_mask and not self.mask_head:
      raise UserError("model.mask_head: return_mask=True needs a model built with mask_head=True")
    if len(feats) != len(self.widths) or any(f.ndim != 5 or f.shape[1] != self.temporal for f in feats):
      raise UserError(
        f"model.decode: expected {len(self.widths)} feature levels shaped (B, T={self.temporal}, "
        f"h, w, c), got shapes {[tuple(f.shape) for f in feats]}"
      )
    s = spec(self.variant)
    skips = [self._skip(i, f, s) for i, f in enumerate(feats, start=1)]
    bottom = feats[3][:, (self.temporal - 1) // 2] if s.skips == "none" else skips[3]  # no skips: the latent map
    if s.skips == "none" and self.ssmctb.at_skip(4):
      bottom = self.ssmctb_skip4(bottom)
    y = self.decoder_1(bottom, train)
    for j, skip in enumerate(skips[2::-1], start=2):
      if j == 4 and self.ssmctb.at_decoder():
        y = self.ssmctb_decoder(y)
      if s.skips != "none":
        y = jnp.concatenate([y, skip], axis=-1)  # the reference's [decoder, skip] order
      if j == 4 and self.ssmctb.at_penultimate():
        y = self.ssmctb_penultimate(y)
      y = getattr(self, f"decoder_{j}")(y, train)
    y = nn.sigmoid(y.astype(jnp.float32))
    recon = y[..., : self.channels]
    return (recon, y[..., self.channels]) if return_mask else recon

  def __call__(self, x: jax.Array, train: bool = False, return_mask: bool = False):
    """Clips (B, T, H, W, C) -> the centre frame's reconstruction (B, H, W, C); see `decode` for `return_mask`.

    The encoder sees each frame as an independent image (frames folded into the batch).
    """
    check_input_shape(self, x.shape)
    b, t = x.shape[:2]
    feats = self.encode(x.reshape(b * t, *x.shape[2:]), train)
    return self.decode(tuple(f.reshape(b, t, *f.shape[1:]) for f in feats), train, return_mask)


def build(
  variant: str = "maskedskip_unet",
  *,
  latent_dim: int = 512,
  channels: int = 3,
  temporal: int | None = None,
  skip_kernels=SKIP_KERNELS,
  skip_masks=SKIP_MASKS,
  centre_only: bool = True,
  dtype=jnp.float32,
  param_dtype=jnp.float32,
  ssmctb=None,
  conv_lowering: str = "auto",
  mask_head: bool = False,
) -> MaskedSkipUNet | cae_lib.Cae:
  """A checked model; `ssmctb` is an ssmctb.Options or its fields as a mapping (None: no blocks).

  `mask_head` adds the predicted anomaly map as an extra output channel (see MaskedSkipUNet.__call__).
  """
  if variant == cae_lib.VARIANT:  # seed 003's CAE: no skips, and its plain convs need no lowering choice
    return cae_lib.build(latent_dim, channels, temporal, dtype, param_dtype, ssmctb=ssmctb, mask_head=mask_head)
  s = spec(variant)
  temporal = s.temporal if temporal is None else temporal
  if s.temporal == 1 and temporal != 1:
    raise UserError(f"model.temporal: variant {variant!r} sees single frames; temporal must be 1, got {temporal}")
  if temporal < 1 or temporal % 2 == 0:
    raise UserError(f"model.temporal: must be a positive odd number (the target is the centre frame), got {temporal}")
  assert latent_dim >= 8 and latent_dim % 8 == 0, latent_dim  # config.validate checked model.latent_dim
  if channels not in (1, 3):
    raise UserError(f"model.channels: must be 1 or 3, got {channels}")
  for k, m in zip(skip_kernels, skip_masks):
    if k % 2 == 0 or m >= k or (k - m) % 2:
      raise UserError(f"model.skip_kernels/skip_masks: kernel {k} and mask {m} must be odd with mask < kernel")
  if conv_lowering not in conv_lowering_lib.LOWERINGS:
    raise UserError(
      f"model.conv_lowering: must be one of {', '.join(conv_lowering_lib.LOWERINGS)}, got {conv_lowering!r}"
    )
  if ssmctb is None:
    ssmctb = ssmctb_lib.Options()
  elif not isinstance(ssmctb, ssmctb_lib.Options):
    unknown = sorted(set(ssmctb) - {f.name for f in dataclasses.fields(ssmctb_lib.Options)})
    if unknown:
      raise UserError(f"model.ssmctb: unknown keys {unknown}")
    ssmctb = ssmctb_lib.Options(**ssmctb)
  width = penultimate_width(variant, latent_dim)
  if ssmctb.placement == "penultimate" and width % 4:
    raise UserError(
      f"model.ssmctb.placement: 'penultimate' gives the last decoder block's conv layer its input's width, "
      f"{width} here, which depth-to-space needs to be a multiple of 4; raise model.latent_dim"
    )
  return MaskedSkipUNet(
    variant,
    latent_dim,
    channels,
    temporal,
    tuple(skip_kernels),
    tuple(skip_masks),
    centre_only,
    dtype,
    param_dtype,
    ssmctb.check(temporal),
    conv_lowering,
    bool(mask_head),
  )


def penultimate_width(variant: str, latent_dim: int) -> int:
  """Channels into the last decoder block's conv layer: decoder 3's output, plus skip 1 unless there are no skips."""
  return latent_dim // 8 * (1 if spec(variant).skips == "none" else 2)


def check_input_shape(model: MaskedSkipUNet | cae_lib.Cae, shape) -> None:
  """Raise UserError unless `shape` is (B, T, H, W, C) this model accepts."""
  if isinstance(model, cae_lib.Cae):
    cae_lib.check_input_shape(model, shape)
    return
  if len(shape) != 5:
    raise UserError(f"model input: expected (batch, T, H, W, C), got shape {tuple(shape)}")
  _, t, h, w, c = shape
  if t != model.temporal:
    raise UserError(f"model input: expected T={model.temporal} frames per clip, got {t}")
  if h % 16 or w % 16 or h == 0 or w == 0:
    raise UserError(f"model input: height and width must be multiples of 16 (four 2x downsamplings), got {h}x{w}")
  if c != model.channels:
    raise UserError(f"model input: expected {model.channels} channels, got {c}")


def masked_kernel_labels(params) -> dict:
  """'masked' for every masked-conv kernel of the network, 'free' for everything else (for optax.multi_transform).

  SSMCTB blocks are not the published network; their masked kernels always learn.
  """

  def label(path, _):
    keys = [getattr(k, "key", None) for k in path]
    ssmctb = any(str(k).startswith("ssmctb_") for k in keys)
    return "masked" if keys[-1] == "masked_kernel" and not ssmctb else "free"

  return jax.tree_util.tree_map_with_path(label, params)


def count_params(params) -> int:
  return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))
