"""UCSD Ped1/Ped2 (data_pipeline.sources.ucsd): the .m ground truth, mask folders, where the root may point."""

import os

import numpy as np
import pytest

from data_pipeline import frame_io
from data_pipeline import registry
from data_pipeline.sources import ucsd
from maskedskip_jax.errors import UserError
from tests import fake_layouts


def test_ucsd_labels_masks_and_root_forms(tmp_path):
  base = fake_layouts.make_ucsd(str(tmp_path), ped=2, gt_lines=("[2:4]", "[1:2, 6:8]"))
  from_parent = ucsd.list_videos(str(tmp_path), "test", ped=2)
  from_base = registry.list_videos("ucsd_ped2", base, "test")
  assert fake_layouts.summary(from_parent) == fake_layouts.summary(from_base)
  one, two = from_parent  # Test001_gt is not a video
  assert (one.name, two.name) == ("Test001", "Test002")
  np.testing.assert_array_equal(one.labels, [0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(two.labels, [1, 1, 0, 0, 0, 1, 1, 1])
  masks = one.mask_loader()
  assert masks.shape == (6, *fake_layouts.SIZE)
  np.testing.assert_array_equal(masks.any(axis=(1, 2)), one.labels)
  assert two.mask_loader is None
  train = ucsd.list_videos(base, "train", ped=2)
  assert [(v.name, v.num_frames) for v in train] == [("Train001", 4), ("Train002", 5)]
  assert os.path.basename(train[0].frame_paths[0]) == "001.tif"
  frame = next(frame_io.iter_frames(train[0]))
  assert frame.shape == fake_layouts.SIZE


def test_ucsd_ped1_single_frames_and_empty_entry(tmp_path):
  fake_layouts.make_ucsd(str(tmp_path), ped=1, test=(6, 5, 4), gt_lines=("[3, 5 : 6]", "[]", "[1:4]"), mask_videos=())
  videos = registry.list_videos("ucsd_ped1", str(tmp_path), "test")
  assert fake_layouts.summary(videos) == [
    ("Test001", 6, [0, 0, 1, 0, 1, 1]),
    ("Test002", 5, [0] * 5),
    ("Test003", 4, [1] * 4),
  ]


@pytest.mark.parametrize(
  "gt_lines,message",
  [
    (("[2:4]", "[5:9]"), r"UCSDped2\.m entry 2 \(Test002\).*outside"),
    (("[5:3]", "[1:2]"), r"UCSDped2\.m entry 1 \(Test001\).*start > end"),
    (("[0:3]", "[1:2]"), r"UCSDped2\.m entry 1 .*outside"),
    (("[2:4]", "[1:2]", "[1:3]"), r"UCSDped2\.m: 3 .*entry 3 has no"),
    (("[2:4]",), r"UCSDped2\.m: 1 .*Test002 has no entry"),
    (("[2:4]", "[1:2:8]"), r"UCSDped2\.m entry 2 .*'1:2:8'"),
  ],
)
def test_ucsd_strict_gt_parsing(tmp_path, gt_lines, message):
  fake_layouts.make_ucsd(str(tmp_path), gt_lines=gt_lines, mask_videos=())
  with pytest.raises(UserError, match=message):
    ucsd.list_videos(str(tmp_path), "test")


def test_ucsd_mask_folder_count_and_missing_script(tmp_path):
  base = fake_layouts.make_ucsd(str(tmp_path))
  os.remove(os.path.join(base, "Test", "Test001_gt", "003.bmp"))
  with pytest.raises(
    UserError,
    match=r"Test001_gt: found 5 mask images, "
    r"expected 6",
  ):
    ucsd.list_videos(base, "test")
  os.remove(os.path.join(base, "Test", "UCSDped2.m"))
  with pytest.raises(UserError, match=r"UCSDped2\.m: ground-truth file"):
    ucsd.list_videos(base, "test")
  assert len(ucsd.list_videos(base, "train")) == 2  # train needs no .m
  with pytest.raises(UserError, match="no UCSDped1 folder"):
    ucsd.list_videos(str(tmp_path), "train", ped=1)
