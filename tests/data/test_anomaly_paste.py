"""Synthetic-anomaly pasting: only masked input pixels change, the target never does, seeded and resumable."""

import numpy as np
import pytest

from data_pipeline import anomaly_paste
from maskedskip_jax.errors import UserError


def _clips(b=6, t=3, h=32, w=40, c=3, seed=0):
  return np.random.default_rng(seed).uniform(size=(b, t, h, w, c)).astype(np.float32)


@pytest.mark.parametrize("source", [s for s in anomaly_paste.SOURCES if s != "cutouts"])  # test_cutouts.py
def test_only_masked_pixels_change_and_target_is_the_clean_centre(source):
  clips = _clips()
  before = clips.copy()
  clips_in, target, masks = anomaly_paste.paste_anomalies(clips, seed=3, step=7, p=1.0, source=source, max_objects=2)
  np.testing.assert_array_equal(clips, before)  # the input is never modified
  assert clips_in.shape == clips.shape and clips_in.dtype == clips.dtype
  assert masks.shape == clips.shape[:4] and set(np.unique(masks)) <= {0.0, 1.0}
  untouched = np.broadcast_to((masks == 0)[..., None], clips.shape)
  np.testing.assert_array_equal(clips_in[untouched], clips[untouched])
  # Random-valued clips: a replaced pixel differs from the original almost surely.
  assert (clips_in != clips).any(-1).sum() >= 0.99 * masks.sum()
  np.testing.assert_array_equal(target, clips[:, 1])
  assert masks[:, 1].reshape(len(clips), -1).any(1).all()  # p = 1: every centre frame got an object


def test_batch_source_pastes_pixels_of_another_clip():
  # Constant clips: whatever lands in clip 0 must come from clip 1, and vice versa.
  clips = np.stack([np.zeros((3, 24, 24, 1)), np.ones((3, 24, 24, 1))]).astype(np.float32)
  clips_in, _, masks = anomaly_paste.paste_anomalies(clips, seed=0, step=0, p=1.0, source="batch")
  np.testing.assert_array_equal(clips_in[..., 0] != clips[..., 0], masks == 1)
  assert (clips_in[0][masks[0] == 1] == 1).all() and (clips_in[1][masks[1] == 1] == 0).all()
  assert masks[0].any() and masks[1].any()


def test_p0_changes_nothing():
  clips = _clips()
  clips_in, target, masks = anomaly_paste.paste_anomalies(clips, seed=1, step=2, p=0.0)
  np.testing.assert_array_equal(clips_in, clips)
  np.testing.assert_array_equal(target, clips[:, 1])
  assert not masks.any()


def test_objects_move_in_a_straight_line():
  clips = _clips(b=40, t=5, h=64, w=64)
  _, _, masks = anomaly_paste.paste_anomalies(
    clips, seed=5, step=0, p=1.0, source="sprites", size=(0.1, 0.2), speed=(0.02, 0.04)
  )
  checked = 0
  for m in masks:
    areas = m.sum((1, 2))
    if not (areas == areas[2]).all():
      continue  # clipped by the frame border at some time step
    centroids = np.array([np.argwhere(f).mean(0) for f in m])
    steps = np.diff(centroids, axis=0)
    assert np.abs(steps - steps.mean(0)).max() <= 1.0  # constant velocity up to pixel rounding
    assert np.linalg.norm(steps.mean(0)) >= 0.02 * 64 - 1.0
    checked += 1
  assert checked >= 20


def test_seeded_per_step_and_split_invariant():
  clips = _clips(b=8)
  a = anomaly_paste.paste_anomalies(clips, seed=11, step=100, p=0.5)
  b = anomaly_paste.paste_anomalies(clips, seed=11, step=100, p=0.5)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  other = anomaly_paste.paste_anomalies(clips, seed=11, step=101, p=0.5)
  assert not np.array_equal(a[2], other[2])
  # A process holding rows 4..7 of the global batch pastes what the single process pasted there.
  whole = anomaly_paste.paste_anomalies(clips, seed=11, step=100, p=0.7, source="sprites")
  part = anomaly_paste.paste_anomalies(clips[4:], seed=11, step=100, p=0.7, source="sprites", row_offset=4)
  np.testing.assert_array_equal(part[0], whole[0][4:])
  np.testing.assert_array_equal(part[2], whole[2][4:])


def test_rate_follows_p_and_uint8_clips_work():
  clips = (_clips(b=200, h=16, w=16, c=1) * 255).astype(np.uint8)
  clips_in, target, masks = anomaly_paste.paste_anomalies(clips, seed=0, step=0, p=0.3)
  rate = masks.reshape(200, -1).any(1).mean()
  assert 0.2 < rate < 0.4
  assert clips_in.dtype == np.uint8 and target.dtype == np.uint8


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(p=1.5),
    dict(p=0.5, source="ubnormal"),
    dict(p=0.5, size=(0.5, 0.1)),
    dict(p=0.5, max_objects=0),
    dict(p=0.5, blend="soft"),
    dict(p=0.5, source="cutouts"),
  ],
)
def test_bad_settings_raise_user_error(kwargs):
  with pytest.raises(UserError):
    anomaly_paste.paste_anomalies(_clips(), seed=0, step=0, **kwargs)
  with pytest.raises(UserError):
    anomaly_paste.paste_anomalies(_clips()[0], seed=0, step=0, p=0.5)
