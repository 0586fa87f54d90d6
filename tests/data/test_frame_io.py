"""Tests for data_pipeline.frame_io and the Video record."""

import os

import cv2
import numpy as np
import pytest

from data_pipeline import frame_io
from data_pipeline.video import Video
from maskedskip_jax.errors import UserError
from tests import fake_layouts


def _nearest_index(frame, count):
  # Flat frames differ by 7 grey levels, so the nearest value identifies the
  # frame even after lossy JPEG/MJPG coding.
  values = [fake_layouts.frame_value(k) for k in range(count)]
  return int(np.argmin([abs(float(frame.mean()) - v) for v in values]))


def test_read_frame_converts_bgr_to_rgb(tmp_path):
  path = str(tmp_path / "a.png")
  bgr = np.zeros((4, 5, 3), np.uint8)
  bgr[..., 0] = 200  # blue in OpenCV's order
  bgr[..., 2] = 30
  cv2.imwrite(path, bgr)
  rgb = frame_io.read_frame(path)
  assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
  np.testing.assert_array_equal(rgb[0, 0], [30, 0, 200])


def test_read_frame_keeps_grey_tiff_as_2d(tmp_path):
  path = str(tmp_path / "001.tif")
  grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
  cv2.imwrite(path, grey)
  np.testing.assert_array_equal(frame_io.read_frame(path), grey)


def test_read_frame_rescales_16_bit_tiff(tmp_path):
  path = str(tmp_path / "deep.tif")
  cv2.imwrite(path, np.array([[0, 257 * 100, 65535]], np.uint16))
  np.testing.assert_array_equal(frame_io.read_frame(path), [[0, 100, 255]])


def test_read_frame_drops_alpha(tmp_path):
  path = str(tmp_path / "a.png")
  cv2.imwrite(path, np.full((3, 3, 4), [1, 2, 3, 4], np.uint8))
  np.testing.assert_array_equal(frame_io.read_frame(path)[1, 1], [3, 2, 1])


@pytest.mark.parametrize("name,content", [("bad.png", b"not an image at all" * 10), ("empty.bmp", b"")])
def test_read_frame_rejects_corrupt_image(tmp_path, name, content):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(UserError, match=name):
    frame_io.read_frame(str(path))


def test_read_frame_rejects_truncated_jpeg(tmp_path):
  path = fake_layouts.write_frames(str(tmp_path), 1, size=(64, 64))[0]
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])
  with pytest.raises(UserError, match="000.jpg.*truncated"):
    frame_io.read_frame(path)


@pytest.mark.parametrize(
  "params",
  [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2], [cv2.IMWRITE_JPEG_OPTIMIZE, 1]],
  ids=["baseline", "progressive", "restarts", "optimized"],
)
def test_read_frame_accepts_every_kind_of_valid_jpeg(tmp_path, params):
  image = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
  path = str(tmp_path / "ok.jpg")
  assert cv2.imwrite(path, image, params)
  got = frame_io.read_frame(path)
  assert got.shape == (40, 56, 3)
  np.testing.assert_array_equal(got, cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize("damage", ["huffman_counts", "segment_length", "marker"])
def test_read_frame_rejects_a_jpeg_with_a_damaged_header(tmp_path, damage):
  image = (np.random.default_rng(0).random((40, 56)) * 255).astype(np.uint8)
  data = bytearray(cv2.imencode(".jpg", image)[1].tobytes())
  dht = data.index(b"\xff\xc4")
  if damage == "huffman_counts":  # more codes of length 1 than one bit can hold
    data[dht + 5] = 3
  elif damage == "segment_length":  # the table segment claims to run past the file
    data[dht + 2 : dht + 4] = (0xFFFF).to_bytes(2, "big")
  else:
    data[dht] = 0x00
  path = tmp_path / "bad.jpg"
  path.write_bytes(bytes(data))
  with pytest.raises(UserError, match=r"bad\.jpg: corrupt JPEG \(damaged"):
    frame_io.read_frame(str(path))


def test_read_frame_missing_file(tmp_path):
  with pytest.raises(UserError, match="nope.jpg"):
    frame_io.read_frame(str(tmp_path / "nope.jpg"))


def test_count_and_iterate_container_video(tmp_path):
  path = fake_layouts.write_avi(str(tmp_path / "v.avi"), 9)
  assert frame_io.count_frames(path) == 9
  video = Video(name="v", num_frames=9, video_path=path)
  frames = list(frame_io.iter_frames(video))
  assert len(frames) == 9
  assert all(f.shape == (*fake_layouts.SIZE, 3) and f.dtype == np.uint8 for f in frames)
  assert [_nearest_index(f, 9) for f in frames] == list(range(9))


def test_count_frames_many_matches_single(tmp_path):
  paths = [fake_layouts.write_avi(str(tmp_path / f"{n}.avi"), n) for n in (3, 5, 4)]
  assert frame_io.count_frames_many(paths) == [3, 5, 4]


def test_truncated_container_names_file_and_frames_read(tmp_path):
  path = fake_layouts.write_avi(str(tmp_path / "cut.avi"), 20, size=(64, 64))
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])
  with pytest.raises(UserError, match=r"cut\.avi.*read \d+ frames"):
    frame_io.count_frames(path)


