"""Training-clip augmentation (seed 003, Sec. 2.3 and 3.2: random cropping, horizontal flipping and rotation).

A jax op inside the train step, not a stage of the input pipeline: its randomness is a key split from the state's
rng, which every checkpoint holds, so a resumed run draws exactly what an uninterrupted one draws at each step; it
runs on the accelerator, not on the host cores that decode and batch the frames; and neither data backend needs to
know about it. Evaluation and the held-out loss never see it.

Each clip gets one transform, applied alike to its T frames and, when objects were pasted, to its clean target
and pasted-pixel map, so that frame differences (the motion the hybrid loss weighs by) stay the scene's own:

  crop      a square-aspect window whose sides are a uniform share in [crop, 1] of the frame's, at a uniform
            position inside the frame, resized back to the full frame;
  flip      left-right, with probability 1/2;
  rotation  by a uniform angle in [-degrees, degrees] about the window's centre.

The three are one affine map from output pixels to input coordinates, sampled bilinearly with the frame's edge
pixels replicated beyond it: a rotated window has no black corners for the network to learn to reconstruct.
"""

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Options:
  """crop: the smallest window side, as a share of the frame's; degrees: the largest rotation either way."""

  crop: float = 0.8
  degrees: float = 10.0

  @classmethod
  def from_config(cls, config) -> "Options | None":
    """The config's augmentation, or None when train.augment is off."""
    t = config.train
    return cls(t.augment_crop, t.augment_degrees) if t.augment else None


def _source_coordinates(key: jax.Array, h: int, w: int, options: Options) -> tuple[jax.Array, jax.Array]:
  """(rows, cols), each (H, W): where in the input each output pixel of one clip is sampled."""
  k_scale, k_x, k_y, k_flip, k_angle = jax.random.split(key, 5)
  scale = jax.random.uniform(k_scale, (), minval=options.crop, maxval=1.0)
  # The window's centre, in pixels, anywhere that keeps the (unrotated) window inside the frame.
  cx = (w / 2) + (1 - scale) * w * (jax.random.uniform(k_x, ()) - 0.5)
  cy = (h / 2) + (1 - scale) * h * (jax.random.uniform(k_y, ()) - 0.5)
  flip = jnp.where(jax.random.bernoulli(k_flip), -1.0, 1.0)
  angle = jnp.deg2rad(jax.random.uniform(k_angle, (), minval=-options.degrees, maxval=options.degrees))
  # Output pixel centres relative to the frame's centre, scaled into the window.
  dy, dx = jnp.meshgrid((jnp.arange(h) + 0.5 - h / 2) * scale, (jnp.arange(w) + 0.5 - w / 2) * scale, indexing="ij")
  dx = flip * dx
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  cols = cx + cos * dx - sin * dy - 0.5
  rows = cy + sin * dx + cos * dy - 0.5
  return rows, cols


def _bilinear(image: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """image (..., H, W, C) sampled at (rows, cols) (H', W'), edge pixels replicated: (..., H', W', C)."""
  h, w = image.shape[-3], image.shape[-2]
  r0, c0 = jnp.floor(rows), jnp.floor(cols)
  fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
  r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)

  def at(r, c):
    return image[..., jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1), :]

  top = at(r0, c0) * (1 - fc) + at(r0, c0 + 1) * fc
  bottom = at(r0 + 1, c0) * (1 - fc) + at(r0 + 1, c0 + 1) * fc
  return top * (1 - fr) + bottom * fr


def augment_batch(key: jax.Array, batch: dict[str, jax.Array], options: Options) -> dict[str, jax.Array]:
  """`batch` with its 'clips' (B, T, H, W, C) and, when present, 'target' (B, H, W, C) and 'anomaly_map' (B, H, W)
  transformed, one random transform per clip (row b of every array alike)."""
  clips = batch["clips"]
  b, _, h, w, _ = clips.shape
  rows, cols = jax.vmap(lambda k: _source_coordinates(k, h, w, options))(jax.random.split(key, b))
  warp = jax.vmap(_bilinear)
  out = dict(batch, clips=warp(clips.astype(jnp.float32), rows, cols).astype(clips.dtype))
  if "target" in batch:
    out["target"] = warp(batch["target"][:, None].astype(jnp.float32), rows, cols)[:, 0]
  if "anomaly_map" in batch:
    out["anomaly_map"] = warp(batch["anomaly_map"][:, None, ..., None].astype(jnp.float32), rows, cols)[:, 0, ..., 0]
  return out
