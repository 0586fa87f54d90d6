"""Tests for the dataset sources and the registry, on fake trees and real dev data."""

import json
import os
import pickle

import numpy as np
import pytest
import scipy.io

from data_pipeline import frame_io
from data_pipeline import registry
from data_pipeline.sources import avenue
from data_pipeline.sources import frames
from data_pipeline.sources import generic
from data_pipeline.sources import shanghaitech
from data_pipeline.sources import ucsd
from maskedskip_jax.errors import UserError
from tests import fake_layouts

_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
PED2_DEV = os.path.join(_DATA, "ped2_dev")
AVENUE_DEV = os.path.join(_DATA, "avenue_dev")


def _summary(videos):
  return [(v.name, v.num_frames,
           None if v.labels is None else v.labels.tolist()) for v in videos]


# ---------------------------------------------------------------- generic


def test_generic_frames_labels_masks_and_natural_order(tmp_path):
  root = fake_layouts.make_generic(
      str(tmp_path), train=(("10", 4),), test=(("01", 6),),
      labels={"01": [0, 1, 1, 0, 0, 1]})
  fake_layouts.write_frames(str(tmp_path / "train" / "2"), 12, digits=1)
  train = generic.list_videos(root, "train")
  assert [v.name for v in train] == ["2", "10"]  # natural, not '10' < '2'
  names = [os.path.basename(p) for p in train[0].frame_paths]
  assert names == [f"{k}.jpg" for k in range(12)]
  assert all(v.labels is None and v.mask_loader is None for v in train)
  (test,) = generic.list_videos(root, "test")
  assert (test.name, test.num_frames) == ("01", 6)
  np.testing.assert_array_equal(test.labels, [0, 1, 1, 0, 0, 1])
  masks = test.mask_loader()
  assert masks.shape == (6, *fake_layouts.SIZE) and masks.dtype == np.uint8
  np.testing.assert_array_equal(masks.any(axis=(1, 2)), test.labels)


def test_generic_video_files_npy_labels_and_missing_labels(tmp_path):
  root = fake_layouts.make_generic(
      str(tmp_path), train=(("a", 4), ("b", 7)), test=(("x", 5), ("y", 3)),
      video_files=("b", "y"), masks=False)
  os.remove(tmp_path / "test" / "x.txt")
  np.save(tmp_path / "test" / "x.npy", np.array([1, 0, 0, 0, 1]))
  os.remove(tmp_path / "test" / "y.txt")
  train = generic.list_videos(root, "train")
  assert [(v.name, v.num_frames, v.is_container) for v in train] == [
      ("a", 4, False), ("b", 7, True)]
  assert train[1].video_path.endswith("b.avi")
  x, y = generic.list_videos(root, "test")
  np.testing.assert_array_equal(x.labels, [1, 0, 0, 0, 1])
  assert y.labels is None and y.num_frames == 3


@pytest.mark.parametrize("content,message", [
    ("0 1 1 0 1", r"01\.txt: found 5 labels, expected 6"),
    ("0 1 1 0 1 1 0", r"01\.txt: found 7 labels, expected 6"),
    ("0 1 2 0 1 1", r"01\.txt: label '2'"),
])
def test_generic_bad_label_file(tmp_path, content, message):
  root = fake_layouts.make_generic(str(tmp_path))
  (tmp_path / "test" / "01.txt").write_text(content)
  with pytest.raises(UserError, match=message):
    generic.list_videos(root, "test")


def test_generic_bad_mask_file(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path))
  np.save(tmp_path / "test" / "01_mask.npy", np.zeros((5, 4, 4), np.uint8))
  with pytest.raises(UserError, match=r"01_mask\.npy.*\(6, H, W\)"):
    generic.list_videos(root, "test")


def test_generic_refuses_pickled_npy(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path))
  os.remove(tmp_path / "test" / "01.txt")
  np.save(tmp_path / "test" / "01.npy", np.array([[0]] * 6, dtype=object))
  with pytest.raises(UserError, match=r"01\.npy"):
    generic.list_videos(root, "test")


def test_generic_layout_errors(tmp_path):
  with pytest.raises(UserError, match="missing"):
    generic.list_videos(str(tmp_path / "missing"), "train")
  root = fake_layouts.make_generic(str(tmp_path / "d"))
  os.makedirs(tmp_path / "d" / "train" / "empty")
  with pytest.raises(UserError, match=r"empty: empty video folder"):
    generic.list_videos(root, "train")
  with pytest.raises(UserError, match="split 'val'"):
    generic.list_videos(root, "val")
  os.rename(tmp_path / "d" / "test", tmp_path / "d" / "other")
  with pytest.raises(UserError, match=r"d/test: test split folder not found"):
    generic.list_videos(root, "test")


def test_generic_ambiguous_files(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path))
  np.save(tmp_path / "test" / "01.npy", np.zeros(6))
  with pytest.raises(UserError, match=r"01\.(txt|npy)"):
    generic.list_videos(root, "test")
  os.remove(tmp_path / "test" / "01.npy")
  fake_layouts.write_avi(str(tmp_path / "test" / "01.avi"), 6)
  with pytest.raises(UserError, match=r"01\.avi.*both"):
    generic.list_videos(root, "test")


