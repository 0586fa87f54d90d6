"""Anomaly scores from reconstructions: per-pixel score maps and patch-max frame scores.

SPEC §2: the score map is the L2 norm over channels of (x - x_hat) divided by sqrt(C), so it lies in [0, 1] for
inputs in [0, 1] whatever C is. A frame's score is the largest mean over 16x16 patches taken on two grids, one
aligned with the frame and one shifted by half a patch on both axes, so an anomaly straddling the aligned grid's
patch borders is still seen at full strength by the shifted grid.

All functions are pure jax, batched over the leading axis and jittable (shapes are static under jit, so the shape
checks below run once at trace time).
"""

import math

import jax
import jax.numpy as jnp

from maskedskip_jax.errors import UserError


def score_maps(target: jax.Array, recon: jax.Array) -> jax.Array:
  """Per-pixel anomaly score ||x - x_hat||_2 over channels / sqrt(C).

  Args:
    target: (B, H, W, C) centre frames, any float dtype.
    recon: (B, H, W, C) reconstructions, same shape.

  Returns:
    (B, H, W) float32. Computed in float32 even for bf16 inputs: squared differences of values in [0, 1] lose most
    of their precision in bf16, and the frame score is a max over small means of them.
  """
  if target.shape != recon.shape:
    raise UserError(f"score_maps: target shape {target.shape} and recon shape {recon.shape} must match")
  if target.ndim != 4:
    raise UserError(f"score_maps: expected (B, H, W, C) arrays, got shape {target.shape}")
  diff = jnp.asarray(target, jnp.float32) - jnp.asarray(recon, jnp.float32)
  channels = target.shape[-1]
  return jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1)) / math.sqrt(channels)


def _patch_means(maps: jax.Array, patch: int, offset: int) -> jax.Array:
  """Means of the full patch x patch tiles of maps[:, offset:, offset:]; (B, nh, nw), possibly empty."""
  b, h, w = maps.shape
  nh, nw = (h - offset) // patch, (w - offset) // patch
  tiles = maps[:, offset : offset + nh * patch, offset : offset + nw * patch]
  tiles = tiles.reshape(b, nh, patch, nw, patch)
  return tiles.mean(axis=(2, 4))


def frame_scores(maps: jax.Array, patch: int = 16) -> jax.Array:
  """Frame score = max over patch means on the aligned grid and the grid offset by patch // 2.

  Only full patches count: the offset grid drops its partial last row/column of patches (for H = W = 256 and
  patch 16 that is 16x16 aligned patches plus 15x15 offset ones).

  Args:
    maps: (B, H, W) score maps (from `score_maps`).
    patch: patch side in pixels; H and W must be at least this.

  Returns:
    (B,) float32 frame scores.
  """
  if maps.ndim != 3:
    raise UserError(f"frame_scores: expected (B, H, W) score maps, got shape {maps.shape}")
  if patch < 1:
    raise UserError(f"frame_scores: patch must be a positive integer, got {patch}")
  _, h, w = maps.shape
  if h < patch or w < patch:
    raise UserError(f"frame_scores: score maps {h}x{w} are smaller than the {patch}x{patch} patch")
  maps = jnp.asarray(maps, jnp.float32)
  best = _patch_means(maps, patch, 0).max(axis=(1, 2))
  offset = patch // 2
  # With patch 1 the offset grid is the aligned one, and a map narrower than patch + offset has no offset patch.
  if offset > 0 and h - offset >= patch and w - offset >= patch:
    best = jnp.maximum(best, _patch_means(maps, patch, offset).max(axis=(1, 2)))
  return best


def pixel_maps_to_size(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinearly resizes (B, H, W) score maps to (B, H0, W0), the original frame size, for pixel-level metrics."""
  if maps.ndim != 3:
    raise UserError(f"pixel_maps_to_size: expected (B, H, W) score maps, got shape {maps.shape}")
  h0, w0 = (int(s) for s in size)
  if h0 < 1 or w0 < 1:
    raise UserError(f"pixel_maps_to_size: size must be two positive integers (H0, W0), got {size}")
  maps = jnp.asarray(maps, jnp.float32)
  return jax.image.resize(maps, (maps.shape[0], h0, w0), method="bilinear")
