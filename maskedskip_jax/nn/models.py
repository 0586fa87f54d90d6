"""MaskedSkipUNet and its ablation family (paper Table 2), selected by name.

Input (B, T, H, W, C) in [0, 1]; output the reconstructed centre frame (B, H, W, C).
The encoder sees each frame as an independent image (frames folded into the batch);
each skip passes through its own conv whose output for the centre frame is all the
decoder sees. With `mask_head` the last decoder block also predicts the map of pasted
pixels (synthetic-anomaly training, issue 9), returned only when asked for.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.nn import conv_lowering as conv_lowering_lib
from maskedskip_jax.nn import layers
from maskedskip_jax.nn import ssmctb as ssmctb_lib
from maskedskip_jax.errors import UserError

SKIP_KERNELS = (17, 11, 7, 3)
SKIP_MASKS = (7, 5, 3, 1)


@dataclasses.dataclass(frozen=True)
class VariantSpec:
  skips: str               # 'none' | 'identity' | 'conv3d' | 'masked3d' | 'masked2d'
  active: tuple[bool, ...]  # which of skips 1..4 carry signal (the others are zeros)
  ed_mask: bool = False
  temporal: int = 3        # default T; T=1 variants see single frames


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
  """The whole family; `variant` picks the skip type (see `SPECS`)."""
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

  def _skip(self, i: int, x: jax.Array) -> jax.Array:
    """Skip i (1..4): x is (B, T, h, w, c); returns the centre frame's skip (B, h, w, c)."""
    s = spec(self.variant)
    t = x.shape[1]
    centre = x[:, (t - 1) // 2]
    if not s.active[i - 1]:
      return jnp.zeros_like(centre)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    block = self.ssmctb.at_skip(i)
    if block and self.ssmctb.dims == 3 and t > 1:  # on the T-frame features, before the skip conv
      x = self.ssmctb.block(f"ssmctb_skip{i}", temporal=t, **kw)(x)
      centre, block = x[:, (t - 1) // 2], False
    out = self._skip_conv(i, x, centre, s)
    return self.ssmctb.block(f"ssmctb_skip{i}", **kw)(out) if block else out

  def _skip_conv(self, i: int, x: jax.Array, centre: jax.Array, s: VariantSpec) -> jax.Array:
    t = x.shape[1]
    if s.skips == "identity":
      return centre
    c, k, m = x.shape[-1], self.skip_kernels[i - 1], self.skip_masks[i - 1]
    kw = dict(lowering=self.conv_lowering, dtype=self.dtype, param_dtype=self.param_dtype)
    if s.skips == "masked2d":
      return layers.Conv(c, (k, k), layers.centre_square_mask(k, m), name=f"mconv{i}", **kw)(centre)
    if s.skips == "conv3d":
      mask, name = None, f"conv{i}"
    else:
      mask, name = layers.centre_square_mask(k, m, t), f"mconv{i}"
    return layers.Conv(c, (t, k, k), mask, centre_frame=True, centre_only=self.centre_only,
                       name=name, **kw)(x)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False, return_mask: bool = False):
    """The centre frame's reconstruction (B, H, W, C); with `return_mask`, (recon, mask (B, H, W)).

    The mask is the last channel of the same sigmoid output: every consumer that
    calls the model plainly (scoring, streaming, export) gets C channels unchanged.
    """
    if return_mask and not self.mask_head:
      raise UserError("model.mask_head: return_mask=True needs a model built with mask_head=True")
    check_input_shape(self, x.shape)
    s = spec(self.variant)
    b, t, h, w, c = x.shape
    kw = dict(ed_mask=s.ed_mask, lowering=self.conv_lowering, dtype=self.dtype, param_dtype=self.param_dtype)
    y = x.reshape(b * t, h, w, c).astype(self.dtype)
    feats = []
    for i, width in enumerate(self.widths, start=1):
      y = layers.ConvBlock(width, name=f"encoder_{i}", **kw)(y, train)
      feats.append(y.reshape(b, t, *y.shape[1:]))
    skips = [self._skip(i, f) for i, f in enumerate(feats, start=1)]

    l1, l2, l3, _ = self.widths
    # Without skips the latent map itself feeds the decoder.
    bottom = feats[3][:, (t - 1) // 2] if s.skips == "none" else skips[3]
    if s.skips == "none" and self.ssmctb.at_skip(4):  # no skips: the latent map takes the latent block
      bottom = self.ssmctb.block("ssmctb_skip4", dtype=self.dtype, param_dtype=self.param_dtype)(bottom)
    y = layers.ConvBlock(l3, decode=True, name="decoder_1", **kw)(bottom, train)
    outs = (l2, l1, self.channels + int(self.mask_head))
    for j, (width, skip) in enumerate(zip(outs, skips[2::-1]), start=2):
      if j == 4 and self.ssmctb.at_decoder():  # before the last decoder block
        y = self.ssmctb.block("ssmctb_decoder", dtype=self.dtype, param_dtype=self.param_dtype)(y)
      if s.skips != "none":
        y = jnp.concatenate([y, skip], axis=-1)  # the reference's [decoder, skip] order
      y = layers.ConvBlock(width, decode=True, last=(j == 4), name=f"decoder_{j}", **kw)(y, train)
    y = nn.sigmoid(y.astype(jnp.float32))
    recon = y[..., :self.channels]
    return (recon, y[..., self.channels]) if return_mask else recon


def build(variant: str = "maskedskip_unet", *, latent_dim: int = 512, channels: int = 3,
          temporal: int | None = None, skip_kernels=SKIP_KERNELS, skip_masks=SKIP_MASKS,
          centre_only: bool = True, dtype=jnp.float32, param_dtype=jnp.float32,
          ssmctb=None, conv_lowering: str = "auto", mask_head: bool = False) -> MaskedSkipUNet:
  """A checked model; `ssmctb` is an ssmctb.Options or its fields as a mapping (None: no blocks).

  `mask_head` adds the predicted anomaly map as an extra output channel (see MaskedSkipUNet.__call__).
  """
  s = spec(variant)
  temporal = s.temporal if temporal is None else temporal
  if s.temporal == 1 and temporal != 1:
    raise UserError(f"model.temporal: variant {variant!r} sees single frames; temporal must be 1, got {temporal}")
  if temporal < 1 or temporal % 2 == 0:
    raise UserError(f"model.temporal: must be a positive odd number (the target is the centre frame), got {temporal}")
  if latent_dim < 8 or latent_dim % 8:
    raise UserError(f"model.latent_dim: must be a positive multiple of 8, got {latent_dim}")
  if channels not in (1, 3):
    raise UserError(f"model.channels: must be 1 or 3, got {channels}")
  for k, m in zip(skip_kernels, skip_masks):
    if k % 2 == 0 or m >= k or (k - m) % 2:
      raise UserError(f"model.skip_kernels/skip_masks: kernel {k} and mask {m} must be odd with mask < kernel")
  if conv_lowering not in conv_lowering_lib.LOWERINGS:
    raise UserError(f"model.conv_lowering: must be one of {', '.join(conv_lowering_lib.LOWERINGS)}, "
                    f"got {conv_lowering!r}")
  if ssmctb is None:
    ssmctb = ssmctb_lib.Options()
  elif not isinstance(ssmctb, ssmctb_lib.Options):
    unknown = sorted(set(ssmctb) - {f.name for f in dataclasses.fields(ssmctb_lib.Options)})
    if unknown:
      raise UserError(f"model.ssmctb: unknown keys {unknown}")
    ssmctb = ssmctb_lib.Options(**ssmctb)
  return MaskedSkipUNet(variant, latent_dim, channels, temporal, tuple(skip_kernels),
                        tuple(skip_masks), centre_only, dtype, param_dtype, ssmctb.check(temporal),
                        conv_lowering, bool(mask_head))


def check_input_shape(model: MaskedSkipUNet, shape) -> None:
  """Raise UserError unless `shape` is (B, T, H, W, C) this model accepts."""
  if len(shape) != 5:
    raise UserError(f"model input: expected (batch, T, H, W, C), got shape {tuple(shape)}")
  _, t, h, w, c = shape
  if t != model.temporal:
    raise UserError(f"model input: expected T={model.temporal} frames per clip, got {t}")
  if h % 16 or w % 16 or h == 0 or w == 0:
    raise UserError(f"model input: height and width must be multiples of 16 (four 2x downsamplings), "
                    f"got {h}x{w}")
  if c != model.channels:
    raise UserError(f"model input: expected {model.channels} channels, got {c}")


def _kernel_mask(model: MaskedSkipUNet, path: tuple[str, ...]) -> np.ndarray | None:
  """The mask of the masked kernel at `path` (module names as built in `__call__`)."""
  s = spec(model.variant)
  top = path[0]
  if top.startswith("mconv"):
    i = int(top[len("mconv"):]) - 1
    k, m = model.skip_kernels[i], model.skip_masks[i]
    return layers.centre_square_mask(k, m, None if s.skips == "masked2d" else model.temporal)
  k = (3, 5, 7)[int(path[1].split("_")[-1])]  # encoder_i/convs_j under ed masks
  return layers.centre_square_mask(k, k - 2)


def init_variables(model: MaskedSkipUNet, seed: int, input_shape) -> dict:
  """Variables drawn on the host with numpy, with exactly `model.init`'s distributions.

  `model.init` compiles one threefry draw per parameter into XLA, which takes a minute
  or more on CPU; shapes come from `jax.eval_shape` instead (no compile), and the
  values from a seeded numpy generator: PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  for conv kernels and biases, masked taps zeroed, BatchNorm scale 1 / bias 0 /
  mean 0 / var 1. Deterministic in `seed`.
  """
  check_input_shape(model, input_shape)
  if model.ssmctb.placement != "none":
    # Transformer layers have their own initialisers; such models are opt-in, so they pay the compile.
    x = jnp.zeros(tuple(input_shape), jnp.float32)
    return ssmctb_lib.without_losses(jax.jit(lambda: model.init(jax.random.key(seed), x, train=False))())
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32))
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4D53]))  # 'MS'

  def conv_params(path, leaves):
    kernel_name = "masked_kernel" if "masked_kernel" in leaves else "kernel"
    kshape = leaves[kernel_name].shape
    bound = 1.0 / np.sqrt(np.prod(kshape[:-1]))
    kernel = rng.uniform(-bound, bound, kshape).astype(np.float32)
    if kernel_name == "masked_kernel":
      kernel *= _kernel_mask(model, path)
    bias = rng.uniform(-bound, bound, leaves["bias"].shape).astype(np.float32)
    return {kernel_name: kernel, "bias": bias}

  def fill(tree, path, collection):
    if any(k in tree for k in ("kernel", "masked_kernel", "scale", "mean")):
      if collection == "batch_stats":
        return {"mean": np.zeros(tree["mean"].shape, np.float32), "var": np.ones(tree["var"].shape, np.float32)}
      if "scale" in tree:
        return {"scale": np.ones(tree["scale"].shape, np.float32), "bias": np.zeros(tree["bias"].shape, np.float32)}
      return conv_params(path, tree)
    return {k: fill(v, path + (k,), collection) for k, v in sorted(tree.items())}

  out = {name: fill(tree, (), name) for name, tree in sorted(shapes.items())}
  dtypes = jax.tree_util.tree_map(lambda s: s.dtype, shapes)
  return jax.tree_util.tree_map(lambda a, d: jnp.asarray(a, d), out, dtypes)


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