# ---------------------------------------------------------------- UCSD


def test_ucsd_labels_masks_and_root_forms(tmp_path):
  base = fake_layouts.make_ucsd(str(tmp_path), ped=2,
                                gt_lines=("[2:4]", "[1:2, 6:8]"))
  from_parent = ucsd.list_videos(str(tmp_path), "test", ped=2)
  from_base = registry.list_videos("ucsd_ped2", base, "test")
  assert _summary(from_parent) == _summary(from_base)
  one, two = from_parent  # Test001_gt is not a video
  assert (one.name, two.name) == ("Test001", "Test002")
  np.testing.assert_array_equal(one.labels, [0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(two.labels, [1, 1, 0, 0, 0, 1, 1, 1])
  masks = one.mask_loader()
  assert masks.shape == (6, *fake_layouts.SIZE)
  np.testing.assert_array_equal(masks.any(axis=(1, 2)), one.labels)
  assert two.mask_loader is None
  train = ucsd.list_videos(base, "train", ped=2)
  assert [(v.name, v.num_frames) for v in train] == [("Train001", 4),
                                                     ("Train002", 5)]
  assert os.path.basename(train[0].frame_paths[0]) == "001.tif"
  frame = next(frame_io.iter_frames(train[0]))
  assert frame.shape == fake_layouts.SIZE


def test_ucsd_ped1_single_frames_and_empty_entry(tmp_path):
  fake_layouts.make_ucsd(str(tmp_path), ped=1, test=(6, 5, 4),
                         gt_lines=("[3, 5 : 6]", "[]", "[1:4]"),
                         mask_videos=())
  videos = registry.list_videos("ucsd_ped1", str(tmp_path), "test")
  assert _summary(videos) == [("Test001", 6, [0, 0, 1, 0, 1, 1]),
                              ("Test002", 5, [0] * 5),
                              ("Test003", 4, [1] * 4)]


@pytest.mark.parametrize("gt_lines,message", [
    (("[2:4]", "[5:9]"), r"UCSDped2\.m entry 2 \(Test002\).*outside"),
    (("[5:3]", "[1:2]"), r"UCSDped2\.m entry 1 \(Test001\).*start > end"),
    (("[0:3]", "[1:2]"), r"UCSDped2\.m entry 1 .*outside"),
    (("[2:4]", "[1:2]", "[1:3]"), r"UCSDped2\.m: 3 .*entry 3 has no"),
    (("[2:4]",), r"UCSDped2\.m: 1 .*Test002 has no entry"),
    (("[2:4]", "[1:2:8]"), r"UCSDped2\.m entry 2 .*'1:2:8'"),
])
def test_ucsd_strict_gt_parsing(tmp_path, gt_lines, message):
  fake_layouts.make_ucsd(str(tmp_path), gt_lines=gt_lines, mask_videos=())
  with pytest.raises(UserError, match=message):
    ucsd.list_videos(str(tmp_path), "test")


def test_ucsd_mask_folder_count_and_missing_script(tmp_path):
  base = fake_layouts.make_ucsd(str(tmp_path))
  os.remove(os.path.join(base, "Test", "Test001_gt", "003.bmp"))
  with pytest.raises(UserError, match=r"Test001_gt: found 5 mask images, "
                     r"expected 6"):
    ucsd.list_videos(base, "test")
  os.remove(os.path.join(base, "Test", "UCSDped2.m"))
  with pytest.raises(UserError, match=r"UCSDped2\.m: ground-truth file"):
    ucsd.list_videos(base, "test")
  assert len(ucsd.list_videos(base, "train")) == 2  # train needs no .m
  with pytest.raises(UserError, match="no UCSDped1 folder"):
    ucsd.list_videos(str(tmp_path), "train", ped=1)


# ---------------------------------------------------------------- Avenue


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
  fake_layouts.make_avenue(str(tmp_path), test=(4, 5, 6),
                           labels={2: [1, 0, 0, 1, 0]})
  videos = avenue.list_videos(str(tmp_path), "test")
  assert _summary(videos) == [("01", 4, None), ("02", 5, [1, 0, 0, 1, 0]),
                              ("03", 6, None)]


def test_avenue_mask_count_mismatch(tmp_path):
  fake_layouts.make_avenue(str(tmp_path), test=(6,), labels={1: [0] * 5})
  with pytest.raises(UserError, match=r"1_label\.mat: found 5 masks, "
                     r"expected 6"):
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
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  with pytest.raises(UserError, match=r"01\.avi.*read \d+ frames"):
    avenue.list_videos(str(tmp_path), "train")


# ---------------------------------------------------------------- ShanghaiTech


def test_shanghaitech_layout(tmp_path):
  root = fake_layouts.make_shanghaitech(str(tmp_path))
  (train,) = shanghaitech.list_videos(root, "train")
  assert (train.name, train.num_frames, train.is_container) == ("01_001", 5,
                                                                True)
  a, b = registry.list_videos("shanghaitech", root, "test")
  assert _summary([a, b]) == [("01_0014", 6, [0, 1, 1, 0, 0, 0]),
                              ("02_0128", 4, [0, 1, 1, 0])]
  np.testing.assert_array_equal(a.mask_loader().any(axis=(1, 2)), a.labels)


def test_shanghaitech_bad_ground_truth(tmp_path):
  root = fake_layouts.make_shanghaitech(str(tmp_path))
  gt = tmp_path / "testing" / "test_pixel_mask" / "02_0128.npy"
  np.save(gt, np.zeros((3, 4, 4), np.uint8))
  with pytest.raises(UserError, match=r"02_0128\.npy.*\(4, H, W\)"):
    shanghaitech.list_videos(root, "test")
  gt = tmp_path / "testing" / "test_frame_mask" / "01_0014.npy"
  np.save(gt, np.zeros(9))
  with pytest.raises(UserError, match=r"01_0014\.npy: found 9 labels, "
                     r"expected 6"):
    shanghaitech.list_videos(root, "test")


# ---------------------------------------------------------------- frames


def test_frames_mat_cells_with_multiple_ranges(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "ped1"))
  gt = np.empty((1, 2), object)
  gt[0, 0] = np.array([[2], [4]])  # [start; end]
  gt[0, 1] = np.array([[1, 9], [2, 12]])  # pairs (1, 2) and (9, 12)
  scipy.io.savemat(os.path.join(root, "ped1.mat"), {"gt": gt})
  (train,) = frames.list_videos(root, "train")
  assert os.path.basename(train.frame_paths[0]) == "0.jpg"
  one, two = registry.list_videos("frames", root, "test")
  assert [os.path.basename(p) for p in two.frame_paths] == [
      f"{k}.jpg" for k in range(12)]
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
  with pytest.raises(UserError, match=r"ped2\.mat: found 3 gt entries, "
                     r"expected 2"):
    frames.list_videos(root, "test")


def test_frames_concatenated_npy(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "avenue"))
  expected = np.arange(18) % 3 == 0
  path = os.path.join(root, "frame_labels_avenue.npy")
  np.save(path, expected.astype(np.int64)[None])  # (1, total) as published
  one, two = frames.list_videos(root, "test")
  np.testing.assert_array_equal(np.concatenate([one.labels, two.labels]),
                                expected)
  np.save(path, np.zeros(17))
  with pytest.raises(UserError, match=r"frame_labels_avenue\.npy: found "
                     r"labels of shape \(17,\), expected \(18,\)"):
    frames.list_videos(root, "test")


