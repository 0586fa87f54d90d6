"""Clip plans: which T-frame windows, in which order, for which process.

Pure numpy and fully deterministic, so that every backend (tf.data, Grain) and
every process of a multi-host run derives the same batches from (seed, step)
alone. Frames are addressed by their global index in a frame store, where video
`v` occupies rows `[offsets[v], offsets[v] + lengths[v])`.
"""

from collections.abc import Sequence

import numpy as np

from data_pipeline.errors import UserError


def offsets_of(lengths: Sequence[int]) -> np.ndarray:
  """First global frame index of each video."""
  lengths = np.asarray(lengths, np.int64)
  return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def train_windows(
  lengths: Sequence[int], temporal: int, stride: int = 1, names: Sequence[str] | None = None
) -> np.ndarray:
  """Global start index of every window of `temporal` frames inside one video.

  Windows never cross a video boundary; consecutive windows of a video start
  `stride` frames apart.
  """
  if temporal < 1:
    raise UserError(f"temporal must be >= 1, got {temporal}.")
  if stride < 1:
    raise UserError(f"stride must be >= 1, got {stride}.")
  lengths = np.asarray(lengths, np.int64)
  starts = []
  for v, (offset, n) in enumerate(zip(offsets_of(lengths), lengths)):
    if n < temporal:
      name = names[v] if names is not None else f"#{v}"
      raise UserError(f"Video {name} has {n} frames, fewer than temporal={temporal} needed for one clip.")
    starts.append(offset + np.arange(0, n - temporal + 1, stride))
  if not starts:
    raise UserError("The split has no videos to make training clips from.")
  return np.concatenate(starts).astype(np.int64)


def steps_per_epoch(num_windows: int, global_batch_size: int) -> int:
  """Full global batches per epoch (the remainder is dropped: fixed shapes)."""
  if global_batch_size < 1:
    raise UserError(f"global_batch_size must be >= 1, got {global_batch_size}.")
  steps = num_windows // global_batch_size
  if steps == 0:
    raise UserError(f"The split has {num_windows} training clips, fewer than one global batch of {global_batch_size}.")
  return steps


def epoch_order(plan_size: int, seed: int, epoch: int) -> np.ndarray:
  """The permutation of window indices used in `epoch` of a run with `seed`."""
  if seed < 0:
    raise UserError(f"seed must be a non-negative integer, got {seed}.")
  rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
  return rng.permutation(plan_size)


class TrainPlan:
  """Maps a global step to this process's share of that step's global batch."""

  def __init__(
    self,
    starts: np.ndarray,
    global_batch_size: int,
    temporal: int,
    seed: int = 0,
    process_index: int = 0,
    process_count: int = 1,
  ):
    if process_count < 1 or not 0 <= process_index < process_count:
      raise UserError(f"process_index must be in [0, {process_count}), got {process_index}.")
    if global_batch_size % process_count:
      raise UserError(f"global_batch_size={global_batch_size} must be divisible by the process count {process_count}.")
    self.starts = np.asarray(starts, np.int64)
    self.global_batch_size = global_batch_size
    self.temporal = temporal
    self.seed = seed
    self.process_index = process_index
    self.process_count = process_count
    self.local_batch_size = global_batch_size // process_count
    self.steps_per_epoch = steps_per_epoch(len(self.starts), global_batch_size)
    epoch_order(1, seed, 0)  # Validates the seed before any worker thread does.
    # One (epoch, permutation) pair, replaced atomically: backends call
    # `frame_indices` from several threads, and a miss merely recomputes.
    self._cached = (-1, None)

  def _order(self, epoch: int) -> np.ndarray:
    cached_epoch, order = self._cached
    if cached_epoch != epoch:
      order = epoch_order(len(self.starts), self.seed, epoch)
      self._cached = (epoch, order)
    return order

  def rows(self, step: int) -> np.ndarray:
    """Indices into `starts` of this process's rows of global step `step`."""
    epoch, within = divmod(int(step), self.steps_per_epoch)
    first = within * self.global_batch_size
    first += self.process_index * self.local_batch_size
    return self._order(epoch)[first : first + self.local_batch_size]

  def frame_indices(self, step: int) -> np.ndarray:
    """Global frame indices (local_batch_size, temporal) of step `step`."""
    starts = self.starts[self.rows(step)]
    return starts[:, None] + np.arange(self.temporal, dtype=np.int64)


class EvalPlan:
  """Every frame of every video, in order, as the centre of exactly one clip.

  Frames beyond a video's ends are replaced by its first / last frame, and the
  last batch is padded to `batch_size` with rows marked `valid=False`.
  """

  def __init__(
    self, lengths: Sequence[int], batch_size: int, temporal: int, labels: Sequence[np.ndarray | None] | None = None
  ):
    if temporal < 1 or temporal % 2 == 0:
      raise UserError(f"temporal must be odd for centre-frame evaluation, got {temporal}.")
    if batch_size < 1:
      raise UserError(f"batch_size must be >= 1, got {batch_size}.")
    lengths = np.asarray(lengths, np.int64)
    if labels is None:
      labels = [None] * len(lengths)
    half = temporal // 2
    taps = np.arange(-half, half + 1, dtype=np.int64)
    indices, video, frame, label = [], [], [], []
    for v, (offset, n) in enumerate(zip(offsets_of(lengths), lengths)):
      centre = np.arange(n, dtype=np.int64)
      indices.append(offset + np.clip(centre[:, None] + taps, 0, n - 1))
      video.append(np.full(n, v, np.int32))
      frame.append(centre.astype(np.int32))
      if labels[v] is None:
        label.append(np.full(n, -1, np.int32))
      else:
        label.append(np.asarray(labels[v]).astype(np.int32))
    self.batch_size = batch_size
    self.temporal = temporal
    self.num_clips = int(lengths.sum())
    self.num_batches = -(-self.num_clips // batch_size)
    pad = self.num_batches * batch_size - self.num_clips
    # Padded rows point at frame 0 so that gathering them needs no special
    # case; `valid` is what tells consumers to drop them.
    self._indices = np.concatenate(indices + [np.zeros((pad, temporal), np.int64)])
    self._video = np.concatenate(video + [np.full(pad, -1, np.int32)])
    self._frame = np.concatenate(frame + [np.full(pad, -1, np.int32)])
    self._label = np.concatenate(label + [np.full(pad, -1, np.int32)])
    self._valid = np.arange(len(self._video)) < self.num_clips

  def batch(self, i: int) -> dict[str, np.ndarray]:
    """Index arrays of batch `i`: 'indices' (B, T) plus per-row metadata."""
    rows = slice(int(i) * self.batch_size, (int(i) + 1) * self.batch_size)
    return {
      "indices": self._indices[rows],
      "video": self._video[rows],
      "frame": self._frame[rows],
      "label": self._label[rows],
      "valid": self._valid[rows],
    }
