"""Streaming inference: every frame is encoded once, its features reused by the T clips that contain it.

A clip's encoder work is T independent per-frame encodings (SPEC §1), so scoring every frame of a video clip by
clip repeats each frame's encoding T times. Here the model runs in its two halves, which share its parameters:

  encode(frames)          `MaskedSkipUNet.encode`: the encoder's features of each frame;
  decode_centre(windows)  `MaskedSkipUNet.decode`: the skips on a T-frame window of those features and the decoder.

Whatever the variant, both are the model's own code, the same that `MaskedSkipUNet.__call__` runs; they are called
by name, so any model with that interface streams (seed 003's CAE, `nn/cae.py`, has one feature level).

`StreamingScorer` drives one jitted step over a stream of frames from one or more videos: B new frames are encoded
and written into a device ring buffer of features, then B ready clips (all of whose frames are encoded) are gathered
from it, decoded and scored. Every frame is the centre of exactly one clip; frames beyond a video's ends are its
first/last frame (edge replication), which costs nothing here since the replica is the same ring slot.
"""

import collections
from collections.abc import Iterable, Iterator
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring


def encode(model: models.MaskedSkipUNet, variables, frames: jax.Array) -> tuple[jax.Array, ...]:
  """Eval-mode encoder features of each frame: a tuple of (N, h_i, w_i, c_i), levels 1..4.

  frames: (N, H, W, C) in [0, 1].
  """
  return model.apply(variables, frames, train=False, method="encode")


def decode_centre(model: models.MaskedSkipUNet, variables, windows, return_mask: bool = False):
  """The reconstruction (B, H, W, C) of each window's centre frame from its frames' features.

  windows: per level, (B, T, h_i, w_i, c_i) features of the T frames of each clip, as `encode` returns them.
  return_mask: (recon, predicted anomaly map (B, H, W)), for a model with a mask head.
  """
  return model.apply(variables, tuple(windows), train=False, return_mask=return_mask, method="decode")


def _resize_maps(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
  """(B, H, W) -> (B, h, w): block means when h, w divide H, W (each value the mean of the pixels it covers),
  antialiased bilinear otherwise."""
  b, hh, ww = maps.shape
  h, w = size
  if (h, w) == (hh, ww):
    return maps
  if hh % h == 0 and ww % w == 0:
    return maps.reshape(b, h, hh // h, w, ww // w).mean(axis=(2, 4))
  return jax.image.resize(maps, (b, h, w), method="linear", antialias=True)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3), donate_argnums=5)
