"""Motion gradients: per-pixel / per-patch loss weights, a motion frame score and the hybrid score.

The motion map of a clip's centre frame is the absolute difference between it and its neighbouring frames
(the mean of |x_c - x_{c-1}| and |x_{c+1} - x_c|), optionally after a median filter of every frame (AED-MAE,
Ristea et al. CVPR 2024, Sec. 3: 3x3 median on the frames, then consecutive-frame differences). A T = 1 clip has
no motion, so its weights are uniform and its motion score is 0.

Loss weights (`motion_weights`) follow AED-MAE Eq. 1-2: per patch, the max of the gradient per channel, averaged
over channels; with `patch=None` per pixel, averaged over channels. AED-MAE divides by the frame's sum (weights
sum to 1 and the loss is averaged over tokens); we divide by the frame's mean instead, so the weights average 1
and the weighted loss is on the same scale as the unweighted `losses.norm_loss` (the paper's weights are ours
divided by the number of tokens). A pasted-anomaly map (`anomaly_maps`) is added to the gradient before pooling,
as AED-MAE does for its synthetic anomalies, so a pasted object that barely moves still gets weight.

The hybrid frame score is `alpha * reconstruction + beta * motion` (Almurumudhe & Hornyak 2025, Sec. 3.3). The
motion score uses the raw motion map (values in [0, 1]), not the normalised weights, which average 1 in every
frame and so carry no frame-level information; its frame score is the same patch-max as `scoring.frame_scores`.

Everything is pure jax and jittable; shapes are static, so the checks run once at trace time.
"""

import jax
import jax.numpy as jnp

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import scoring

MEDIAN_SIZES = (0, 3, 5)


def _check_clips(clips: jax.Array, name: str) -> None:
  if clips.ndim != 5:
    raise UserError(f"{name}: expected clips (B, T, H, W, C), got shape {clips.shape}")


