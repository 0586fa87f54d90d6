"""CUHK Avenue (data_pipeline.sources.avenue): where the root may point, volLabel .mat files, damaged videos."""

import os

import numpy as np
import pytest
import scipy.io

from data_pipeline.sources import avenue
from maskedskip_jax.errors import UserError
from tests import fake_layouts


@pytest.mark.parametrize("form", ["parent", "dataset_folder", "flat"])
def test_avenue_root_forms(tmp_path, form):
  fake_layouts.make_avenue(str(tmp_path), nested=form != "flat")
  root = tmp_path / "Avenue Dataset" if form == "dataset_folder" else tmp_path
  train = avenue.list_videos(str(root), "train")
  assert [(v.name, v.num_frames) for v in train] == [("01", 5)]
  one, two = avenue.list_videos(str(root), "test")
  assert (one.name, one.num_frames, two.num_frames) == ("01", 6, 7)
  np.testing.assert_array_equal(one.labels, [0, 0, 0, 0, 1, 1])
  np.testing.assert_array_equal(two.labels, [0, 0, 0, 0, 0, 1, 1])
  masks = two.mask_loader()
  assert masks.shape == (7, *fake_layouts.SIZE) and masks.dtype == np.uint8
  np.testing.assert_array_equal(masks.any(axis=(1, 2)), two.labels)


def test_avenue_labels_for_a_subset(tmp_path):
  fake_layouts.make_avenue(str(tmp_path), test=(4, 5, 6), labels={2: [1, 0, 0, 1, 0]})
  videos = avenue.list_videos(str(tmp_path), "test")
  assert fake_layouts.summary(videos) == [("01", 4, None), ("02", 5, [1, 0, 0, 1, 0]), ("03", 6, None)]


def test_avenue_mask_count_mismatch(tmp_path):
  fake_layouts.make_avenue(str(tmp_path), test=(6,), labels={1: [0] * 5})
  with pytest.raises(
    UserError,
    match=r"1_label\.mat: found 5 masks, "
    r"expected 6",
  ):
    avenue.list_videos(str(tmp_path), "test")


def test_avenue_mat_without_vollabel(tmp_path):
  fake_layouts.make_avenue(str(tmp_path), test=(6,), labels={})
  path = tmp_path / "ground_truth_demo" / "testing_label_mask" / "1_label.mat"
  os.makedirs(path.parent)
  scipy.io.savemat(str(path), {"other": np.zeros(3)})
  with pytest.raises(UserError, match=r"1_label\.mat: no variable 'volLabel'"):
    avenue.list_videos(str(tmp_path), "test")


def test_avenue_truncated_video(tmp_path):
  fake_layouts.make_avenue(str(tmp_path), train=(30,), labels={})
  path = tmp_path / "Avenue Dataset" / "training_videos" / "01.avi"
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  with pytest.raises(UserError, match=r"01\.avi.*read \d+ frames"):
    avenue.list_videos(str(tmp_path), "train")