def test_unreadable_container_reads_zero_frames(tmp_path):
  path = tmp_path / "junk.avi"
  path.write_bytes(b"RIFF" + b"\0" * 100)
  with pytest.raises(UserError, match=r"junk\.avi.*read 0 frames"):
    frame_io.count_frames(str(path))


def test_iter_frames_of_container_shorter_than_listed(tmp_path):
  path = fake_layouts.write_avi(str(tmp_path / "v.avi"), 4)
  video = Video(name="v", num_frames=6, video_path=path)
  with pytest.raises(UserError, match=r"v\.avi.*read 4 frames, expected 6"):
    list(frame_io.iter_frames(video))


def test_iter_frames_of_folder_in_path_order(tmp_path):
  paths = fake_layouts.write_frames(str(tmp_path / "f"), 5, ext=".png", grey=True)
  video = Video(name="f", num_frames=5, frame_paths=tuple(paths))
  frames = list(frame_io.iter_frames(video))
  assert [f.shape for f in frames] == [fake_layouts.SIZE] * 5
  np.testing.assert_array_equal([f[0, 0] for f in frames], [fake_layouts.frame_value(k) for k in range(5)])


def test_iter_frames_names_corrupt_frame(tmp_path):
  paths = fake_layouts.write_frames(str(tmp_path / "f"), 3, ext=".png")
  with open(paths[1], "wb") as f:
    f.write(b"garbage" * 20)
  video = Video(name="f", num_frames=3, frame_paths=tuple(paths))
  frames = frame_io.iter_frames(video)
  next(frames)
  with pytest.raises(UserError, match=os.path.basename(paths[1])):
    next(frames)


def test_video_requires_exactly_one_source():
  with pytest.raises(ValueError):
    Video(name="x", num_frames=1)
  with pytest.raises(ValueError):
    Video(name="x", num_frames=1, frame_paths=("a.jpg",), video_path="a.avi")
  with pytest.raises(ValueError):
    Video(name="x", num_frames=2, frame_paths=("a.jpg",))


def test_video_labels_are_checked_and_frozen():
  with pytest.raises(ValueError):
    Video(name="x", num_frames=2, video_path="a.avi", labels=np.zeros(3, np.uint8))
  with pytest.raises(ValueError):
    Video(name="x", num_frames=2, video_path="a.avi", labels=np.zeros(2, np.int64))
  labels = np.array([0, 1], np.uint8)
  video = Video(name="x", num_frames=2, video_path="a.avi", labels=labels)
  labels[0] = 1  # the caller's array stays its own
  np.testing.assert_array_equal(video.labels, [0, 1])
  with pytest.raises(ValueError):
    video.labels[0] = 1
