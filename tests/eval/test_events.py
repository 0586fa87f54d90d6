"""Anomalous events from frame scores: hand-computed segments, merging, the minimum length, the incremental tracker
agreeing with the whole-sequence answer, and the JSON form."""

import json

import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import events
from maskedskip_jax.eval.events import Event


def _track(scores, threshold, **kw):
  """Every event the tracker hands over, with the frame count at which each was handed over."""
  tracker = events.Tracker(threshold, **kw)
  got = []
  for s in scores:
    got += [(e, tracker.count) for e in tracker.add(s)]
  got += [(e, None) for e in tracker.finish()]
  return got


def test_segments_hand_computed():
  #         0    1    2    3    4    5    6    7    8    9
  scores = [0.1, 0.6, 0.9, 0.5, 0.2, 0.7, 0.7, 0.1, 0.1, 0.8]
  assert events.segments(scores, 0.5) == [Event(1, 2, 2, 0.9), Event(5, 6, 5, 0.7), Event(9, 9, 9, 0.8)]
  # A score equal to the threshold is normal (frame 3: 0.5); ties give the first peak (frame 5).
  assert events.segments(scores, 0.4) == [Event(1, 3, 2, 0.9), Event(5, 6, 5, 0.7), Event(9, 9, 9, 0.8)]


def test_merge_gap_merges_then_min_frames_drops():
  #         0    1    2    3    4    5    6    7    8
  scores = [0.1, 0.6, 0.9, 0.2, 0.7, 0.7, 0.1, 0.1, 0.8]  # runs 1-2, 4-5, 8; gaps of one (3) and two (6-7) frames
  assert events.segments(scores, 0.5) == [Event(1, 2, 2, 0.9), Event(4, 5, 4, 0.7), Event(8, 8, 8, 0.8)]
  assert events.segments(scores, 0.5, merge_gap=1) == [Event(1, 5, 2, 0.9), Event(8, 8, 8, 0.8)]
  assert events.segments(scores, 0.5, merge_gap=2) == [Event(1, 8, 2, 0.9)]
  assert events.segments(scores, 0.5, min_frames=2) == [Event(1, 2, 2, 0.9), Event(4, 5, 4, 0.7)]
  assert events.segments(scores, 0.5, min_frames=3) == []
  # Merging happens before the length check: runs too short alone make one long enough together.
  assert events.segments(scores, 0.5, min_frames=3, merge_gap=1) == [Event(1, 5, 2, 0.9)]
  assert events.segments([0, 1, 0, 1, 0], 0.5, merge_gap=1, min_frames=3) == [Event(1, 3, 1, 1.0)]


def test_edges_empty_and_nan():
  assert events.segments([], 0.5) == []
  assert events.segments([0.1, 0.2], 0.5) == []
  assert events.segments([1.0, 1.0, 1.0], 0.5) == [Event(0, 2, 0, 1.0)]
  # NaN is never abnormal, and never the peak even inside a merged gap.
  assert events.segments([0.9, np.nan, 0.7], 0.5, merge_gap=1) == [Event(0, 2, 0, 0.9)]
  assert events.segments([0.9, np.nan, 0.7], 0.5) == [Event(0, 0, 0, 0.9), Event(2, 2, 2, 0.7)]


def test_tracker_hands_events_over_once_final():
  scores = [0.1, 0.6, 0.9, 0.2, 0.7, 0.7, 0.1, 0.1, 0.8]
  # merge_gap=0: an event closes on its first normal frame (frame 3 closes 1-2, after 4 frames were seen).
  assert _track(scores, 0.5) == [(Event(1, 2, 2, 0.9), 4), (Event(4, 5, 4, 0.7), 7), (Event(8, 8, 8, 0.8), None)]
  # merge_gap=1: frame 3 may still be bridged; frame 7, the second normal one after frame 5, closes 1-5.
  assert _track(scores, 0.5, merge_gap=1) == [(Event(1, 5, 2, 0.9), 8), (Event(8, 8, 8, 0.8), None)]
  tracker = events.Tracker(0.5, min_frames=2)
  assert [tracker.add(s) for s in [0.9, 0.1, 0.8, 0.8]] == [[], [], [], []]  # frame 0 alone is too short
  assert tracker.open == Event(2, 3, 2, 0.8)
  assert tracker.finish() == [Event(2, 3, 2, 0.8)] and tracker.open is None


@pytest.mark.parametrize("seed", range(6))
def test_tracker_equals_segments(seed):
  rng = np.random.default_rng(seed)
  scores = rng.random(400)
  scores[rng.random(400) < 0.03] = np.nan
  for threshold in (0.3, 0.7, 0.95):
    for min_frames in (1, 2, 5):
      for merge_gap in (0, 1, 3, 10):
        want = events.segments(scores, threshold, min_frames=min_frames, merge_gap=merge_gap)
        got = _track(scores, threshold, min_frames=min_frames, merge_gap=merge_gap)
        assert [e for e, _ in got] == want
        # Handed over exactly when merge_gap + 1 normal frames followed the last abnormal one.
        for e, when in got:
          assert when is None or when == e.end + merge_gap + 2


def test_json_form_times():
  doc = Event(25, 49, 30, 0.75).as_json(25.0)
  assert doc == {
    "start_frame": 25,
    "end_frame": 49,
    "frames": 25,
    "start_seconds": 1.0,
    "end_seconds": 2.0,
    "duration_seconds": 1.0,
    "peak_frame": 30,
    "peak_seconds": 1.2,
    "peak_score": 0.75,
  }
  json.dumps(doc)  # plain Python types only


def test_seconds_to_frames():
  assert events.min_frames(0.5, 25) == 13  # 12 frames last 0.48 s
  assert events.min_frames(0.5, 30) == 15
  assert events.min_frames(0, 25) == 1
  assert events.gap_frames(1.0, 25) == 25
  assert events.gap_frames(0.1, 30) == 3
  assert events.gap_frames(0.0, 25) == 0
  with pytest.raises(UserError, match="--min-duration"):
    events.min_frames(-1, 25)
  with pytest.raises(UserError, match="--merge-gap"):
    events.gap_frames(float("nan"), 25)


def test_bad_arguments_are_one_line_errors():
  with pytest.raises(UserError, match="threshold"):
    events.segments([0.1], float("nan"))
  with pytest.raises(UserError, match="min_frames"):
    events.Tracker(0.5, min_frames=0)
  with pytest.raises(UserError, match="merge_gap"):
    events.segments([0.1], 0.5, merge_gap=-1)
  with pytest.raises(UserError, match="1-D"):
    events.segments(np.zeros((2, 2)), 0.5)
