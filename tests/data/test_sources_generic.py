"""The generic layout (data_pipeline.sources.generic): frame folders or videos, label files, masks."""

import os

import numpy as np
import pytest

from data_pipeline.sources import generic
from maskedskip_jax.errors import UserError
from tests import fake_layouts


def test_generic_frames_labels_masks_and_natural_order(tmp_path):
  root = fake_layouts.make_generic(
    str(tmp_path), train=(("10", 4),), test=(("01", 6),), labels={"01": [0, 1, 1, 0, 0, 1]}
  )
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
    str(tmp_path), train=(("a", 4), ("b", 7)), test=(("x", 5), ("y", 3)), video_files=("b", "y"), masks=False
  )
  os.remove(tmp_path / "test" / "x.txt")
  np.save(tmp_path / "test" / "x.npy", np.array([1, 0, 0, 0, 1]))
  os.remove(tmp_path / "test" / "y.txt")
  train = generic.list_videos(root, "train")
  assert [(v.name, v.num_frames, v.is_container) for v in train] == [("a", 4, False), ("b", 7, True)]
  assert train[1].video_path.endswith("b.avi")
  x, y = generic.list_videos(root, "test")
  np.testing.assert_array_equal(x.labels, [1, 0, 0, 0, 1])
  assert y.labels is None and y.num_frames == 3


@pytest.mark.parametrize(
  "content,message",
  [
    ("0 1 1 0 1", r"01\.txt: found 5 labels, expected 6"),
    ("0 1 1 0 1 1 0", r"01\.txt: found 7 labels, expected 6"),
    ("0 1 2 0 1 1", r"01\.txt: label '2'"),
  ],
)
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