def test_frames_per_video_masks_win(tmp_path):
  root = fake_layouts.make_frames_layout(str(tmp_path / "x"))
  np.save(os.path.join(root, "frame_labels_x.npy"), np.ones(18))
  os.makedirs(os.path.join(root, "testing", "test_frame_mask"))
  np.save(os.path.join(root, "testing", "test_frame_mask", "01.npy"),
          np.array([1, 0, 1, 0, 1, 0]))
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
    value = (np.concatenate(per_video) if form == "pickle_flat"
             else per_video)
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


# ---------------------------------------------------------------- registry


def test_registry_unknown_name_lists_known():
  with pytest.raises(UserError, match="ucsd_ped1, ucsd_ped2, .*synthetic"):
    registry.list_videos("kitti", "/tmp", "train")


def test_registry_synthetic_is_generic(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path))
  assert _summary(registry.list_videos("synthetic", root, "test")) == _summary(
      generic.list_videos(root, "test"))


@pytest.mark.parametrize("name", registry.KNOWN)
def test_registry_missing_root_names_path(tmp_path, name):
  with pytest.raises(UserError, match="nowhere"):
    registry.list_videos(name, str(tmp_path / "nowhere"), "test")


# ---------------------------------------------------------------- real data


@pytest.mark.skipif(not os.path.isdir(PED2_DEV), reason="no ped2_dev")
def test_real_ped2_dev():
  test = registry.list_videos("generic", PED2_DEV, "test")
  assert [(v.name, v.num_frames) for v in test] == [("01", 180), ("04", 180),
                                                    ("07", 180)]
  expected = np.zeros(180, np.uint8)
  expected[60:180] = 1  # UCSDped2.m [61:180], 1-based inclusive
  np.testing.assert_array_equal(test[0].labels, expected)
  assert os.path.basename(test[0].frame_paths[0]) == "000.jpg"
  assert frame_io.read_frame(test[0].frame_paths[0]).shape == (240, 360, 3)
  train = registry.list_videos("generic", PED2_DEV, "train")
  assert len(train) == 6 and all(v.labels is None for v in train)


@pytest.mark.skipif(not os.path.isdir(AVENUE_DEV), reason="no avenue_dev")
def test_real_avenue_dev():
  mat = os.path.join(AVENUE_DEV, "ground_truth_demo", "testing_label_mask",
                     "21_label.mat")
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
