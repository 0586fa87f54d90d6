"""AED-MAE's losses (Ristea et al., CVPR 2024, Eq. 1-5) and its anomaly score (Eq. 6 and what follows it).

Frames are (B, H, W, c) in [0, 1]; anomaly maps (B, H, W) with 0 for normal and 1 for pasted-anomaly pixels; model
outputs (B, H, W, c + 1), the frame and its anomaly map. Tokens are the model's non-overlapping patch x patch tiles
in raster order. Everything is pure jax and jittable; shape checks run once at trace time.

Motion weights, exactly as the paper writes them (`motion.motion_weights` is the project's variant: two-sided
differences, weights averaging 1): both frames through a 3x3 median filter (edges replicated), the gradient
g_t = |x_t - x_{t-1}|, plus the anomaly map on every channel (Sec. 3, "we propose to add the anomaly maps and the
gradients together"), then per token the max over its pixels per channel, averaged over channels (Eq. 1), divided by
the frame's sum (Eq. 2). A frame with no motion and no anomaly, whose sum is 0, gets uniform weights 1/n instead of
0/0. The authors' code differs: |x_{t-1} - x_{t+1}| without the median filter, and the map scaled by
max(128, the frame's largest gradient) on the 0-255 scale first; with frames in [0, 1] the paper's plain sum already
gives a pasted pixel at least the largest possible gradient.

Eq. 3 and 4 are per frame (1/n) sum_i w_i ||p_i - p_hat_i||^2, with the squared L2 norm over all patch x patch x
(c + 1) values of a token, averaged over the batch. The authors' code takes the mean instead of the sum within a
token, sums over the batch, and trains the student on the dropped tokens without weights; Adam is insensitive to the
constant factors, and Eq. 4 keeps the weights ("we keep the motion gradient weights during self-distillation").

The score (Eq. 6) per pixel: alpha ||x - x_hat||^2 + beta ||x_hat - x_tilde||^2 + gamma y_hat, norms over the c + 1
channels, where the test frame's anomaly channel is 0 (the authors' test target is the frame with an all-normal map),
so the predicted map counts in the first term; y_hat = sigmoid(logit). Then, per video, a 3-D mean filter over the
(T, H, W) volume, the max of each frame, and a temporal Gaussian. The paper gives no sizes; the authors' `filt` has a
9x9x9 mean filter (defined, though commented out in the released code) and Gaussians of sigma 11 over 37 taps on
Avenue and sigma 282 over 899 taps on ShanghaiTech (`TEMPORAL_GAUSSIAN`; nothing for Ped2 or UBnormal). Here the
Gaussian is centred and sums to 1 (theirs peaks one tap early and is unnormalised), with zero padding as theirs;
the mean filter averages over the in-bounds part of its window.
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import motion

ALPHA, BETA, GAMMA = 0.4, 0.3, 0.3
MEDIAN = 3
BOX = 9
TEMPORAL_GAUSSIAN = {"avenue": (11.0, 37), "shanghaitech": (282.0, 899)}  # (sigma, taps), the authors' code


def tokens(x: jax.Array, patch: int) -> jax.Array:
  """(B, H, W, C) -> (B, n, patch * patch, C): the non-overlapping tiles in raster order."""
  if x.ndim != 4:
    raise UserError(f"aed_mae_losses: expected (B, H, W, C) arrays, got shape {x.shape}")
  b, h, w, c = x.shape
  if patch < 1 or h % patch or w % patch:
    raise UserError(f"aed_mae_losses: patch {patch} must divide the frame size {h}x{w}")
  x = x.reshape(b, h // patch, patch, w // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, -1, patch * patch, c)


def _map(anomaly_map: jax.Array, frames: jax.Array) -> jax.Array:
  if anomaly_map.shape != frames.shape[:3]:
    raise UserError(f"aed_mae_losses: anomaly map must be (B, H, W) = {frames.shape[:3]}, got {anomaly_map.shape}")
  return jnp.asarray(anomaly_map, jnp.float32)[..., None]


def with_map(frame: jax.Array, anomaly_map: jax.Array | None = None) -> jax.Array:
  """The (B, H, W, c + 1) target: the frame and its anomaly map (all 0, normal, when None)."""
  frame = jnp.asarray(frame, jnp.float32)
  a = jnp.zeros(frame.shape[:3] + (1,), jnp.float32) if anomaly_map is None else _map(anomaly_map, frame)
  return jnp.concatenate([frame, a], axis=-1)


def motion_weights(
  frame: jax.Array, previous: jax.Array, patch: int, anomaly_map: jax.Array | None = None, median: int = MEDIAN
) -> jax.Array:
  """Eq. 1-2: (B, n) token weights of x_t = `frame` given x_{t-1} = `previous`, each frame's summing to 1.

  `median` 0 skips the median filter (not the paper; for tests and ablations). No gradient flows through them.
  """
  if frame.shape != previous.shape:
    raise UserError(f"motion_weights: frame {frame.shape} and previous {previous.shape} must match")
  frame, previous = jnp.asarray(frame, jnp.float32), jnp.asarray(previous, jnp.float32)
  if median:
    frame, previous = motion.median_filter(frame, median), motion.median_filter(previous, median)
  g = jnp.abs(frame - previous)
  if anomaly_map is not None:
    g = g + _map(anomaly_map, g)
  m = tokens(g, patch).max(axis=2).mean(axis=-1)
  total = m.sum(axis=1, keepdims=True)
  w = jnp.where(total > 0, m / jnp.where(total > 0, total, 1.0), 1.0 / m.shape[1])
  return jax.lax.stop_gradient(w)


def weighted_token_loss(target: jax.Array, pred: jax.Array, weights: jax.Array, patch: int) -> jax.Array:
  """Batch mean of (1/n) sum_i w_i ||target_i - pred_i||^2 over tokens i (Eq. 3's form), in float32."""
  if target.shape != pred.shape:
    raise UserError(f"weighted_token_loss: target {target.shape} and prediction {pred.shape} must match")
  diff = jnp.asarray(target, jnp.float32) - jnp.asarray(pred, jnp.float32)
  sq = jnp.sum(jnp.square(tokens(diff, patch)), axis=(2, 3))
  if weights.shape != sq.shape:
    raise UserError(f"weighted_token_loss: weights must be (B, n) = {sq.shape}, got {weights.shape}")
  return jnp.mean(jnp.mean(weights * sq, axis=1))


def reconstruction_loss(target: jax.Array, teacher: jax.Array, weights: jax.Array, patch: int) -> jax.Array:
  """Eq. 3: the teacher's (B, H, W, c + 1) output against `with_map(clean frame, anomaly map)`."""
  return weighted_token_loss(target, teacher, weights, patch)


def self_distillation_loss(teacher: jax.Array, student: jax.Array, weights: jax.Array, patch: int) -> jax.Array:
  """Eq. 4: the student against the teacher's output, which is a fixed target (no gradient to the teacher)."""
  return weighted_token_loss(jax.lax.stop_gradient(teacher), student, weights, patch)


def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Eq. 5, batch mean: binary cross-entropy of sigmoid(logits) against 0/1 labels (1: the frame has an anomaly).

  Computed from logits, which is Eq. 5 without the log(0) of a saturated probability.
  """
  logits = jnp.asarray(logits, jnp.float32)
  if logits.shape != jnp.shape(labels):
    raise UserError(f"classification_loss: logits {logits.shape} and labels {jnp.shape(labels)} must match")
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.asarray(labels, jnp.float32)))


@dataclasses.dataclass(frozen=True)
class Components:
  """Which of the paper's novel components are on (Table 2's columns); all on is the full method.

  motion: Eq. 1-2 token weights (off: uniform). anomaly_maps: the map channel is a target, boosts the weights and
  counts in the score (off: the frame's c channels alone). classifier: Eq. 5's head is trained and scored (off:
  neither). Synthetic data (train.paste_prob) and self-distillation (train.stage2_fraction and the score's beta)
  are switched where they live.
  """

  motion: bool = True
  anomaly_maps: bool = True
  classifier: bool = True


def _weights(frame, previous, patch, anomaly_map, parts: Components) -> jax.Array:
  if parts.motion:
    return motion_weights(frame, previous, patch, anomaly_map if parts.anomaly_maps else None)
  n = (frame.shape[1] // patch) * (frame.shape[2] // patch)
  return jnp.full((frame.shape[0], n), 1.0 / n, jnp.float32)


def _frame_only(x: jax.Array, parts: Components) -> jax.Array:
  """Outputs without the map channel when the maps are off (the model always has c + 1 outputs)."""
  return x if parts.anomaly_maps else x[..., :-1]


def stage1_loss(
  outputs: dict,
  frame: jax.Array,
  previous: jax.Array,
  anomaly_map: jax.Array,
  patch: int,
  parts: Components = Components(),
) -> tuple[jax.Array, dict]:
  """Stage 1 (teacher): Eq. 3 + Eq. 5, and both parts for logging.

  `frame` and `previous` are the clean x_t and x_{t-1} (without the pasted anomaly: the target and the motion come
  from the normal video); `anomaly_map` the pasted pixels of x_t, all 0 for an untouched frame, which also gives
  the label. `outputs` is `AedMae`'s dict.
  """
  weights = _weights(frame, previous, patch, anomaly_map, parts)
  target = _frame_only(with_map(frame, anomaly_map), parts)
  rec = reconstruction_loss(target, _frame_only(outputs["teacher"], parts), weights, patch)
  labels = (jnp.max(jnp.asarray(anomaly_map), axis=(1, 2)) > 0).astype(jnp.float32)
  bce = classification_loss(outputs["logit"], labels) if parts.classifier else jnp.zeros((), jnp.float32)
  return rec + bce, {"reconstruction": rec, "classification": bce}


def stage2_loss(
  outputs: dict,
  frame: jax.Array,
  previous: jax.Array,
  anomaly_map: jax.Array,
  patch: int,
  parts: Components = Components(),
) -> tuple[jax.Array, dict]:
  """Stage 2 (student): Eq. 4 with the same motion weights as stage 1."""
  weights = _weights(frame, previous, patch, anomaly_map, parts)
  teacher, student = _frame_only(outputs["teacher"], parts), _frame_only(outputs["student"], parts)
  sd = self_distillation_loss(teacher, student, weights, patch)
  return sd, {"self_distillation": sd}


def pixel_scores(
  frame: jax.Array,
  teacher: jax.Array,
  student: jax.Array,
  logit: jax.Array,
  alpha: float = ALPHA,
  beta: float = BETA,
  gamma: float = GAMMA,
  anomaly_maps: bool = True,
) -> jax.Array:
  """Eq. 6: (B, H, W) float32 anomaly maps o_t of test frames (B, H, W, c) from `AedMae`'s outputs.

  `anomaly_maps` False leaves the predicted map channel out of both norms (a model trained without maps).
  """
  target = with_map(frame)
  if target.shape != teacher.shape or teacher.shape != student.shape:
    raise UserError(
      f"pixel_scores: frame {frame.shape} (+ 1 map channel), teacher {teacher.shape} and student "
      f"{student.shape} must match"
    )
  teacher, student = jnp.asarray(teacher, jnp.float32), jnp.asarray(student, jnp.float32)
  if not anomaly_maps:
    target, teacher, student = target[..., :-1], teacher[..., :-1], student[..., :-1]
  rec = jnp.sum(jnp.square(target - teacher), axis=-1)
  gap = jnp.sum(jnp.square(teacher - student), axis=-1)
  prob = jax.nn.sigmoid(jnp.asarray(logit, jnp.float32))
  return alpha * rec + beta * gap + gamma * prob[:, None, None]


def smooth_volume(maps: jax.Array, size: int = BOX) -> jax.Array:
  """size^3 mean filter of one video's (T, H, W) maps, each output the mean of the in-bounds part of its window."""
  if maps.ndim != 3 or size < 1 or size % 2 == 0:
    raise UserError(f"smooth_volume: expected (T, H, W) maps and an odd size, got {maps.shape} and {size}")
  maps = jnp.asarray(maps, jnp.float32)
  # Window sums and in-bounds counts both factor over the axes, so three 1-D means make the 3-D one: 3 * size
  # adds per voxel instead of size^3, which matters on a whole video at full resolution.
  r = size // 2
  for axis in range(3):
    window, pad, shape = [1] * 3, [(0, 0)] * 3, [1] * 3
    window[axis], pad[axis], shape[axis] = size, (r, r), maps.shape[axis]
    sums = jax.lax.reduce_window(maps, 0.0, jax.lax.add, window, (1,) * 3, pad)
    i = jnp.arange(maps.shape[axis])
    counts = jnp.minimum(i + r, maps.shape[axis] - 1) - jnp.maximum(i - r, 0) + 1
    maps = sums / counts.reshape(shape).astype(jnp.float32)
  return maps


def gaussian_kernel(sigma: float, taps: int) -> jax.Array:
  """A centred Gaussian of standard deviation `sigma` over `taps` (odd) samples, summing to 1."""
  if sigma <= 0 or taps < 1 or taps % 2 == 0:
    raise UserError(f"gaussian_kernel: need sigma > 0 and an odd number of taps, got {sigma} and {taps}")
  x = jnp.arange(taps, dtype=jnp.float32) - taps // 2
  k = jnp.exp(-0.5 * jnp.square(x / sigma))
  return k / k.sum()


def temporal_gaussian(scores: jax.Array, sigma: float, taps: int) -> jax.Array:
  """One video's (T,) frame scores smoothed by `gaussian_kernel`, zero-padded at both ends; any T >= 1."""
  if scores.ndim != 1:
    raise UserError(f"temporal_gaussian: expected (T,) scores, got shape {scores.shape}")
  half = taps // 2
  padded = jnp.pad(jnp.asarray(scores, jnp.float32), (half, half))
  return jnp.convolve(padded, gaussian_kernel(sigma, taps), mode="valid")


def frame_scores(
  maps: jax.Array,
  box: int = BOX,
  sigma: float = TEMPORAL_GAUSSIAN["avenue"][0],
  taps: int = TEMPORAL_GAUSSIAN["avenue"][1],
) -> jax.Array:
  """One video's (T, H, W) `pixel_scores` -> (T,) frame scores: 3-D mean filter, frame max, temporal Gaussian.

  `box` 1 skips the 3-D filter and `taps` 1 the Gaussian.
  """
  if maps.ndim != 3:
    raise UserError(f"frame_scores: expected one video's (T, H, W) maps, got shape {maps.shape}")
  peaks = smooth_volume(maps, box).max(axis=(1, 2))
  return temporal_gaussian(peaks, sigma, taps)