def _step(model, patch, with_recon, map_size, variables, ring, frames, write, read):
  """Encode B frames into ring slots `write` (B,), then decode and score the clips of slots `read` (B, T).

  Module-level with the model static, so every scorer of an equal model shares one compiled step.
  """
  # Division, as the training pipeline does, so the model sees bit-identical inputs.
  feats = encode(model, variables, frames.astype(jnp.float32) / 255.0)
  ring = {
    "frames": ring["frames"].at[write].set(frames),
    "feats": tuple(r.at[write].set(f.astype(r.dtype)) for r, f in zip(ring["feats"], feats)),
  }
  decoded = decode_centre(model, variables, tuple(r[read] for r in ring["feats"]), return_mask=model.mask_head)
  recon, mask = decoded if model.mask_head else (decoded, None)
  target = ring["frames"][read[:, (model.temporal - 1) // 2]].astype(jnp.float32) / 255.0
  maps = scoring.score_maps(target, recon)
  out = {"score": scoring.frame_scores(maps, patch)}
  if mask is not None:  # the head's map pooled like the error map: a frame score of its own
    out["mask_score"] = scoring.frame_scores(mask, patch)
  if with_recon:
    out["recon"] = recon.astype(jnp.float32)
  if map_size is not None:
    out["score_map"] = _resize_maps(maps, map_size)
  return ring, out


@dataclasses.dataclass(frozen=True)
class ScoredFrame:
  """One scored frame. recon (H, W, C) float32 and score_map (h, w) float32 are None unless asked for;
  mask_score (the mask head's map, patch-pooled like `score`) is None for a model without the head."""

  video: int
  frame: int
  score: float
  recon: np.ndarray | None = None
  score_map: np.ndarray | None = None
  mask_score: float | None = None


class StreamingScorer:
  """Scores every frame of a stream of videos with one compiled step.

  Its frame score is `score_name` (an alarm threshold records it) over patches of side `patch`.

  Args:
    model: the model (its `temporal` is T).
    variables: {'params', 'batch_stats'}.
    image_size: (H, W) of the frames fed in (uint8 (H, W, C) numpy arrays).
    batch_size: frames encoded, and clips decoded, per step.
    patch: frame-score patch size (`scoring.frame_scores`).
    with_recon: also return each frame's reconstruction.
    map_size: also return each frame's score map, resized to this (h, w) on the device (block means when the
      sizes divide, else antialiased bilinear); `image_size` gives the full-resolution map. None: no maps, so
      nothing large leaves the device.
  """

  def __init__(
    self,
    model: models.MaskedSkipUNet,
    variables,
    image_size,
    *,
    batch_size: int = 32,
    patch: int = 16,
    with_recon: bool = False,
    map_size=None,
  ):
    if batch_size < 1:
      raise UserError(f"batch_size: must be a positive integer, got {batch_size}")
    self.model = model
    self.image_size = tuple(int(s) for s in image_size)
    models.check_input_shape(model, (1, model.temporal, *self.image_size, model.channels))
    self.batch_size = int(batch_size)
    self.half = (model.temporal - 1) // 2
    # A pending clip reaches back at most B + 2h - 1 frames from the newest one written (see `stream`).
    self.ring_size = self.batch_size + 2 * self.half
    self.with_recon = with_recon
    self.map_size = None if map_size is None else tuple(int(s) for s in map_size)
    self.variables = jax.device_put(variables)
    self.patch = patch
    self.score_name = "reconstruction"

  @property
  def frame_shape(self) -> tuple[int, int, int]:
    return (*self.image_size, self.model.channels)

  def _ring(self):
    """Zeroed device buffers: uint8 frames and per-level features, ring_size slots plus one scratch slot."""
    slots = self.ring_size + 1
    frames = jax.ShapeDtypeStruct((1, *self.frame_shape), jnp.float32)
    feats = jax.eval_shape(lambda v, x: encode(self.model, v, x), self.variables, frames)
    return {
      "frames": jnp.zeros((slots, *self.frame_shape), jnp.uint8),
      "feats": tuple(jnp.zeros((slots, *f.shape[1:]), f.dtype) for f in feats),
    }

  def _run_step(self, ring, frames, write, read):
    return _step(self.model, self.patch, self.with_recon, self.map_size, self.variables, ring, frames, write, read)

  def compile(self):
    """Compiles (and runs once on zeros) the step, so that compilation can be timed apart; returns self."""
    b, t = self.batch_size, self.model.temporal
    frames, write = self._host_buffers()
    jax.block_until_ready(self._run_step(self._ring(), frames, write, np.full((b, t), self.ring_size, np.int32)))
    return self

  def _frames(self, videos) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """(video, frame, uint8 frame) for every frame, then (video, n, None) when video v (n frames) ends."""
    for v, frames in enumerate(videos):
      k = 0
      for frame in frames:
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
          raise UserError(f"video {v} frame {k}: expected uint8 {self.frame_shape}, got {frame.dtype} {frame.shape}")
        yield v, k, frame
        k += 1
      yield v, k, None

  def stream(self, videos: Iterable[Iterable[np.ndarray]]) -> Iterator[ScoredFrame]:
    """Yields a `ScoredFrame` for every frame of every video, in order.

    `videos` is consumed lazily, one frame at a time: a frame is held only until the T clips that need it
    are scored, so videos longer than memory stream through. Empty videos yield nothing.

    Slot bookkeeping: frames take ring slots in stream order (position p -> slot p mod R). A clip is ready once
    its last frame is written; clips are decoded in centre order, at most B per step, after that step's writes.
    Before step s, every undecoded clip has centre >= p_s - h (p_s frames written so far), so it reads frames
    >= p_s - 2h, while the step writes frames < p_s + B: with R = B + 2h no slot still needed is overwritten.
    Padding rows of a partly filled step write to the extra scratch slot R.
    """
    b, t, h = self.batch_size, self.model.temporal, self.half
    ring = self._ring()
    frames, write = self._host_buffers()
    ready = collections.deque()  # (video, centre frame, (T,) slots)
    recent = collections.deque(maxlen=2 * h + 1)  # slots of the current video's newest frames
    first_slot, position, filled, pending = 0, 0, 0, None
    source = self._frames(videos)
    exhausted = False
    while True:
      while filled < b and not exhausted:
        item = next(source, None)
        if item is None:
          exhausted = True
          break
        v, k, frame = item
        if frame is None:  # the video ended after k frames: its last h clips see its last frame repeated
          for c in range(max(0, k - h), k):
            ready.append((v, c, self._taps(c, k, first_slot, recent)))
          recent.clear()
          continue
        slot = position % self.ring_size
        if k == 0:
          first_slot = slot
        frames[filled], write[filled] = frame, slot
        filled += 1
        position += 1
        recent.append(slot)
        if k >= h:
          c = k - h
          ready.append((v, c, self._taps(c, None, first_slot, recent)))
      if not filled and not ready:
        break
      rows = [ready.popleft() for _ in range(min(b, len(ready)))]
      read = np.full((b, t), self.ring_size, np.int32)
      for i, (_, _, taps) in enumerate(rows):
        read[i] = taps
      ring, out = self._run_step(ring, frames, write, read)
      # The step may still be reading the host buffers (on CPU, without a copy): the next step gets new ones.
      frames, write = self._host_buffers()
      # Hand over the previous step's results while this one runs on the device.
      if pending is not None:
        yield from self._unpack(*pending)
      pending = (rows, out)
      filled = 0
    if pending is not None:
      yield from self._unpack(*pending)

  def _host_buffers(self) -> tuple[np.ndarray, np.ndarray]:
    """A zeroed frame batch, and its ring slots with every row aimed at the scratch slot until filled."""
    b = self.batch_size
    return np.zeros((b, *self.frame_shape), np.uint8), np.full(b, self.ring_size, np.int32)

  def _taps(self, c: int, n: int | None, first_slot: int, recent) -> np.ndarray:
    """Ring slots of clip c's T frames, clamped into the video: frame j < 0 is frame 0, j >= n is frame n - 1.

    `recent` holds the slots of the video's newest frames: up to frame c + h, or n - 1 once the video ended.
    """
    h = self.half
    newest = c + h if n is None else n - 1
    slots = [
      first_slot if j < 0 else recent[len(recent) - 1 - (newest - min(j, newest))] for j in range(c - h, c + h + 1)
    ]
    return np.asarray(slots, np.int32)

  def _unpack(self, rows, out) -> Iterator[ScoredFrame]:
    out = jax.device_get(out)
    for i, (v, c, _) in enumerate(rows):
      yield ScoredFrame(
        v,
        c,
        float(out["score"][i]),
        out["recon"][i] if "recon" in out else None,
        out["score_map"][i] if "score_map" in out else None,
        float(out["mask_score"][i]) if "mask_score" in out else None,
      )
