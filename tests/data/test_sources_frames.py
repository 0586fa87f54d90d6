"""The frames layout (data_pipeline.sources.frames): each published form of its label file."""

import json
import os
import pickle

import numpy as np
import pytest
import scipy.io

from data_pipeline import registry
from data_pipeline.sources import frames
from maskedskip_jax.errors import UserError
from tests import fake_layouts


def test_frames_mat_cells_with_multiple_ranges(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "ped1"))
  gt = np.empty((1, 2), object)
  gt[0, 0] = np.array([[2], [4]])  # [start; end]
  gt[0, 1] = np.array([[1, 9], [2, 12]])  # pairs (1, 2) and (9, 12)
  scipy.io.savemat(os.path.join(root, "ped1.mat"), {"gt": gt})
  (train,) = frames.list_videos(root, "train")
  assert os.path.basename(train.frame_paths[0]) == "0.jpg"
  one, two = registry.list_videos("frames", root, "test")
  assert [os.path.basename(p) for p in two.frame_paths] == [f"{k}.jpg" for k in range(12)]
  np.testing.assert_array_equal(one.labels, [0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(two.labels, [1, 1] + [0] * 6 + [1] * 4)


def test_frames_mat_matrix_and_errors(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "ped2"))
  mat = os.path.join(root, "ped2.mat")
  scipy.io.savemat(mat, {"gt": np.array([[5, 6], [10, 12]])})
  one, two = frames.list_videos(root, "test")
  assert one.labels.tolist() == [0, 0, 0, 0, 1, 1]
  assert two.labels.tolist() == [0] * 9 + [1] * 3
  scipy.io.savemat(mat, {"gt": np.array([[5, 7], [10, 12]])})
  with pytest.raises(UserError, match=r"ped2\.mat entry 1 \(01\).*outside"):
    frames.list_videos(root, "test")
  gt = np.empty((1, 3), object)
  for i in range(3):
    gt[0, i] = np.array([[1], [2]])
  scipy.io.savemat(mat, {"gt": gt})
  with pytest.raises(
    UserError,
    match=r"ped2\.mat: found 3 gt entries, "
    r"expected 2",
  ):
    frames.list_videos(root, "test")


def test_frames_concatenated_npy(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "avenue"))
  expected = np.arange(18) % 3 == 0
  path = os.path.join(root, "frame_labels_avenue.npy")
  np.save(path, expected.astype(np.int64)[None])  # (1, total) as published
  one, two = frames.list_videos(root, "test")
  np.testing.assert_array_equal(np.concatenate([one.labels, two.labels]), expected)
  np.save(path, np.zeros(17))
  with pytest.raises(
    UserError,
    match=r"frame_labels_avenue\.npy: found "
    r"labels of shape \(17,\), expected \(18,\)",
  ):
    frames.list_videos(root, "test")


def test_frames_per_video_masks_win(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "x"))
  np.save(os.path.join(root, "frame_labels_x.npy"), np.ones(18))
  os.makedirs(os.path.join(root, "testing", "test_frame_mask"))
  np.save(os.path.join(root, "testing", "test_frame_mask", "01.npy"), np.array([1, 0, 1, 0, 1, 0]))
  one, two = frames.list_videos(root, "test")
  assert one.labels.tolist() == [1, 0, 1, 0, 1, 0]
  assert two.labels is None


@pytest.mark.parametrize("form", ["pickle_flat", "pickle_list", "json"])
def test_frames_gt_label_json(tmp_path, form):
  root = fake_layouts.make_frames_layout(str(tmp_path / "x"))
  per_video = [np.array([0, 0, 1, 1, 0, 0]), np.arange(12) % 2]
  path = os.path.join(root, "gt_label.json")
  if form == "json":
    with open(path, "w") as f:
      json.dump([y.tolist() for y in per_video], f)
  else:
    value = np.concatenate(per_video) if form == "pickle_flat" else per_video
    with open(path, "wb") as f:
      pickle.dump(value, f)
  one, two = frames.list_videos(root, "test")
  np.testing.assert_array_equal(one.labels, per_video[0])
  np.testing.assert_array_equal(two.labels, per_video[1])


class _Payload:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f"touch {self.marker}",)


def test_frames_gt_label_pickle_that_runs_code_is_refused(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "x"))
  marker = tmp_path / "pwned"
  path = os.path.join(root, "gt_label.json")
  with open(path, "wb") as f:
    pickle.dump([np.zeros(6), _Payload(marker)], f)
  with pytest.raises(UserError, match=r"gt_label\.json: refused.*system"):
    frames.list_videos(root, "test")
  assert not marker.exists()
  # The payload is live: a plain unpickler would have run it.
  with open(path, "rb") as f:
    pickle.load(f)  # only touches a file under tmp_path
  assert marker.exists()
