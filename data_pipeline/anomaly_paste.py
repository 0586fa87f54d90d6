"""Synthetic anomalies for training: paste a moving object into some clips, keep the clean centre frame as target.

AED-MAE (Ristea et al., CVPR 2024, Sec. 3) blends objects cut from another data set into normal training frames,
consistently over time, and trains the model to reconstruct the frame *without* them (optionally also to predict
the anomaly map). We have no UBnormal here, so an object is either a patch cut from another clip of the same batch
(taken from the donor's frame t for input frame t, so it carries the donor's own motion) or a procedural sprite
(a two-colour striped rectangle, ellipse or blob); a random mask shape cuts it out either way. The object moves in
a straight line at constant speed across the T frames and is fully inside the centre frame. Pasting is hard
(no blending): a pixel is either the clip's or the object's, and `paste_masks` says which.

The sprites are deliberately generic shapes, not the synthetic benchmark's cyclists and carts: pasting the test
anomaly types would leak them into training.

Randomness comes from `np.random.default_rng((seed, step, row))` per clip, so a batch is a pure function of
(seed, step, clips): a resumed run pastes exactly what the first run would have, and a clip's decision (paste or
not, shape, size, path) does not depend on how the global batch is split over processes (`row_offset` = the
first global row of this process's rows). Only the donor of a 'batch' paste depends on the local batch.
Pure numpy; runs on the host between the iterator and the train step.
"""

import numpy as np

from data_pipeline.errors import UserError

SOURCES = ("batch", "sprites", "mixed")
_SALT = 0x5AD7  # keeps these streams apart from other users of (seed, step)


def _check(clips, seed, step, p, source, size, speed):
  if clips.ndim != 5:
    raise UserError(f"anomaly_paste: expected clips (B, T, H, W, C), got shape {clips.shape}")
  if not 0.0 <= p <= 1.0:
    raise UserError(f"train.paste_prob: expected a probability in [0, 1], got {p}")
  if source not in SOURCES:
    raise UserError(f"train.paste_source: expected one of {SOURCES}, got {source!r}")
  if int(seed) < 0 or int(step) < 0:
    raise UserError(f"anomaly_paste: seed and step must be non-negative integers, got {seed}, {step}")
  if not 0.0 < size[0] <= size[1] <= 1.0:
    raise UserError(f"anomaly_paste size: expected 0 < min <= max <= 1 (fractions of the frame), got {size}")
  if not 0.0 <= speed[0] <= speed[1]:
    raise UserError(f"anomaly_paste speed: expected 0 <= min <= max (frame fractions per frame), got {speed}")


def _shape(rng, oh, ow):
  """A bool (oh, ow) silhouette: rectangle, ellipse or a blob of three ellipses."""
  v, u = np.meshgrid((np.arange(oh) + 0.5) / oh * 2 - 1, (np.arange(ow) + 0.5) / ow * 2 - 1, indexing="ij")
  kind = rng.integers(3)
  if kind == 0:
    mask = np.ones((oh, ow), bool)
  elif kind == 1:
    mask = u * u + v * v <= 1.0
  else:
    mask = np.zeros((oh, ow), bool)
    for cy, cx, ry, rx in rng.uniform([-0.4, -0.4, 0.3, 0.3], [0.4, 0.4, 0.6, 0.6], (3, 4)):
      mask |= ((v - cy) / ry) ** 2 + ((u - cx) / rx) ** 2 <= 1.0
  mask[oh // 2, ow // 2] = True  # never empty, even when tiny
  return mask


def _sprite(rng, t, oh, ow, c):
  """(t, oh, ow, c) in [0, 1]: two random colours mixed by oblique stripes; rigid, so the same every frame."""
  y, x = np.meshgrid(np.arange(oh) / max(oh, ow), np.arange(ow) / max(oh, ow), indexing="ij")
  angle, freq, phase = rng.uniform(0, 2 * np.pi), rng.uniform(1, 4), rng.uniform(0, 2 * np.pi)
  stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(angle) * x + np.sin(angle) * y) + phase)
  first, second = rng.uniform(0, 1, (2, c))
  img = first + (second - first) * (rng.uniform(0, 1) * stripes)[..., None]
  return np.broadcast_to(img, (t, oh, ow, c))


