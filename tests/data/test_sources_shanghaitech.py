"""ShanghaiTech (data_pipeline.sources.shanghaitech): training videos, test frame folders, .npy ground truth."""

import numpy as np
import pytest

from data_pipeline import registry
from data_pipeline.sources import shanghaitech
from maskedskip_jax.errors import UserError
from tests import fake_layouts


def test_shanghaitech_layout(tmp_path):
  root = fake_layouts.make_shanghaitech(str(tmp_path))
  (train,) = shanghaitech.list_videos(root, "train")
  assert (train.name, train.num_frames, train.is_container) == ("01_001", 5, True)
  a, b = registry.list_videos("shanghaitech", root, "test")
  assert fake_layouts.summary([a, b]) == [("01_0014", 6, [0, 1, 1, 0, 0, 0]), ("02_0128", 4, [0, 1, 1, 0])]
  np.testing.assert_array_equal(a.mask_loader().any(axis=(1, 2)), a.labels)


def test_shanghaitech_bad_ground_truth(tmp_path):
  root = fake_layouts.make_shanghaitech(str(tmp_path))
  gt = tmp_path / "testing" / "test_pixel_mask" / "02_0128.npy"
  np.save(gt, np.zeros((3, 4, 4), np.uint8))
  with pytest.raises(UserError, match=r"02_0128\.npy.*\(4, H, W\)"):
    shanghaitech.list_videos(root, "test")
  gt = tmp_path / "testing" / "test_frame_mask" / "01_0014.npy"
  np.save(gt, np.zeros(9))
  with pytest.raises(
    UserError,
    match=r"01_0014\.npy: found 9 labels, "
    r"expected 6",
  ):
    shanghaitech.list_videos(root, "test")
