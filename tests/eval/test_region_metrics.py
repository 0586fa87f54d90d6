"""RBDC / TBDC on hand-made masks and detections."""

import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import region_metrics as rm


def _moving_square(frames=5, size=32, side=4):
  masks = np.zeros((frames, size, size), np.uint8)
  for t in range(frames):
    masks[t, 4 + t : 4 + t + side, 4 + t : 4 + t + side] = 1
  return masks


def test_detection_exactly_on_gt_scores_one():
  masks = _moving_square()
  r = rm.region_metrics([masks.astype(np.float32)], [masks])
  assert r["rbdc"] == 1.0 and r["tbdc"] == 1.0
  assert (r["num_gt_regions"], r["num_gt_tracks"], r["num_frames"]) == (5, 1, 5)
  # Every threshold above the background detects the square alone: no false positives.
  above = np.array(r["thresholds"]) > 0
  assert np.all(np.array(r["fp_per_frame"])[above] == 0) and np.all(np.array(r["region_detection_rate"])[above] == 1)


def test_detection_elsewhere_scores_zero():
  masks = _moving_square()
  maps = np.zeros(masks.shape, np.float32)
  maps[:, 20:26, 20:26] = 1.0
  r = rm.region_metrics([maps], [masks])
  assert r["rbdc"] == 0.0 and r["tbdc"] == 0.0
  assert np.all(np.array(r["fp_per_frame"])[np.array(r["thresholds"]) > 0] == 1.0)


@pytest.mark.parametrize("extra_blobs,want", [(1, 0.5), (2, 0.25)])
def test_false_positives_per_frame_shape_the_area(extra_blobs, want):
  # Points (0, 0) and (extra_blobs, 1): the linear curve reaches 1/extra_blobs at FP/frame = 1.
  masks = _moving_square()
  maps = masks.astype(np.float32)
  for b in range(extra_blobs):
    maps[:, 24:27, 2 + 8 * b : 5 + 8 * b] = 1.0
  r = rm.region_metrics([maps], [masks], thresholds=[0.5])
  assert r["fp_per_frame"] == [float(extra_blobs)]
  assert r["rbdc"] == pytest.approx(want) and r["tbdc"] == pytest.approx(want)


def test_normal_frames_count_in_the_fp_rate():
  masks = np.zeros((4, 16, 16), np.uint8)
  masks[0, 2:5, 2:5] = 1
  maps = masks.astype(np.float32)
  maps[2, 10:12, 10:12] = 1.0  # one false positive on a normal frame
  r = rm.region_metrics([maps], [masks], thresholds=[0.5])
  assert r["fp_per_frame"] == [0.25] and r["region_detection_rate"] == [1.0]
  # Curve (0, 0) -> (0.25, 1), flat afterwards.
  assert r["rbdc"] == pytest.approx(1 - 0.25 / 2)


def _track_video(frames, hit_frames):
  masks = _moving_square(frames, size=48)
  maps = np.zeros(masks.shape, np.float32)
  maps[hit_frames] = masks[hit_frames]
  return maps, masks


def test_track_detected_at_ten_percent_of_its_regions():
  a = _track_video(10, [3])  # 1 of 10 regions: track detected
  b = _track_video(30, [0, 7])  # 2 of 30: not detected
  r = rm.region_metrics([a[0], b[0]], [a[1], b[1]], thresholds=[0.5])
  assert r["num_gt_tracks"] == 2 and r["num_gt_regions"] == 40
  assert r["region_detection_rate"] == [pytest.approx(3 / 40)] and r["track_detection_rate"] == [0.5]
  assert r["rbdc"] == pytest.approx(3 / 40) and r["tbdc"] == pytest.approx(0.5)
  c = _track_video(30, [0, 7, 20])  # exactly 3 of 30 = 10%: detected
  r = rm.region_metrics([a[0], c[0]], [a[1], c[1]], thresholds=[0.5])
  assert r["track_detection_rate"] == [1.0]


@pytest.mark.parametrize("shift,found", [(8, True), (9, False)])
def test_iou_threshold_point_one(shift, found):
  # 10x10 boxes shifted by `shift` columns: IoU 20/180 = 0.11 at 8, 10/190 = 0.05 at 9.
  masks = np.zeros((1, 20, 40), np.uint8)
  masks[0, 5:15, 5:15] = 1
  maps = np.zeros(masks.shape, np.float32)
  maps[0, 5:15, 5 + shift : 15 + shift] = 1.0
  for mode in rm.IOU_MODES:
    r = rm.region_metrics([maps], [masks], thresholds=[0.5], iou=mode)
    assert r["region_detection_rate"] == [1.0 if found else 0.0]
    assert r["fp_per_frame"] == [0.0 if found else 1.0]


def test_box_and_pixel_iou_differ_on_a_ring():
  masks = np.zeros((1, 20, 20), np.uint8)
  masks[0, 5:15, 5:15] = 1
  masks[0, 6:14, 6:14] = 0  # hollow square
  maps = np.zeros(masks.shape, np.float32)
  maps[0, 6:14, 6:14] = 1.0  # fills the hole: same box region, no shared pixels
  box = rm.region_metrics([maps], [masks], thresholds=[0.5], iou="box")
  pixel = rm.region_metrics([maps], [masks], thresholds=[0.5], iou="pixel")
  assert box["region_detection_rate"] == [1.0] and pixel["region_detection_rate"] == [0.0]


def test_track_ids_link_by_overlap_in_consecutive_frames():
  assert rm.track_ids(_moving_square())[1] == 1
  two = np.zeros((3, 20, 20), np.uint8)
  two[:, 1:4, 1:4] = 1
  two[:, 12:16, 12:16] = 1
  ids, n = rm.track_ids(two)
  assert n == 2 and all(sorted(f.tolist()) == [0, 1] for f in ids)
  gap = _moving_square(5)
  gap[2] = 0  # the object vanishes for one frame: two tracks
  assert rm.track_ids(gap)[1] == 2
  merge = np.zeros((2, 20, 20), np.uint8)
  merge[0, 2:6, 2:6] = 1
  merge[0, 2:6, 10:14] = 1
  merge[1, 2:6, 2:14] = 1  # both touch the frame-1 region: one track
  ids, n = rm.track_ids(merge)
  assert n == 1 and ids[0].tolist() == [0, 0]


def test_curve_area_hand_values():
  # (0,0) -> (0.5,0.4) -> (2,1): rate 0.6 at FP 1; area 0.1 + 0.25.
  assert rm.curve_area([0.5, 2.0], [0.4, 1.0]) == pytest.approx(0.35)
  # A worse rate at a higher FP rate is replaced by the best rate reachable within that budget.
  assert rm.curve_area([0.2, 0.5], [0.8, 0.3]) == pytest.approx(0.5 * 0.2 * 0.8 + 0.8 * 0.8)


def test_no_gt_regions_and_bad_inputs():
  r = rm.region_metrics([np.ones((2, 8, 8))], [np.zeros((2, 8, 8))], thresholds=[0.5])
  assert r["rbdc"] is None and r["fp_per_frame"] == [1.0]
  assert rm.region_metrics([np.ones((2, 8, 8))], [None])["num_frames"] == 0
  with pytest.raises(UserError):
    rm.region_metrics([np.zeros((2, 8, 8))], [np.zeros((2, 4, 4))])
  with pytest.raises(UserError):
    rm.region_metrics([np.zeros((2, 8, 8))], [np.zeros((2, 8, 8))], iou="mask")
