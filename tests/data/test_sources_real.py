"""The sources on the real dev footage in ../shared/data (skipped where it is absent)."""

import os

import numpy as np
import pytest
import scipy.io

from data_pipeline import frame_io
from data_pipeline import registry

_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
PED2_DEV = os.path.join(_DATA, "ped2_dev")
AVENUE_DEV = os.path.join(_DATA, "avenue_dev")


@pytest.mark.skipif(not os.path.isdir(PED2_DEV), reason="no ped2_dev")
def test_real_ped2_dev():
  test = registry.list_videos("generic", PED2_DEV, "test")
  assert [(v.name, v.num_frames) for v in test] == [("01", 180), ("04", 180), ("07", 180)]
  expected = np.zeros(180, np.uint8)
  expected[60:180] = 1  # UCSDped2.m [61:180], 1-based inclusive
  np.testing.assert_array_equal(test[0].labels, expected)
  assert os.path.basename(test[0].frame_paths[0]) == "000.jpg"
  assert frame_io.read_frame(test[0].frame_paths[0]).shape == (240, 360, 3)
  train = registry.list_videos("generic", PED2_DEV, "train")
  assert len(train) == 6 and all(v.labels is None for v in train)


@pytest.mark.skipif(not os.path.isdir(AVENUE_DEV), reason="no avenue_dev")
def test_real_avenue_dev():
  mat = os.path.join(AVENUE_DEV, "ground_truth_demo", "testing_label_mask", "21_label.mat")
  cells = scipy.io.loadmat(mat)["volLabel"].reshape(-1)
  expected = np.array([np.count_nonzero(m) > 0 for m in cells], np.uint8)
  for root in (AVENUE_DEV, os.path.join(AVENUE_DEV, "Avenue Dataset")):
    (video,) = registry.list_videos("cuhk_avenue", root, "test")
    assert (video.name, video.num_frames) == ("21", 76)
    np.testing.assert_array_equal(video.labels, expected)
  assert 0 < expected.sum() < 76
  assert video.mask_loader().shape == (76, 360, 640)
  (train,) = registry.list_videos("cuhk_avenue", AVENUE_DEV, "train")
  assert (train.name, train.num_frames) == ("12", 145)
