"""Tiny fake dataset trees in each real on-disk layout, for tests.

Frame k of every video is a flat image of value `frame_value(k)`, so tests can
check frame order after reading (JPEG keeps flat images within +-1).
"""

from collections.abc import Sequence
import os

import cv2
import numpy as np

SIZE = (16, 24)  # (H, W): tiny, and even so MJPG accepts it


def frame_value(index: int) -> int:
  return (10 + 7 * index) % 250


def frame_image(index: int, size=SIZE, grey: bool = False) -> np.ndarray:
  shape = size if grey else (*size, 3)
  return np.full(shape, frame_value(index), np.uint8)


def write_frames(
  folder: str, count: int, ext: str = ".jpg", size=SIZE, grey: bool = False, first: int = 0, digits: int = 3
) -> list[str]:
  """Writes `count` frames named first, first+1, ... (zero-padded to `digits`)."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  for k in range(count):
    path = os.path.join(folder, f"{first + k:0{digits}d}{ext}")
    assert cv2.imwrite(path, frame_image(k, size, grey)), path
    paths.append(path)
  return paths


def write_avi(path: str, count: int, size=SIZE, fps: int = 25) -> str:
  """An MJPG .avi of `count` flat frames."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (size[1], size[0]))
  assert writer.isOpened(), path
  for k in range(count):
    writer.write(frame_image(k, size))
  writer.release()
  return path


def labels_from_ranges(count: int, ranges: Sequence[tuple[int, int]]):
  """0/1 labels from 1-based inclusive ranges (the convention of the .m files)."""
  labels = np.zeros(count, np.uint8)
  for start, end in ranges:
    labels[start - 1 : end] = 1
  return labels


def masks_for(labels, size=SIZE) -> np.ndarray:
  """uint8 (n, H, W) masks with a small anomalous square on labelled frames."""
  masks = np.zeros((len(labels), *size), np.uint8)
  masks[np.asarray(labels, bool), 2:6, 3:9] = 1
  return masks


def summary(videos) -> list:
  """(name, frame count, labels as a list or None) per listed video: two listings compare with ==."""
  return [(v.name, v.num_frames, None if v.labels is None else v.labels.tolist()) for v in videos]


