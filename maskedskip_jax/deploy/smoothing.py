"""A post-processing chain (`eval/postprocess.py`) applied as scores arrive, with the batch chain's exact values.

A centred filter's value at frame k needs the scores up to k + r (r its half-width; a chain's r is the sum of its
steps'), so frame k's smoothed score is final, and handed over, once frame k + r is scored, or when the stream ends.
That is the smoothed row's extra latency: r frames (gaussian:sigma=3 has r = 12, about half a second at 25 fps).
Each value is the chain applied to the frames within r of it, which are all the samples it depends on, with the
stream's real start and end as the edges: the same numbers as the chain on the whole sequence.

Chains that need the whole sequence (minmax, zscore) cannot be applied as frames arrive and are refused.
"""

import numpy as np

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import postprocess as postprocess_lib

WHOLE_SEQUENCE = ("minmax", "zscore")


def radius(steps) -> int:
  """The frames after frame k that a parsed chain's value at k depends on."""
  total = 0
  for method, kw in steps:
    if method in WHOLE_SEQUENCE:
      raise UserError(
        f"--postprocess: '{method}' needs the whole video, which a live source never has; use none, median or gaussian"
      )
    if method == "median":
      total += kw["window"] // 2
    elif method == "gaussian":
      total += len(postprocess_lib.gaussian_taps(kw["sigma"], kw["taps"])) // 2
  return total


class RunningChain:
  """`add(score)` -> [(frame, score, smoothed)] rows now final, in order; `finish()` -> the rest."""

  def __init__(self, steps):
    self.steps = steps
    self.radius = radius(steps)
    self._scores = []  # raw scores from frame self._base on: what the rows still to come depend on
    self._base = 0
    self._next = 0  # the next frame to hand over
    self.count = 0

  def add(self, score: float) -> list[tuple[int, float, float]]:
    self._scores.append(float(score))
    self.count += 1
    return self._emit(self.count - self.radius, at_end=False)

  def finish(self) -> list[tuple[int, float, float]]:
    return self._emit(self.count, at_end=True)

  def _emit(self, stop: int, at_end: bool) -> list[tuple[int, float, float]]:
    if stop <= self._next:
      return []
    r = self.radius
    lo = max(0, self._next - r)  # the window's start: the sequence's own start when that is within r
    hi = self.count if at_end else min(self.count, stop + r)
    window = np.asarray(self._scores[lo - self._base : hi - self._base], np.float64)
    smoothed = postprocess_lib.postprocess([window], self.steps)[0]
    rows = [(k, self._scores[k - self._base], float(smoothed[k - lo])) for k in range(self._next, stop)]
    self._next = stop
    drop = max(0, self._next - r) - self._base  # scores no later row depends on
    if drop > 0:
      del self._scores[:drop]
      self._base += drop
    return rows
