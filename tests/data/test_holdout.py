import numpy as np
import pytest

from data_pipeline import holdout
from data_pipeline.errors import UserError
from data_pipeline.framestore import FrameStore


class _Video:
  def __init__(self, name):
    self.name = name
    self.labels = None
    self.mask_loader = None


def _store(lengths):
  frames = np.concatenate([np.full((n, 2, 3, 1), v, np.uint8) for v, n in enumerate(lengths)])
  return FrameStore(frames, lengths, [_Video(f"{v + 1:02d}") for v in range(len(lengths))])


def test_last_videos_are_held_out_whole():
  train, held = holdout.split(_store([5, 6, 7, 8, 9, 10]), 0.1)
  assert train.video_names == ["01", "02", "03", "04", "05"]
  assert held.video_names == ["06"]
  assert held.total_frames == 10 and np.all(held.frames == 5)
  assert train.total_frames == 35 and np.array_equal(train.video_frames(4)[:, 0, 0, 0], [4] * 9)


def test_share_rounds_up_and_always_keeps_one_video_to_train_on():
  assert holdout.split(_store([4] * 16), 0.1)[1].num_videos == 2
  train, held = holdout.split(_store([4, 4]), 0.9)
  assert train.num_videos == 1 and held.num_videos == 1


def test_single_video_gives_up_its_tail():
  train, held = holdout.split(_store([145]), 0.1)
  assert train.total_frames == 130 and held.total_frames == 15
  assert held.video_names == ["01 (last 15 frames)"]
  assert holdout.describe(_store([145]), 0.1)["frames"] == 15


def test_zero_share_is_no_holdout():
  store = _store([3, 3])
  assert holdout.split(store, 0.0) == (store, None)
  assert holdout.describe(store, 0.0)["videos"] == []


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_bad_share_is_one_line_error(share):
  with pytest.raises(UserError, match="data.holdout_share"):
    holdout.split(_store([3, 3]), share)
