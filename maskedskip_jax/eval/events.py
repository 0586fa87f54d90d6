"""Anomalous events: contiguous runs of frames whose score is above a threshold.

A frame is abnormal when its score is strictly above the threshold (NaN never is). Runs of abnormal frames separated
by at most `merge_gap` normal frames are merged into one event, and then events shorter than `min_frames` frames are
dropped: merging first means a flickering alarm counts as the one event it is. An event spans its first to its last
abnormal frame (`end` inclusive); its peak is its highest-scoring abnormal frame, the first one on a tie.

`segments` finds the events of a whole score sequence; `Tracker` finds the same events one frame at a time, in
constant memory, handing each over as soon as no later frame can change it: `merge_gap + 1` normal frames after its
last abnormal one. Times (`Event.as_json`) put frame k at k / fps seconds and give an event the time its frames are
shown: from start / fps to (end + 1) / fps.

numpy only (no jax, absl or tqdm): `predict --backend onnxruntime` uses it where those are not installed.
"""

import dataclasses
import math

import numpy as np

from maskedskip_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Event:
  """Frames start..end (inclusive) of one event; peak_frame is its highest-scoring frame, scored peak_score."""

  start: int
  end: int
  peak_frame: int
  peak_score: float

  @property
  def frames(self) -> int:
    return self.end - self.start + 1

  def as_json(self, fps: float) -> dict:
    """The event as a JSON object, with its times in seconds at `fps` frames per second."""
    return {
      "start_frame": self.start,
      "end_frame": self.end,
      "frames": self.frames,
      "start_seconds": round(self.start / fps, 6),
      "end_seconds": round((self.end + 1) / fps, 6),
      "duration_seconds": round(self.frames / fps, 6),
      "peak_frame": self.peak_frame,
      "peak_seconds": round(self.peak_frame / fps, 6),
      "peak_score": float(self.peak_score),
    }


def _check(threshold: float, min_frames: int, merge_gap: int) -> None:
  if not math.isfinite(threshold):
    raise UserError(f"events: the threshold must be a finite number, got {threshold}")
  if int(min_frames) != min_frames or min_frames < 1:
    raise UserError(f"events: min_frames must be a positive integer, got {min_frames}")
  if int(merge_gap) != merge_gap or merge_gap < 0:
    raise UserError(f"events: merge_gap must be a non-negative integer, got {merge_gap}")


def min_frames(seconds: float, fps: float) -> int:
  """The fewest frames an event lasting at least `seconds` at `fps` spans (at least one)."""
  if not (seconds >= 0 and math.isfinite(seconds)):
    raise UserError(f"--min-duration: must be a non-negative number of seconds, got {seconds}")
  return max(1, math.ceil(seconds * fps - 1e-9))  # the tolerance keeps 0.5 s at 30 fps at 15 frames, not 16


def gap_frames(seconds: float, fps: float) -> int:
  """The most normal frames a gap of at most `seconds` at `fps` holds."""
  if not (seconds >= 0 and math.isfinite(seconds)):
    raise UserError(f"--merge-gap: must be a non-negative number of seconds, got {seconds}")
  return max(0, math.floor(seconds * fps + 1e-9))


def segments(scores: np.ndarray, threshold: float, *, min_frames: int = 1, merge_gap: int = 0) -> list[Event]:
  """The events of a whole 1-D score sequence, in order."""
  _check(threshold, min_frames, merge_gap)
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 1:
    raise UserError(f"events: scores must be 1-D, got shape {scores.shape}")
  with np.errstate(invalid="ignore"):
    abnormal = scores > threshold
  hits = np.flatnonzero(abnormal)
  if not len(hits):
    return []
  # A new run starts wherever more than merge_gap normal frames separate two abnormal ones.
  breaks = np.flatnonzero(np.diff(hits) > merge_gap + 1) + 1
  events = []
  for run in np.split(hits, breaks):
    start, end = int(run[0]), int(run[-1])
    if end - start + 1 < min_frames:
      continue
    peak = int(run[np.argmax(scores[run])])  # abnormal frames only: a gap frame is never the peak
    events.append(Event(start, end, peak, float(scores[peak])))
  return events


class Tracker:
  """`segments`, one score at a time: `add` returns the events that frame closed, `finish` the last one.

  Holds one open run at most, whatever the length of the stream. An event is handed over `merge_gap + 1` frames after
  its last abnormal frame (on the frame that proves the gap too long to merge), or by `finish`.
  """

  def __init__(self, threshold: float, *, min_frames: int = 1, merge_gap: int = 0):
    _check(threshold, min_frames, merge_gap)
    self.threshold = float(threshold)
    self.min_frames, self.merge_gap = int(min_frames), int(merge_gap)
    self.count = 0  # frames seen
    self._run = None  # [start, last abnormal frame, peak frame, peak score] of the open run

  @property
  def open(self) -> Event | None:
    """The run in progress (it may still grow, merge or be dropped as too short), or None."""
    if self._run is None:
      return None
    return Event(*self._run)

  def add(self, score: float) -> list[Event]:
    k, self.count = self.count, self.count + 1
    closed = []
    score = float(score)
    if score > self.threshold:
      if self._run is None:
        self._run = [k, k, k, score]
      else:
        self._run[1] = k
        if score > self._run[3]:
          self._run[2:] = [k, score]
    elif self._run is not None and k - self._run[1] > self.merge_gap:
      closed = self._close()
    return closed

  def finish(self) -> list[Event]:
    """The open run's event, if it is long enough; the tracker is then empty (and may take more frames)."""
    return self._close()

  def _close(self) -> list[Event]:
    run, self._run = self._run, None
    if run is None or run[1] - run[0] + 1 < self.min_frames:
      return []
    return [Event(*run)]
