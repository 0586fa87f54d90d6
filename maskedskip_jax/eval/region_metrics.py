"""Region- and track-based detection criteria, RBDC and TBDC (Ramachandra & Jones, WACV 2020, "Street Scene").

Definitions used here (the paper's, with the choices it leaves open stated):
  * Detected regions: at threshold tau, the 8-connected components of {score map >= tau}, per frame.
  * Ground-truth regions: the 8-connected components of each frame's mask (nonzero = anomalous).
  * Overlap: IoU of the two regions' bounding boxes (iou='box', default: Street Scene's ground truth is boxes and
    Avenue/ShanghaiTech evaluations box their mask components) or of their pixel sets (iou='pixel').
  * A ground-truth region is detected when some detected region in its frame has IoU >= beta (0.1). A detected
    region with IoU < beta against every ground-truth region of its frame is a false positive.
  * Tracks: ground-truth regions of the same video linked when their pixels overlap in consecutive frames
    (transitively, so a track may split or merge). A track is detected when at least alpha (0.1) of its regions
    are detected.
  * RBDC rate = detected GT regions / all GT regions; TBDC rate = detected tracks / all tracks; both against
    false-positive regions per frame (over every frame of the videos with masks, normal frames included).
  * Summary: the sweep gives one (FP/frame, rate) point per threshold, plus (0, 0) for "detect nothing". Points
    are sorted by FP/frame and the rate made non-decreasing (the best rate reachable within that FP budget); the
    area under the linear interpolation over FP/frame in [0, max_fp] (1 by default), divided by max_fp, is the
    score, so it lies in [0, 1]; past the last point the curve stays flat.
"""

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from maskedskip_jax.errors import UserError

IOU_MODES = ("box", "pixel")


def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(labels (H, W) int32, stats (n, 5)) of the 8-connected components; label k + 1 is stats row k."""
  _, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
  return labels, stats[1:].astype(np.int64)


def _overlap_counts(labels_a: np.ndarray, na: int, labels_b: np.ndarray, nb: int) -> np.ndarray:
  """(na, nb) pixel counts shared by component i of a and component j of b."""
  joint = labels_a.ravel().astype(np.int64) * (nb + 1) + labels_b.ravel()
  return np.bincount(joint, minlength=(na + 1) * (nb + 1)).reshape(na + 1, nb + 1)[1:, 1:]


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(na, nb) IoU of boxes given as cv2 stats rows (x, y, w, h, area)."""
  x0 = np.maximum(a[:, None, 0], b[None, :, 0])
  y0 = np.maximum(a[:, None, 1], b[None, :, 1])
  x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
  y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
  inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
  area_a, area_b = a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]
  return inter / (area_a[:, None] + area_b[None, :] - inter)


def _iou(det: tuple[np.ndarray, np.ndarray], gt: tuple[np.ndarray, np.ndarray], mode: str) -> np.ndarray:
  if mode == "box":
    return _box_iou(det[1], gt[1])
  inter = _overlap_counts(det[0], len(det[1]), gt[0], len(gt[1]))
  union = det[1][:, None, 4] + gt[1][None, :, 4] - inter
  return inter / union


def _tracks(masks: np.ndarray, keep_labels: bool = False):
  """(per-frame GT components, per-frame track ids, track count); see `track_ids`.

  Label images are kept only when asked (pixel IoU) and only for frames with regions: a long video's full-size
  int32 label images would otherwise cost gigabytes.
  """
  comps = [_components(m != 0) for m in masks]
  starts = np.cumsum([0] + [len(c[1]) for c in comps])
  parent = np.arange(starts[-1])

  def root(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  for t in range(1, len(comps)):
    shared = _overlap_counts(comps[t - 1][0], len(comps[t - 1][1]), comps[t][0], len(comps[t][1]))
    for i, j in zip(*np.nonzero(shared)):
      parent[root(starts[t - 1] + i)] = root(starts[t] + j)
  roots = np.array([root(i) for i in range(starts[-1])], dtype=np.int64)
  _, ids = np.unique(roots, return_inverse=True)
  if not keep_labels:
    comps = [(None, stats) for _, stats in comps]
  else:
    comps = [(labels if len(stats) else None, stats) for labels, stats in comps]
  return comps, [ids[starts[t] : starts[t + 1]] for t in range(len(comps))], int(ids.max(initial=-1) + 1)


def track_ids(masks: np.ndarray) -> tuple[list[np.ndarray], int]:
  """Links one video's GT components over consecutive frames; returns per-frame track ids and the track count.

  Entry t of the list holds one id per 8-connected component of mask t, in cv2's label order.
  """
  _, ids, n_tracks = _tracks(np.asarray(masks))
  return ids, n_tracks


def curve_area(fp_per_frame: np.ndarray, rate: np.ndarray, max_fp: float = 1.0) -> float:
  """Normalised area under the (FP/frame, rate) curve over FP/frame in [0, max_fp]; see the module docstring."""
  fp = np.concatenate([[0.0], np.asarray(fp_per_frame, np.float64)])
  r = np.concatenate([[0.0], np.asarray(rate, np.float64)])
  order = np.argsort(fp, kind="stable")
  fp, r = fp[order], np.maximum.accumulate(r[order])
  last_of_tie = np.append(fp[1:] > fp[:-1], True)  # running max: the tie group's last point holds its best rate
  fp, r = fp[last_of_tie], r[last_of_tie]
  xs = np.concatenate([fp[fp < max_fp], [max_fp]])
  ys = np.interp(xs, fp, r)
  return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2) / max_fp)