def median_filter(frames: jax.Array, size: int) -> jax.Array:
  """size x size median over (H, W) of (..., H, W, C), edges replicated.

  Stacks the size^2 shifted copies and sorts them: memory is size^2 times the input (25x for 5x5), fine for
  training batches on an accelerator; XLA fuses none of it, so prefer 3x3.
  """
  assert size in MEDIAN_SIZES[1:], size  # config.validate checked the motion_median keys
  r = size // 2
  lead = frames.ndim - 3
  padded = jnp.pad(frames, [(0, 0)] * lead + [(r, r), (r, r), (0, 0)], mode="edge")
  h, w = frames.shape[-3], frames.shape[-2]
  shifts = [padded[..., i : i + h, j : j + w, :] for i in range(size) for j in range(size)]
  return jnp.sort(jnp.stack(shifts), axis=0)[len(shifts) // 2]


def motion_gradient(clips: jax.Array, median: int = 0) -> jax.Array:
  """(B, T, H, W, C) -> (B, H, W, C): mean absolute difference of the centre frame and its neighbours."""
  _check_clips(clips, "motion_gradient")
  assert median in MEDIAN_SIZES, median
  t = clips.shape[1]
  c = (t - 1) // 2
  clips = jnp.asarray(clips, jnp.float32)
  if t == 1:
    return jnp.zeros_like(clips[:, 0])
  if median:
    clips = median_filter(clips, median)
  neighbours = [n for n in (c - 1, c + 1) if 0 <= n < t]
  diffs = [jnp.abs(clips[:, c] - clips[:, n]) for n in neighbours]
  return sum(diffs) / len(diffs)


def motion_map(clips: jax.Array, median: int = 0) -> jax.Array:
  """(B, T, H, W, C) -> (B, H, W) raw motion magnitude (channel mean), in [0, 1] for clips in [0, 1]."""
  return jnp.mean(motion_gradient(clips, median), axis=-1)


def _patch_max(g: jax.Array, patch: int) -> jax.Array:
  """(B, H, W, C) -> (B, H, W): per-channel max over patch x patch tiles, channel mean, spread back to pixels."""
  b, h, w, c = g.shape
  if patch < 1 or h % patch or w % patch:
    raise UserError(f"motion.patch: must be a positive divisor of the frame size {h}x{w}, got {patch}")
  tiles = g.reshape(b, h // patch, patch, w // patch, patch, c).max(axis=(2, 4)).mean(axis=-1)
  return jnp.repeat(jnp.repeat(tiles, patch, axis=1), patch, axis=2)


def motion_weights(
  clips: jax.Array,
  *,
  median: int = 0,
  patch: int | None = None,
  anomaly_maps: jax.Array | None = None,
  uniform_mix: float = 0.0,
  eps: float = 1e-6,
) -> jax.Array:
  """Per-pixel loss weights (B, H, W) for the centre frames, each frame's weights averaging 1.

  Args:
    clips: (B, T, H, W, C) input clips.
    median: 0 (off), 3 or 5: median-filter every frame before differencing (AED-MAE uses 3).
    patch: None for per-pixel weights, else the side of the square patches they are pooled over.
    anomaly_maps: optional (B, H, W) pasted-anomaly maps in [0, 1], added to the gradient (AED-MAE).
    uniform_mix: fraction of uniform weight mixed in, keeping the mean at 1; 0 is the paper's pure motion
      weighting, where static background gets no weight at all.
    eps: added to the map and its mean, so a static frame gets uniform weights instead of 0 / 0.
  """
  g = motion_gradient(clips, median)
  if anomaly_maps is not None:
    if anomaly_maps.shape != g.shape[:3]:
      raise UserError(f"motion_weights: anomaly_maps must be {g.shape[:3]}, got {anomaly_maps.shape}")
    g = g + jnp.asarray(anomaly_maps, jnp.float32)[..., None]
  assert 0.0 <= uniform_mix <= 1.0, uniform_mix  # config.validate checked train.motion_uniform_mix
  m = jnp.mean(g, axis=-1) if patch is None else _patch_max(g, patch)
  w = (m + eps) / (jnp.mean(m, axis=(1, 2), keepdims=True) + eps)
  return uniform_mix + (1.0 - uniform_mix) * w


def motion_weighted_norm_loss(target: jax.Array, recon: jax.Array, weights: jax.Array) -> jax.Array:
  """`losses.norm_loss` with per-pixel weights (B, H, W): mean of w * ||x - x_hat||_2 over channels.

  With weights that average 1 per frame (`motion_weights`), all-ones weights give exactly `norm_loss`.
  """
  if target.shape != recon.shape or weights.shape != target.shape[:3]:
    raise UserError(
      f"motion_weighted_norm_loss: target {target.shape}, recon {recon.shape} and weights "
      f"{weights.shape} must be (B, H, W, C), (B, H, W, C) and (B, H, W)"
    )
  diff = target.astype(jnp.float32) - recon.astype(jnp.float32)
  norm = jnp.sqrt(jnp.sum(diff * diff, axis=-1) + 1e-12)
  return jnp.mean(jax.lax.stop_gradient(weights.astype(jnp.float32)) * norm)


def motion_frame_scores(clips: jax.Array, median: int = 0, patch: int = 16) -> jax.Array:
  """(B,) patch-max (aligned + half-offset grids, as `scoring.frame_scores`) of the raw motion map."""
  return scoring.frame_scores(motion_map(clips, median), patch)


def hybrid_frame_score(
  recon_scores: jax.Array, motion_scores: jax.Array, alpha: float = 1.0, beta: float = 0.0
) -> jax.Array:
  """alpha * reconstruction score + beta * motion score, per frame (any matching shapes)."""
  if jnp.shape(recon_scores) != jnp.shape(motion_scores):
    raise UserError(
      f"hybrid_frame_score: recon scores {jnp.shape(recon_scores)} and motion scores "
      f"{jnp.shape(motion_scores)} must have the same shape"
    )
  return alpha * jnp.asarray(recon_scores, jnp.float32) + beta * jnp.asarray(motion_scores, jnp.float32)


def video_motion_scores(frames, *, median: int = 0, patch: int = 16, batch_size: int = 64):
  """Motion frame score of every frame of one video: uint8 or [0, 1] float (N, H, W, C) -> float64 (N,).

  Frame i's clip is (i-1, i, i+1) with the ends replicated, the same alignment as the reconstruction
  scores (each score belongs to its clip's centre frame).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top

  frames = np.asarray(frames)
  scale = 1 / 255 if frames.dtype == np.uint8 else 1.0
  n = frames.shape[0]
  score = jax.jit(lambda clips: motion_frame_scores(clips, median, patch))
  out = []
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    window = np.clip(idx[:, None] + np.array([-1, 0, 1]), 0, n - 1)
    out.append(np.asarray(score(jnp.asarray(frames[window], jnp.float32) * scale)))
  return np.concatenate(out).astype(np.float64) if out else np.zeros(0)
