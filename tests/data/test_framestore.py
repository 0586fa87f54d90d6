"""Frame store: decode once, convert channels, resize, cache and reuse."""

import os

import cv2
import numpy as np
import pytest

from data_pipeline import frame_io
from data_pipeline import framestore
from data_pipeline import registry
from data_pipeline.video import Video
from maskedskip_jax.errors import UserError
from tests import fake_layouts


@pytest.fixture
def count_reads(monkeypatch):
  """Counts frame_io.read_frame calls made by the store (per path)."""
  calls = []
  real = frame_io.read_frame

  def counting(path):
    calls.append(path)
    return real(path)

  monkeypatch.setattr(frame_io, "read_frame", counting)
  return calls


def _colour_video(folder, count, size=(12, 20), seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (count, *size, 3), dtype=np.uint8)
  os.makedirs(folder)
  paths = []
  for k, rgb in enumerate(images):
    paths.append(os.path.join(folder, f"{k:03d}.png"))
    cv2.imwrite(paths[-1], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  return Video(name=os.path.basename(folder), num_frames=count, frame_paths=tuple(paths)), images


def test_grey_frames_are_replicated_and_videos_concatenated(tmp_path):
  root = fake_layouts.make_ucsd(str(tmp_path), train=(4, 5), test=(3,), gt_lines=("[2:3]",), mask_videos=())
  videos = registry.list_videos("ucsd_ped2", root, "train")
  store = framestore.build(videos, fake_layouts.SIZE, 3)
  assert store.frames.shape == (9, *fake_layouts.SIZE, 3)
  assert store.num_videos == 2 and store.video_names == ["Train001", "Train002"]
  assert [store.num_frames(v) for v in range(2)] == [4, 5]
  for v, n in enumerate((4, 5)):
    for k in range(n):
      frame = store.video_frames(v)[k]
      assert (frame == fake_layouts.frame_value(k)).all(), (v, k)
  assert store.labels(0) is None and store.masks(0) is None
  assert not store.frames.flags.writeable


def test_rgb_to_grey_uses_luminance_and_resizes(tmp_path):
  video, images = _colour_video(str(tmp_path / "v"), 3)
  grey = framestore.build([video], (12, 20), 1)
  assert grey.frames.shape == (3, 12, 20, 1)
  for k, rgb in enumerate(images):
    np.testing.assert_array_equal(grey.frames[k, ..., 0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
  small = framestore.build([video], (6, 10), 3)
  np.testing.assert_array_equal(small.frames[1], cv2.resize(images[1], (10, 6), interpolation=cv2.INTER_AREA))
  large = framestore.build([video], (24, 16), 3)
  assert large.frames.shape == (3, 24, 16, 3)


def test_labels_and_masks_come_from_the_source(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path), test=(("01", 6), ("02", 4)))
  store = framestore.build(registry.list_videos("generic", root, "test"), (8, 8), 3)
  np.testing.assert_array_equal(store.labels(0), [0, 0, 0, 1, 1, 1])
  masks = store.masks(1)
  assert masks.shape == (4, *fake_layouts.SIZE) and masks.dtype == np.uint8
  assert masks[2:].any() and not masks[:2].any()


def test_container_videos_are_decoded(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path), train=(("a", 5), ("b", 3)), video_files=("a",))
  store = framestore.build(registry.list_videos("generic", root, "train"), fake_layouts.SIZE, 3)
  assert list(store.lengths) == [5, 3]
  for k in range(5):  # MJPG is lossy; flat frames stay within a few levels.
    assert abs(int(np.median(store.video_frames(0)[k])) - fake_layouts.frame_value(k)) <= 3


def test_cache_decodes_once_and_is_reused(tmp_path, count_reads):
  root = fake_layouts.make_generic(str(tmp_path / "data"), train=(("01", 5), ("02", 40)))
  videos = registry.list_videos("generic", root, "train")
  cache = str(tmp_path / "cache")
  first = framestore.build(videos, (8, 12), 3, cache, ("generic", root))
  # Every frame decoded exactly once, even across decode chunks.
  assert sorted(count_reads) == sorted(p for v in videos for p in v.frame_paths)
  assert isinstance(first.frames, np.memmap)
  assert sorted(os.listdir(cache)) == sorted(os.path.basename(first.path)[:-4] + ext for ext in (".npy", ".json"))
  count_reads.clear()
  again = framestore.build(videos, (8, 12), 3, cache, ("generic", root))
  assert count_reads == [] and again.path == first.path
  np.testing.assert_array_equal(again.frames, first.frames)
  # Other sizes and touched files get their own store.
  framestore.build(videos, (8, 8), 3, cache, ("generic", root))
  assert len(count_reads) == 45
  count_reads.clear()
  os.utime(videos[0].frame_paths[0], ns=(1, 1))
  framestore.build(registry.list_videos("generic", root, "train"), (8, 12), 3, cache, ("generic", root))
  assert len(count_reads) == 45


def test_corrupt_cache_is_rebuilt(tmp_path):
  root = fake_layouts.make_generic(str(tmp_path / "data"))
  videos = registry.list_videos("generic", root, "train")
  cache = str(tmp_path / "cache")
  store = framestore.build(videos, (8, 8), 3, cache)
  expected = np.array(store.frames)
  del store
  with open(os.path.join(cache, os.listdir(cache)[0].split(".")[0] + ".npy"), "wb") as f:
    f.write(b"not an array")
  again = framestore.build(videos, (8, 8), 3, cache)
  np.testing.assert_array_equal(again.frames, expected)


def test_bad_arguments_are_user_errors(tmp_path):
  video, _ = _colour_video(str(tmp_path / "v"), 2)
  with pytest.raises(UserError, match="channels"):
    framestore.build([video], (8, 8), 2)
  with pytest.raises(UserError, match="image_size"):
    framestore.build([video], (0, 8), 3)