def region_metrics(
  score_maps_list: Sequence[np.ndarray],
  masks_list: Sequence[np.ndarray | None],
  thresholds: Sequence[float] | None = None,
  num_thresholds: int = 50,
  iou_threshold: float = 0.1,
  track_threshold: float = 0.1,
  iou: str = "box",
  max_fp: float = 1.0,
) -> dict[str, Any]:
  """RBDC and TBDC over the videos that have masks (None entries are skipped).

  Args:
    score_maps_list: per video, (n, H, W) pixel score maps at the masks' resolution.
    masks_list: per video, (n, H, W) masks (nonzero = anomalous) or None.
    thresholds: score thresholds to sweep; default `num_thresholds` values evenly spaced over [min, max] of the
      maps. Cost is one connected-components pass per frame and threshold, so keep the sweep modest or compute at
      a reduced resolution for long test sets.
    iou_threshold: beta, the IoU a detection needs with a GT region (0.1 as in the paper).
    track_threshold: alpha, the fraction of a track's regions that must be detected (0.1).
    iou: 'box' or 'pixel' IoU.
    max_fp: FP-per-frame range of the summarised curve.

  Returns:
    dict(rbdc, tbdc (None without GT regions), thresholds, fp_per_frame, region_detection_rate,
    track_detection_rate (lists, one entry per threshold), num_gt_regions, num_gt_tracks, num_frames, and the
    settings iou, iou_threshold, track_threshold, max_fp).
  """
  if iou not in IOU_MODES:
    raise UserError(f"region_metrics: iou must be one of {IOU_MODES}, got '{iou}'")
  if len(score_maps_list) != len(masks_list):
    raise UserError(f"region_metrics: {len(score_maps_list)} score-map arrays but {len(masks_list)} mask arrays")
  videos = []
  for v, (maps, masks) in enumerate(zip(score_maps_list, masks_list)):
    if masks is None:
      continue
    maps, masks = np.asarray(maps, np.float32), np.asarray(masks)
    if maps.shape != masks.shape or maps.ndim != 3:
      raise UserError(
        f"region_metrics: video {v} score maps {maps.shape} and masks {masks.shape} must both be "
        "(n, H, W) of the same size"
      )
    videos.append((maps, masks))
  if thresholds is None:
    values = [m for m, _ in videos if m.size]
    lo = min((float(m.min()) for m in values), default=0.0)
    hi = max((float(m.max()) for m in values), default=0.0)
    thresholds = np.linspace(lo, hi, num_thresholds)
  thresholds = np.asarray(thresholds, np.float64)

  num_frames = num_regions = num_tracks = 0
  detected = np.zeros(len(thresholds), np.int64)
  false_pos = np.zeros(len(thresholds), np.int64)
  track_hits = []  # per video: (num_thresholds, tracks) detected-region counts
  track_sizes = []
  for maps, masks in videos:
    comps, ids, n_tracks = _tracks(masks, keep_labels=iou == "pixel")
    hits = np.zeros((len(thresholds), n_tracks), np.int64)
    for frame, gt, frame_ids in zip(maps, comps, ids):
      peak = frame.max(initial=-np.inf)
      for k, tau in enumerate(thresholds):
        if tau > peak:
          continue  # nothing detected: no hits and no false positives
        det = _components(frame >= tau)
        if len(gt[1]) == 0:
          false_pos[k] += len(det[1])
          continue
        overlap = _iou(det, gt, iou) >= iou_threshold
        found = overlap.any(axis=0)
        detected[k] += int(found.sum())
        false_pos[k] += int((~overlap.any(axis=1)).sum())
        np.add.at(hits[k], frame_ids[found], 1)
    num_frames += len(maps)
    num_regions += sum(len(f) for f in ids)
    num_tracks += n_tracks
    track_hits.append(hits)
    track_sizes.append(np.bincount(np.concatenate(ids + [np.zeros(0, np.int64)]), minlength=n_tracks))

  fp_rate = false_pos / max(num_frames, 1)
  region_rate = detected / max(num_regions, 1)
  hits = np.concatenate(track_hits, axis=1) if track_hits else np.zeros((len(thresholds), 0))
  sizes = np.concatenate(track_sizes) if track_sizes else np.zeros(0)
  # hits / sizes, not hits >= alpha * sizes: 0.1 * 30 rounds above 3, and a 3-of-30 track must count.
  track_rate = (hits / np.maximum(sizes, 1) >= track_threshold).sum(axis=1) / max(num_tracks, 1)
  has_gt = num_regions > 0
  return {
    "rbdc": curve_area(fp_rate, region_rate, max_fp) if has_gt else None,
    "tbdc": curve_area(fp_rate, track_rate, max_fp) if has_gt else None,
    "thresholds": thresholds.tolist(),
    "fp_per_frame": fp_rate.tolist(),
    "region_detection_rate": region_rate.tolist(),
    "track_detection_rate": track_rate.tolist(),
    "num_gt_regions": int(num_regions),
    "num_gt_tracks": int(num_tracks),
    "num_frames": int(num_frames),
    "iou": iou,
    "iou_threshold": iou_threshold,
    "track_threshold": track_threshold,
    "max_fp": max_fp,
  }
