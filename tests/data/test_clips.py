"""Clip plans: windows, shuffling, resumption, process shares, eval coverage."""

import numpy as np
import pytest

from data_pipeline import clips
from maskedskip_jax.errors import UserError

LENGTHS = (7, 5, 9)


def _video_of(frame_index, lengths=LENGTHS):
  return np.searchsorted(np.cumsum(lengths), frame_index, side="right")


@pytest.mark.parametrize("temporal,stride", [(3, 1), (3, 2), (1, 1), (5, 3)])
def test_train_windows_count_and_stay_inside_one_video(temporal, stride):
  starts = clips.train_windows(LENGTHS, temporal, stride)
  expected = sum(len(range(0, n - temporal + 1, stride)) for n in LENGTHS)
  assert len(starts) == expected
  assert len(set(starts.tolist())) == expected
  first, last = _video_of(starts), _video_of(starts + temporal - 1)
  np.testing.assert_array_equal(first, last)
  # Consecutive windows of one video are `stride` apart.
  offsets = clips.offsets_of(LENGTHS)
  for v in range(len(LENGTHS)):
    local = starts[first == v] - offsets[v]
    np.testing.assert_array_equal(local, np.arange(len(local)) * stride)


def test_video_shorter_than_clip_is_a_user_error_naming_it():
  with pytest.raises(UserError, match=r"Test002.*temporal=6"):
    clips.train_windows((7, 5), 6, names=("Test001", "Test002"))


def test_too_few_windows_for_one_batch():
  with pytest.raises(UserError, match="global batch of 64"):
    clips.steps_per_epoch(10, 64)
  assert clips.steps_per_epoch(10, 3) == 3


def test_epoch_order_is_seeded_by_seed_and_epoch():
  a = clips.epoch_order(50, seed=1, epoch=0)
  assert sorted(a.tolist()) == list(range(50))
  np.testing.assert_array_equal(a, clips.epoch_order(50, seed=1, epoch=0))
  assert not np.array_equal(a, clips.epoch_order(50, seed=1, epoch=1))
  assert not np.array_equal(a, clips.epoch_order(50, seed=2, epoch=0))


def test_an_epoch_visits_distinct_windows_and_steps_continue_across_epochs():
  starts = clips.train_windows(LENGTHS, 3)
  plan = clips.TrainPlan(starts, 4, 3, seed=3)
  spe = plan.steps_per_epoch
  assert spe == len(starts) // 4
  epoch0 = np.concatenate([plan.rows(s) for s in range(spe)])
  assert len(set(epoch0.tolist())) == spe * 4
  np.testing.assert_array_equal(epoch0, clips.epoch_order(len(starts), 3, 0)[: spe * 4])
  np.testing.assert_array_equal(plan.rows(spe + 1), clips.epoch_order(len(starts), 3, 1)[4:8])


def test_a_fresh_plan_gives_the_same_step_batches_in_any_order():
  starts = clips.train_windows(LENGTHS, 3)
  plan = clips.TrainPlan(starts, 4, 3, seed=5)
  steps = list(range(12))
  ordered = [plan.frame_indices(s) for s in steps]
  other = clips.TrainPlan(starts, 4, 3, seed=5)
  for s in reversed(steps):  # Crosses epochs backwards: no state leaks.
    np.testing.assert_array_equal(other.frame_indices(s), ordered[s])


def test_process_shares_are_disjoint_and_make_up_the_global_batch():
  starts = clips.train_windows(LENGTHS, 3)
  whole = clips.TrainPlan(starts, 6, 3, seed=0)
  shares = [clips.TrainPlan(starts, 6, 3, seed=0, process_index=i, process_count=2) for i in range(2)]
  for step in range(5):
    a, b = (p.rows(step) for p in shares)
    assert len(a) == len(b) == 3
    assert not set(a.tolist()) & set(b.tolist())
    np.testing.assert_array_equal(np.concatenate([a, b]), whole.rows(step))


def test_batch_not_divisible_by_processes_is_rejected():
  starts = clips.train_windows(LENGTHS, 3)
  with pytest.raises(UserError, match="divisible"):
    clips.TrainPlan(starts, 5, 3, process_count=2)


def test_train_frame_indices_are_consecutive_frames():
  starts = clips.train_windows(LENGTHS, 3)
  idx = clips.TrainPlan(starts, 4, 3).frame_indices(2)
  assert idx.shape == (4, 3)
  np.testing.assert_array_equal(np.diff(idx, axis=1), 1)


def test_eval_plan_centres_every_frame_once_with_edge_replication():
  labels = [np.arange(n) % 2 for n in LENGTHS]
  labels[1] = None
  plan = clips.EvalPlan(LENGTHS, batch_size=4, temporal=5, labels=labels)
  batches = [plan.batch(i) for i in range(plan.num_batches)]
  cat = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
  valid = cat["valid"]
  assert plan.num_batches == -(-sum(LENGTHS) // 4)
  assert valid.sum() == sum(LENGTHS) and valid[: sum(LENGTHS)].all()
  video, frame, idx = cat["video"][valid], cat["frame"][valid], cat["indices"][valid]
  offsets = clips.offsets_of(LENGTHS)
  expected = [(v, f) for v, n in enumerate(LENGTHS) for f in range(n)]
  assert list(zip(video.tolist(), frame.tolist())) == expected
  # The centre tap is the frame itself; taps are clamped to the video.
  np.testing.assert_array_equal(idx[:, 2], offsets[video] + frame)
  for v, n in enumerate(LENGTHS):
    rows = idx[video == v] - offsets[v]
    np.testing.assert_array_equal(rows[0], [0, 0, 0, 1, 2])
    np.testing.assert_array_equal(rows[-1], [n - 3, n - 2, n - 1, n - 1, n - 1])
    np.testing.assert_array_equal(rows[2], [0, 1, 2, 3, 4])
  label = cat["label"][valid]
  np.testing.assert_array_equal(label[video == 0], labels[0])
  np.testing.assert_array_equal(label[video == 1], -1)
  np.testing.assert_array_equal(label[video == 2], labels[2])
  # Padding rows say so in every field.
  assert (cat["video"][~valid] == -1).all() and (cat["label"][~valid] == -1).all()
  assert all(len(b["valid"]) == 4 for b in batches)


def test_eval_needs_odd_temporal():
  with pytest.raises(UserError, match="odd"):
    clips.EvalPlan(LENGTHS, 4, 2)
