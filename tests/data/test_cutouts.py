"""A user's cut-out clips (UBnormal-style objects with masks) pasted into training clips, hard or feathered."""

import os

import cv2
import numpy as np
import pytest

from data_pipeline import anomaly_paste
from data_pipeline import cutouts
from data_pipeline.errors import UserError

N, H, W = 5, 30, 20  # one object clip: 5 frames of 30x20 with an object moving right inside


def _write_clip(root, name, n=N):
  folder = os.path.join(root, name)
  os.makedirs(os.path.join(folder, "masks"))
  for f in range(n):
    frame = np.full((H, W, 3), 40, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[10:20, 2 + f : 8 + f] = 255
    frame[mask > 0] = (200, 30, 30)
    cv2.imwrite(os.path.join(folder, f"{f:03d}.png"), frame[..., ::-1])
    cv2.imwrite(os.path.join(folder, "masks", f"{f:03d}.png"), mask)
  return folder


@pytest.fixture
def bank(tmp_path):
  _write_clip(str(tmp_path), "walker")
  _write_clip(str(tmp_path), "runner", n=2)
  return str(tmp_path)


def test_load_crops_each_clip_to_its_object_and_converts_channels(bank):
  clips = cutouts.load(bank, channels=1)
  assert [c.name for c in clips] == ["runner", "walker"]
  walker = clips[1]
  assert walker.frames.shape == (N, 10, 6 + N - 1, 1) and walker.masks.shape == (N, 10, 6 + N - 1)
  assert walker.masks[0, :, :6].all() and not walker.masks[0, :, 6:].any()  # the object moves inside its box
  assert walker.masks[-1, :, N - 1 :].all()
  assert 0.0 <= walker.frames.min() and walker.frames.max() <= 1.0


def test_cutouts_paste_the_clip_frames_and_their_masks(bank):
  clips = np.random.default_rng(0).uniform(size=(4, 3, 48, 48, 1)).astype(np.float32)
  bank_clips = cutouts.load(bank, channels=1)
  out, target, masks = anomaly_paste.paste_anomalies(
    clips, seed=1, step=2, p=1.0, source="cutouts", cutouts=bank_clips, size=(0.3, 0.4), speed=(0.0, 0.0)
  )
  np.testing.assert_array_equal(target, clips[:, 1])
  untouched = np.broadcast_to((masks == 0)[..., None], clips.shape)
  np.testing.assert_array_equal(out[untouched], clips[untouched])  # hard: only the silhouette changes
  assert masks[:, 1].reshape(4, -1).any(1).all()
  # Standing still, the silhouette still changes between frames when the clip's object moves (the walker does).
  moved = [not np.array_equal(masks[i, 0], masks[i, 2]) for i in range(4)]
  assert any(moved)


def test_feathering_softens_the_edge_and_keeps_the_map_binary():
  clips = np.zeros((2, 3, 40, 40, 1), np.float32)
  hard = anomaly_paste.paste_anomalies(clips, seed=5, step=0, p=1.0, source="sprites", blend="hard")
  soft = anomaly_paste.paste_anomalies(clips, seed=5, step=0, p=1.0, source="sprites", blend="feather")
  np.testing.assert_array_equal(hard[2], soft[2])  # same draws, same anomaly map
  assert set(np.unique(soft[2])) <= {0.0, 1.0}
  inside = soft[2][..., None] > 0
  ratio = soft[0][inside] / np.maximum(hard[0][inside], 1e-6)
  assert ratio.min() >= 0.5 - 1e-6 and ratio.min() < 0.99  # edge pixels are mixed, none below half the object
  assert np.isclose(ratio.max(), 1.0, atol=1e-3)  # the object's core is the object


def test_uint8_clips_take_cutouts(bank):
  clips = np.zeros((2, 3, 32, 32, 3), np.uint8)
  out, _, masks = anomaly_paste.paste_anomalies(
    clips, seed=0, step=0, p=1.0, source="cutouts", cutouts=cutouts.load(bank, channels=3), blend="feather"
  )
  assert out.dtype == np.uint8 and masks.sum() > 0
  assert out[..., 0][masks > 0].mean() > 100  # the red object, at 0-255


@pytest.mark.parametrize(
  "break_it, match",
  [
    (lambda d: os.remove(os.path.join(d, "walker", "masks", "001.png")), "001.png: missing"),
    (lambda d: os.rename(os.path.join(d, "walker", "masks"), os.path.join(d, "walker", "m")), "no masks/ folder"),
  ],
)
def test_broken_clip_folders_are_one_line_errors(bank, break_it, match):
  break_it(bank)
  with pytest.raises(UserError, match=match):
    cutouts.load(bank, channels=1)


def test_missing_folder_and_channel_mismatch(bank, tmp_path):
  with pytest.raises(UserError, match="train.paste_dir"):
    cutouts.load(str(tmp_path / "nope"), channels=1)
  with pytest.raises(UserError, match="3 channels"):
    anomaly_paste.paste_anomalies(
      np.zeros((1, 3, 32, 32, 1), np.float32),
      seed=0,
      step=0,
      p=1.0,
      source="cutouts",
      cutouts=cutouts.load(bank, channels=3),
    )
