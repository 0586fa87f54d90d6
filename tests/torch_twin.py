"""A small PyTorch twin of the reference MaskedSkipUNet family, written from SPEC §1.

It exists only to produce state_dicts with the reference's key names and layouts
(NCHW, weights (out, in, [kT,] kH, kW)) and to give reference outputs that the
importer's Flax result must reproduce. Not part of the package: torch is optional.
"""

import torch
from torch import nn
from torch.nn import functional as F

SKIP_KERNELS = (17, 11, 7, 3)
SKIP_MASKS = (7, 5, 3, 1)

# variant -> (skip kind, which of skips 1..4 carry signal, encoder/decoder convs masked)
_ALL = (True, True, True, True)
VARIANTS = {
  "maskedskip_unet": ("masked3d", _ALL, False),
  "autoencoder": ("none", (False,) * 4, False),
  "unet": ("identity", _ALL, False),
  "conv3d_skip_unet": ("conv3d", _ALL, False),
  "masked2d_skip_unet": ("masked2d", _ALL, False),
  "ed_masks_skip_unet": ("masked3d", _ALL, True),
  "one_mask": ("masked3d", (False, False, False, True), False),
  "two_mask": ("masked3d", (False, False, True, True), False),
  "three_mask": ("masked3d", (False, True, True, True), False),
}


def centre_hole(kernel: int, hole: int, temporal: int | None = None) -> torch.Tensor:
  """Ones with a zero `hole`x`hole` square in the middle (of the centre time slice if 3-D)."""
  lo = (kernel - hole) // 2
  if temporal is None:
    mask = torch.ones(kernel, kernel)
    mask[lo : lo + hole, lo : lo + hole] = 0
  else:
    mask = torch.ones(temporal, kernel, kernel)
    mask[(temporal - 1) // 2, lo : lo + hole, lo : lo + hole] = 0
  return mask


class MaskedConv(nn.Module):
  """Conv whose weight is multiplied by `filter_mask` on every call (keys `conv.*`, `filter_mask`)."""

  def __init__(self, cin, cout, kernel, hole, temporal=None):
    super().__init__()
    size = kernel if temporal is None else (temporal, kernel, kernel)
    conv_cls = nn.Conv2d if temporal is None else nn.Conv3d
    self.conv = conv_cls(cin, cout, size, padding="same")
    self.register_buffer("filter_mask", centre_hole(kernel, hole, temporal))

  def forward(self, x):
    weight = self.conv.weight * self.filter_mask
    fn = F.conv2d if weight.ndim == 4 else F.conv3d
    return fn(x, weight, self.conv.bias, padding="same")


class Block(nn.Module):
  """3/5/7 convs -> BN -> ReLU -> pixel (un)shuffle -> 1x1 -> BN -> ReLU (last: bare 1x1)."""

  def __init__(self, cin, cout, decode=False, last=False, masked=False):
    super().__init__()
    wide = cout * (4 if decode else 1)
    if masked:
      self.convs = nn.ModuleList(MaskedConv(cin, wide, k, k - 2) for k in (3, 5, 7))
    else:
      self.convs = nn.ModuleList(nn.Conv2d(cin, wide, k, padding="same") for k in (3, 5, 7))
    self.batch_norm_1 = nn.BatchNorm2d(3 * wide)
    # Space-to-depth quadruples the 3*wide channels, depth-to-space quarters them.
    self.conv_last = nn.Conv2d((3 if decode else 12) * cout, cout, 1)
    self.batch_norm_2 = nn.BatchNorm2d(cout)
    self.decode, self.last = decode, last

  def forward(self, x):
    x = torch.relu(self.batch_norm_1(torch.cat([conv(x) for conv in self.convs], dim=1)))
    # pixel_unshuffle's output channel is c*4 + dy*2 + dx: the einops order of SPEC §1.
    x = F.pixel_shuffle(x, 2) if self.decode else F.pixel_unshuffle(x, 2)
    x = self.conv_last(x)
    return x if self.last else torch.relu(self.batch_norm_2(x))


class Encoder(nn.Module):
  def __init__(self, channels, widths, masked):
    super().__init__()
    ins = (channels,) + widths[:3]
    for i, (cin, cout) in enumerate(zip(ins, widths), start=1):
      self.add_module(f"conv_{i}", Block(cin, cout, masked=masked))

  def forward(self, x):
    feats = []
    for i in range(1, 5):
      x = getattr(self, f"conv_{i}")(x)
      feats.append(x)
    return feats


class Decoder(nn.Module):
  def __init__(self, channels, widths, with_skips, masked):
    super().__init__()
    l1, l2, l3, l4 = widths
    grow = 2 if with_skips else 1
    plan = ((l4, l3), (grow * l3, l2), (grow * l2, l1), (grow * l1, channels))
    for i, (cin, cout) in enumerate(plan, start=1):
      self.add_module(f"conv_{i}", Block(cin, cout, decode=True, last=(i == 4), masked=masked))
    self.with_skips = with_skips

  def forward(self, bottom, skips):
    y = self.conv_1(bottom)
    for i, skip in zip((2, 3, 4), skips):
      if self.with_skips:
        y = torch.cat([y, skip], dim=1)
      y = getattr(self, f"conv_{i}")(y)
    return torch.sigmoid(y)


class Twin(nn.Module):
  """Input (B, C, T, H, W) (T=1 variants also take (B, C, H, W)); output (B, C, H, W)."""

  def __init__(self, variant, latent_dim=16, channels=3, temporal=3):
    super().__init__()
    kind, active, masked = VARIANTS[variant]
    self.kind, self.active, self.temporal = kind, active, temporal
    widths = (latent_dim // 8, latent_dim // 4, latent_dim // 2, latent_dim)
    self.encoder = Encoder(channels, widths, masked)
    self.decoder = Decoder(channels, widths, kind != "none", masked)
    for i, (c, k, m, on) in enumerate(zip(widths, SKIP_KERNELS, SKIP_MASKS, active), start=1):
      if not on or kind in ("none", "identity"):
        continue
      if kind == "conv3d":
        self.add_module(f"conv{i}", nn.Conv3d(c, c, (temporal, k, k), padding="same"))
      elif kind == "masked3d":
        self.add_module(f"mconv{i}", MaskedConv(c, c, k, m, temporal))
      else:
        self.add_module(f"mconv{i}", MaskedConv(c, c, k, m))

  def _skip(self, i, feat):
    """feat (B, c, T, h, w) -> the centre frame's skip (B, c, h, w)."""
    centre = feat[:, :, (feat.shape[2] - 1) // 2]
    if not self.active[i - 1]:
      return torch.zeros_like(centre)
    if self.kind == "identity":
      return centre
    if self.kind == "masked2d":
      return self.get_submodule(f"mconv{i}")(centre)
    name = "conv" if self.kind == "conv3d" else "mconv"
    return self.get_submodule(f"{name}{i}")(feat)[:, :, (feat.shape[2] - 1) // 2]

  def forward(self, x):
    if x.ndim == 4:
      x = x[:, :, None]
    b, c, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    feats = [f.reshape(b, t, *f.shape[1:]).permute(0, 2, 1, 3, 4) for f in self.encoder(frames)]
    if self.kind == "none":
      return self.decoder(feats[3][:, :, (t - 1) // 2], [None] * 3)
    skips = [self._skip(i, f) for i, f in enumerate(feats, start=1)]
    return self.decoder(skips[3], skips[2::-1])