def make_generic(
  root: str, train=(("01", 5),), test=(("01", 6),), labels=None, masks: bool = True, video_files: Sequence[str] = ()
) -> str:
  """<root>/{train,test}/<video>/NNN.jpg, <video>.txt labels, <video>_mask.npy.

  Args:
    root: where to build.
    train, test: (name, frame count) per video.
    labels: {test name: 0/1 sequence}; default: last half of each test video.
    masks: whether to write <video>_mask.npy matching the labels.
    video_files: names (in train or test) written as .avi instead of folders.
  """
  for split, videos in (("train", train), ("test", test)):
    for name, count in videos:
      if name in video_files:
        write_avi(os.path.join(root, split, name + ".avi"), count)
      else:
        write_frames(os.path.join(root, split, name), count)
  for name, count in test:
    y = (labels or {}).get(name)
    if y is None:
      y = [0] * (count - count // 2) + [1] * (count // 2)
    with open(os.path.join(root, "test", name + ".txt"), "w") as f:
      f.write("\n".join(str(int(v)) for v in y) + "\n")
    if masks:
      np.save(os.path.join(root, "test", name + "_mask.npy"), masks_for(y))
  return root


def make_ucsd(
  root: str,
  ped: int = 2,
  train: Sequence[int] = (4, 5),
  test: Sequence[int] = (6, 8),
  gt_lines: Sequence[str] = ("[2:4]", "[1:2, 6:8]"),
  mask_videos: Sequence[int] = (1,),
) -> str:
  """root/UCSDpedN/{Train,Test}/... with 1-based .tif names; returns UCSDpedN.

  Args:
    gt_lines: the bracketed right-hand side of each gt_frame line of the .m.
    mask_videos: 1-based test video numbers that get a TestNNN_gt/ folder,
      whose masks follow the .m ranges parsed by this helper.
  """
  base = os.path.join(root, f"UCSDped{ped}")
  for k, count in enumerate(train, 1):
    write_frames(os.path.join(base, "Train", f"Train{k:03d}"), count, ext=".tif", grey=True, first=1)
  for k, count in enumerate(test, 1):
    write_frames(os.path.join(base, "Test", f"Test{k:03d}"), count, ext=".tif", grey=True, first=1)
  lines = ["TestVideoFile = {};", "% frame ranges of abnormal events"]
  lines += [f"TestVideoFile{{end+1}}.gt_frame = {g};" for g in gt_lines]
  os.makedirs(os.path.join(base, "Test"), exist_ok=True)
  with open(os.path.join(base, "Test", f"UCSDped{ped}.m"), "w") as f:
    f.write("\n".join(lines) + "\n")
  for k in mask_videos:
    folder = os.path.join(base, "Test", f"Test{k:03d}_gt")
    os.makedirs(folder)
    ranges = [tuple(int(x) for x in r.split(":")) for r in gt_lines[k - 1].strip("[]").split(",")]
    for i, m in enumerate(masks_for(labels_from_ranges(test[k - 1], ranges))):
      cv2.imwrite(os.path.join(folder, f"{i + 1:03d}.bmp"), m * 255)
  return base


def write_avenue_mat(path: str, labels) -> str:
  """An Avenue-style N_label.mat: volLabel, a 1 x n cell of per-frame masks."""
  import scipy.io  # pylint: disable=g-import-not-at-top

  masks = masks_for(labels)
  cells = np.empty((1, len(masks)), object)
  for i, m in enumerate(masks):
    cells[0, i] = m
  os.makedirs(os.path.dirname(path), exist_ok=True)
  scipy.io.savemat(path, {"volLabel": cells})
  return path


def make_avenue(
  root: str, train: Sequence[int] = (5,), test: Sequence[int] = (6, 7), labels=None, nested: bool = True
) -> str:
  """root/Avenue Dataset/{training,testing}_videos/NN.avi + ground_truth_demo.

  Args:
    labels: {1-based test video number: 0/1 sequence}; default: every test
      video, anomalous on its last two frames.
    nested: put the videos under 'Avenue Dataset/' (official) or directly
      in root.
  """
  base = os.path.join(root, "Avenue Dataset") if nested else root
  for k, count in enumerate(train, 1):
    write_avi(os.path.join(base, "training_videos", f"{k:02d}.avi"), count)
  for k, count in enumerate(test, 1):
    write_avi(os.path.join(base, "testing_videos", f"{k:02d}.avi"), count)
  if labels is None:
    labels = {k: [0] * (n - 2) + [1, 1] for k, n in enumerate(test, 1)}
  for k, y in labels.items():
    write_avenue_mat(os.path.join(root, "ground_truth_demo", "testing_label_mask", f"{k}_label.mat"), y)
  return root


def make_shanghaitech(
  root: str,
  train: Sequence[tuple[str, int]] = (("01_001", 5),),
  test: Sequence[tuple[str, int]] = (("01_0014", 6), ("02_0128", 4)),
  masks: bool = True,
) -> str:
  """training/videos/*.avi, testing/frames/<video>/NNN.jpg, per-video .npy."""
  for name, count in train:
    write_avi(os.path.join(root, "training", "videos", name + ".avi"), count)
  os.makedirs(os.path.join(root, "testing", "test_frame_mask"))
  if masks:
    os.makedirs(os.path.join(root, "testing", "test_pixel_mask"))
  for name, count in test:
    write_frames(os.path.join(root, "testing", "frames", name), count)
    y = np.zeros(count, np.int64)
    y[1:3] = 1
    np.save(os.path.join(root, "testing", "test_frame_mask", name + ".npy"), y)
    if masks:
      np.save(os.path.join(root, "testing", "test_pixel_mask", name + ".npy"), masks_for(y))
  return root


def make_frames_layout(
  root: str,
  train: Sequence[tuple[str, int]] = (("01", 5),),
  test: Sequence[tuple[str, int]] = (("01", 6), ("02", 12)),
  digits: int = 1,
) -> str:
  """<root>/{training,testing}/frames/<video>/<n>.jpg, 0-based, no labels.

  digits=1 writes unpadded names (0.jpg ... 11.jpg) to exercise natural sort.
  Tests add whichever label file they exercise.
  """
  for split, videos in (("training", train), ("testing", test)):
    for name, count in videos:
      write_frames(os.path.join(root, split, "frames", name), count, digits=digits)
  return root
