"""Synthetic anomalies for training: paste a moving object into some clips, keep the clean centre frame as target.

AED-MAE (Ristea et al., CVPR 2024, Sec. 3) blends objects cut from another data set into normal training frames,
consistently over time, and trains the model to reconstruct the frame *without* them (optionally also to predict
the anomaly map). We have no UBnormal here, so an object is either a patch cut from another clip of the same batch
(taken from the donor's frame t for input frame t, so it carries the donor's own motion) or a procedural sprite
(a two-colour striped rectangle, ellipse or blob); a random mask shape cuts it out either way. The object moves in
a straight line at constant speed across the T frames and is fully inside the centre frame. A user with UBnormal
(or any objects with masks) passes its cut-outs instead (`cutouts.load`, source 'cutouts'): T consecutive frames of
a random object clip, with its own per-frame masks, follow the same straight path.

Blending: 'hard' replaces the object's pixels; 'feather' (the paper "blends" its objects in) mixes object and
frame with the silhouette blurred by a Gaussian of a few percent of the object's side, so no hard edge betrays the
paste. Either way `paste_masks` is the binary silhouette: the anomaly map the model learns to predict.

The sprites are deliberately generic shapes, not the synthetic benchmark's cyclists and carts: pasting the test
anomaly types would leak them into training.

Randomness comes from `np.random.default_rng((seed, step, row))` per clip, so a batch is a pure function of
(seed, step, clips): a resumed run pastes exactly what the first run would have, and a clip's decision (paste or
not, shape, size, path) does not depend on how the global batch is split over processes (`row_offset` = the
first global row of this process's rows). Only the donor of a 'batch' paste depends on the local batch.
Pure numpy; runs on the host between the iterator and the train step.
"""

import cv2
import numpy as np

from data_pipeline.errors import UserError

SOURCES = ("batch", "sprites", "mixed", "cutouts")
BLENDS = ("hard", "feather")
FEATHER = 0.04  # the blur's sigma as a share of the object's shorter side
_SALT = 0x5AD7  # keeps these streams apart from other users of (seed, step)


def _check(clips, seed, step, p, source, size, speed, blend, cutouts):
  if clips.ndim != 5:
    raise UserError(f"anomaly_paste: expected clips (B, T, H, W, C), got shape {clips.shape}")
  if not 0.0 <= p <= 1.0:
    raise UserError(f"train.paste_prob: expected a probability in [0, 1], got {p}")
  if source not in SOURCES:
    raise UserError(f"train.paste_source: expected one of {SOURCES}, got {source!r}")
  if blend not in BLENDS:
    raise UserError(f"train.paste_blend: expected one of {BLENDS}, got {blend!r}")
  if source == "cutouts" and not cutouts:
    raise UserError("train.paste_source='cutouts' needs the cut-out clips of train.paste_dir")
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