def _donor_patch(rng, clips, i, oh, ow):
  """(t, oh, ow, c) cut at one random place from every frame of another clip, maybe mirrored."""
  b, _, h, w, _ = clips.shape
  j = int(rng.integers(b - 1))
  j += j >= i
  y, x = int(rng.integers(h - oh + 1)), int(rng.integers(w - ow + 1))
  patch = clips[j, :, y : y + oh, x : x + ow]
  return patch[:, :, ::-1] if rng.random() < 0.5 else patch


def _paste_one(rng, clips, i, out, masks, source, size, speed):
  b, t, h, w, c = clips.shape
  side = rng.uniform(*size) * min(h, w)
  aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
  oh = int(np.clip(round(side * np.sqrt(aspect)), 2, h))
  ow = int(np.clip(round(side / np.sqrt(aspect)), 2, w))
  shape = _shape(rng, oh, ow)
  use_batch = b > 1 and (source == "batch" or (source == "mixed" and rng.random() < 0.5))
  if use_batch:
    obj = _donor_patch(rng, clips, i, oh, ow)
  else:
    obj = _sprite(rng, t, oh, ow, c)
    obj = (np.round(obj * 255) if np.issubdtype(clips.dtype, np.integer) else obj).astype(clips.dtype)
  y0, x0 = rng.uniform(0, h - oh + 1), rng.uniform(0, w - ow + 1)
  v = rng.uniform(*speed) * max(h, w)
  angle = rng.uniform(0, 2 * np.pi)
  vy, vx = v * np.sin(angle), v * np.cos(angle)
  centre = (t - 1) // 2
  for f in range(t):
    top, left = int(np.floor(y0 + vy * (f - centre))), int(np.floor(x0 + vx * (f - centre)))
    ya, yb, xa, xb = max(top, 0), min(top + oh, h), max(left, 0), min(left + ow, w)
    if ya >= yb or xa >= xb:
      continue  # left the frame at this time step
    sel = shape[ya - top : yb - top, xa - left : xb - left]
    region = out[i, f, ya:yb, xa:xb]
    region[sel] = obj[f, ya - top : yb - top, xa - left : xb - left][sel]
    masks[i, f, ya:yb, xa:xb] |= sel


def paste_anomalies(
  clips: np.ndarray,
  *,
  seed: int,
  step: int,
  p: float,
  source: str = "mixed",
  size: tuple[float, float] = (0.1, 0.3),
  speed: tuple[float, float] = (0.0, 0.05),
  max_objects: int = 1,
  row_offset: int = 0,
):
  """Paste moving objects into each clip with probability p.

  Args:
    clips: (B, T, H, W, C) clips (float in [0, 1] from the train iterator, or uint8); never modified.
    seed, step: the run's seed and the global step of this batch (see the module docstring).
    p: probability that a clip gets objects.
    source: 'batch' (patches of other clips; sprites when B == 1), 'sprites' or 'mixed' (either, 50/50).
    size: object side range as fractions of min(H, W) (aspect ratio in [1/2, 2] around it).
    speed: range of the object's speed in fractions of max(H, W) per frame (random direction).
    max_objects: a pasted clip gets 1..max_objects objects.
    row_offset: global index of clips[0] in the global batch.

  Returns:
    clips_in: (B, T, H, W, C) copy of clips with the objects pasted.
    target_centre: (B, H, W, C) clean centre frames (copies of the input's).
    paste_masks: (B, T, H, W) float32, 1 where a pixel was replaced. `paste_masks[:, (T-1)//2]` is the centre
      frame's anomaly map (the extra target channel / AED-MAE's weight boost).
  """
  clips = np.asarray(clips)
  _check(clips, seed, step, p, source, size, speed)
  if max_objects < 1:
    raise UserError(f"anomaly_paste max_objects: expected an integer >= 1, got {max_objects}")
  b, t = clips.shape[:2]
  out = clips.copy()
  masks = np.zeros(clips.shape[:4], bool)
  for i in range(b):
    rng = np.random.default_rng((int(seed), int(step), int(row_offset) + i, _SALT))
    if rng.random() >= p:
      continue
    for _ in range(int(rng.integers(1, max_objects + 1))):
      _paste_one(rng, clips, i, out, masks, source, size, speed)
  return out, clips[:, (t - 1) // 2].copy(), masks.astype(np.float32)