def _cutout(rng, cutouts, t, side, c):
  """(t, oh, ow, c) frames and (t, oh, ow) silhouettes of T consecutive frames of a random cut-out clip."""
  clip = cutouts[int(rng.integers(len(cutouts)))]
  n, h0, w0 = clip.masks.shape
  if clip.frames.shape[-1] != c:
    raise UserError(f"cut-out {clip.name}: {clip.frames.shape[-1]} channels, the training clips have {c}")
  frames = np.clip(int(rng.integers(max(1, n - t + 1))) + np.arange(t), 0, n - 1)
  scale = side / np.sqrt(h0 * w0)  # the drawn size is the object's geometric-mean side
  oh, ow = max(2, round(h0 * scale)), max(2, round(w0 * scale))
  obj = np.stack([cv2.resize(clip.frames[f], (ow, oh), interpolation=cv2.INTER_AREA) for f in frames])
  masks = np.stack(
    [cv2.resize(clip.masks[f].astype(np.float32), (ow, oh), interpolation=cv2.INTER_AREA) for f in frames]
  )
  masks = masks >= 0.5
  masks[:, oh // 2, ow // 2] |= ~masks.any(axis=(1, 2))  # never empty, even when tiny
  return obj.reshape(t, oh, ow, c), masks


def _alpha(shape: np.ndarray, blend: str) -> np.ndarray:
  """Per-pixel weight of the object: the silhouette, blurred at its edges when feathering."""
  alpha = shape.astype(np.float32)
  if blend == "feather":
    sigma = max(0.5, FEATHER * min(shape.shape[-2:]))
    alpha = np.stack([cv2.GaussianBlur(a, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT) for a in alpha])
    alpha = np.where(shape, np.maximum(alpha, 0.5), alpha)  # the silhouette stays at least half object
  return alpha


def _paste_one(rng, clips, i, out, masks, source, size, speed, blend, cutouts):
  b, t, h, w, c = clips.shape
  side = rng.uniform(*size) * min(h, w)
  if source == "cutouts":
    obj, shape = _cutout(rng, cutouts, t, side, c)
    oh, ow = min(obj.shape[1], h), min(obj.shape[2], w)
    obj, shape = obj[:, :oh, :ow], shape[:, :oh, :ow]
  else:
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    oh = int(np.clip(round(side * np.sqrt(aspect)), 2, h))
    ow = int(np.clip(round(side / np.sqrt(aspect)), 2, w))
    shape = np.broadcast_to(_shape(rng, oh, ow), (t, oh, ow))
    use_batch = b > 1 and (source == "batch" or (source == "mixed" and rng.random() < 0.5))
    obj = _donor_patch(rng, clips, i, oh, ow) if use_batch else _sprite(rng, t, oh, ow, c)
    if not use_batch and np.issubdtype(clips.dtype, np.integer):
      obj = obj * 255
  alpha = _alpha(shape, blend)
  y0, x0 = rng.uniform(0, h - oh + 1), rng.uniform(0, w - ow + 1)
  v = rng.uniform(*speed) * max(h, w)
  angle = rng.uniform(0, 2 * np.pi)
  vy, vx = v * np.sin(angle), v * np.cos(angle)
  centre = (t - 1) // 2
  scale = 255.0 if np.issubdtype(clips.dtype, np.integer) and source == "cutouts" else 1.0
  for f in range(t):
    top, left = int(np.floor(y0 + vy * (f - centre))), int(np.floor(x0 + vx * (f - centre)))
    ya, yb, xa, xb = max(top, 0), min(top + oh, h), max(left, 0), min(left + ow, w)
    if ya >= yb or xa >= xb:
      continue  # left the frame at this time step
    inside = (slice(ya - top, yb - top), slice(xa - left, xb - left))
    a = alpha[f][inside][..., None]
    region = out[i, f, ya:yb, xa:xb].astype(np.float32)
    mixed = region * (1 - a) + np.asarray(obj[f][inside], np.float32) * scale * a
    out[i, f, ya:yb, xa:xb] = np.round(mixed) if np.issubdtype(out.dtype, np.integer) else mixed
    masks[i, f, ya:yb, xa:xb] |= shape[f][inside]


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
  blend: str = "hard",
  cutouts=(),
):
  """Paste moving objects into each clip with probability p.

  Args:
    clips: (B, T, H, W, C) clips (float in [0, 1] from the train iterator, or uint8); never modified.
    seed, step: the run's seed and the global step of this batch (see the module docstring).
    p: probability that a clip gets objects.
    source: 'batch' (patches of other clips; sprites when B == 1), 'sprites', 'mixed' (either, 50/50) or
      'cutouts' (the user's object clips, `cutouts`).
    size: object side range as fractions of min(H, W) (aspect ratio in [1/2, 2] around it).
    speed: range of the object's speed in fractions of max(H, W) per frame (random direction).
    max_objects: a pasted clip gets 1..max_objects objects.
    row_offset: global index of clips[0] in the global batch.
    blend: 'hard' or 'feather' (see the module docstring).
    cutouts: `cutouts.load`'s clips, for source 'cutouts'.

  Returns:
    clips_in: (B, T, H, W, C) copy of clips with the objects pasted.
    target_centre: (B, H, W, C) clean centre frames (copies of the input's).
    paste_masks: (B, T, H, W) float32, 1 where a pixel was replaced. `paste_masks[:, (T-1)//2]` is the centre
      frame's anomaly map (the extra target channel / AED-MAE's weight boost).
  """
  clips = np.asarray(clips)
  _check(clips, seed, step, p, source, size, speed, blend, cutouts)
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
      _paste_one(rng, clips, i, out, masks, source, size, speed, blend, cutouts)
  return out, clips[:, (t - 1) // 2].copy(), masks.astype(np.float32)
