"""Frame-level and pixel-level anomaly detection metrics (SPEC §2), numpy + scikit-learn.

Frame level: ROC-AUC micro (all frames of all videos concatenated) and macro (mean of per-video AUCs over the
videos that contain both classes; single-class videos, e.g. Ped2 Test008-011, are excluded and named in
`macro_policy`), EER, average precision, and counts. Pixel level: AUROC over every pixel of the frames with masks.
Region/track-level RBDC and TBDC live in `region_metrics`.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import postprocess as _postprocess

# Re-exported so callers can keep to the `metrics.postprocess(...)` contract of docs/CONTRACTS.md.
postprocess = _postprocess.postprocess

_HIST_BINS = 1 << 16


def _check_video(v: int, scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
  s = np.asarray(scores, dtype=np.float64)
  y = np.asarray(labels)
  if s.ndim != 1 or y.ndim != 1 or len(s) != len(y):
    raise UserError(
      f"frame_metrics: video {v} has scores of shape {s.shape} and labels of shape {y.shape}; "
      "expected two 1-D arrays of the same length"
    )
  if not np.all(np.isfinite(s)):
    raise UserError(f"frame_metrics: video {v} has non-finite scores")
  if not np.all((y == 0) | (y == 1)):
    raise UserError(f"frame_metrics: video {v} labels must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
  return s, y.astype(np.int64)


def eer_from_roc(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
  """Equal error rate where FPR = 1 - TPR on the piecewise-linear ROC, and a threshold there.

  The rate is interpolated linearly along the ROC segment that crosses the line; the threshold returned is that
  of the segment end nearer the crossing (scikit-learn's first ROC point has threshold +inf, so the segment's
  other end is used when the crossing starts there).
  """
  gap = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to +1 at (1, 1)
  i = int(np.argmax(gap >= 0))
  if i == 0:
    return float(fpr[0]), float(thresholds[0])
  t = -gap[i - 1] / (gap[i] - gap[i - 1])
  eer = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
  near = i - 1 if t < 0.5 and np.isfinite(thresholds[i - 1]) else i
  return float(eer), float(thresholds[near])


def frame_metrics(
  scores_by_video: Sequence[np.ndarray], labels_by_video: Sequence[np.ndarray], video_names: Sequence[str] | None = None
) -> dict[str, Any]:
  """Frame-level metrics over a test set. Higher score = more anomalous; labels are 0/1 per frame.

  Returns a JSON-ready dict: frame_auc_micro, frame_auc_macro, macro_policy, per_video_auc (None for
  single-class videos), eer, eer_threshold, average_precision, num_frames, num_videos, num_anomalous_frames,
  roc_curve {'fpr': [...], 'tpr': [...]}, video_names and notes (why a value is None). Micro metrics are None
  when the whole set has a single class; macro AUC is None when no video has both classes.
  """
  if len(scores_by_video) != len(labels_by_video):
    raise UserError(f"frame_metrics: {len(scores_by_video)} score arrays but {len(labels_by_video)} label arrays")
  if not scores_by_video:
    raise UserError("frame_metrics: no videos to evaluate")
  names = [str(n) for n in video_names] if video_names is not None else [str(i) for i in range(len(scores_by_video))]
  if len(names) != len(scores_by_video):
    raise UserError(f"frame_metrics: {len(names)} video names for {len(scores_by_video)} videos")
  pairs = [_check_video(v, s, y) for v, (s, y) in enumerate(zip(scores_by_video, labels_by_video))]
  notes = []

  per_video, excluded = [], []
  for name, (s, y) in zip(names, pairs):
    if len(y) and y.min() != y.max():
      per_video.append(float(skm.roc_auc_score(y, s)))
    else:
      per_video.append(None)
      excluded.append(name)
  valid = [a for a in per_video if a is not None]
  macro = float(np.mean(valid)) if valid else None
  policy = f"mean over videos with both classes; {len(excluded)} single-class videos excluded: [{', '.join(excluded)}]"
  if macro is None:
    notes.append("frame_auc_macro is None: no video has both normal and anomalous frames")

  s = np.concatenate([p[0] for p in pairs])
  y = np.concatenate([p[1] for p in pairs])
  report = {
    "frame_auc_micro": None,
    "frame_auc_macro": macro,
    "macro_policy": policy,
    "per_video_auc": per_video,
    "eer": None,
    "eer_threshold": None,
    "average_precision": None,
    "num_frames": int(len(y)),
    "num_videos": len(pairs),
    "num_anomalous_frames": int(y.sum()),
    "roc_curve": None,
    "video_names": names,
    "notes": notes,
  }
  if len(y) == 0 or y.min() == y.max():
    notes.append("frame_auc_micro, eer and average_precision are None: all frames have the same label")
    return report
  fpr, tpr, thresholds = skm.roc_curve(y, s)
  report["eer"], report["eer_threshold"] = eer_from_roc(fpr, tpr, thresholds)
  report["frame_auc_micro"] = float(skm.roc_auc_score(y, s))
  report["average_precision"] = float(skm.average_precision_score(y, s))
  report["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
  return report


def _pairs(score_maps_list, masks_list):
  """Yields (video index, scores (n, H, W), masks (n, H, W) bool) for the videos that have masks."""
  if len(score_maps_list) != len(masks_list):
    raise UserError(f"pixel_auroc: {len(score_maps_list)} score-map arrays but {len(masks_list)} mask arrays")
  for v, (maps, masks) in enumerate(zip(score_maps_list, masks_list)):
    if masks is None:
      continue
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.shape != masks.shape or maps.ndim != 3:
      raise UserError(
        f"pixel_auroc: video {v} score maps {maps.shape} and masks {masks.shape} must both be "
        "(n, H0, W0); resize the maps with scoring.pixel_maps_to_size first"
      )
    yield v, maps, masks != 0


def _auc_from_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[float | None, float | None]:
  """AUROC from anomalous/normal counts per score bin (bins in increasing score order), same-bin pairs as ties.

  Returns (auc, error bound = half the fraction of (anomalous, normal) pairs sharing a bin); (None, None) when a
  class is missing. Counts are float64: products of pixel counts overflow int64 on large sets.
  """
  n_pos, n_neg = pos.sum(), neg.sum()
  if n_pos == 0 or n_neg == 0:
    return None, None
  same_bin = float(np.dot(pos, neg))
  below = float(np.dot(pos, np.cumsum(neg) - neg))
  return (below + 0.5 * same_bin) / (n_pos * n_neg), 0.5 * same_bin / (n_pos * n_neg)


def pixel_auroc(
  score_maps_list: Sequence[np.ndarray], masks_list: Sequence[np.ndarray | None], max_pixels: int = 20_000_000
) -> dict[str, Any]:
  """Pixel-level AUROC over every pixel of every frame of the videos that have masks (None entries skipped).

  Up to `max_pixels` pixels the AUROC is exact (each distinct score its own bin, ties 1/2: the value of
  scikit-learn's roc_auc_score; it costs one sort of all pixels). Beyond that, to keep memory bounded
  (Avenue is ~3.5e9 pixels), it is computed from 65,536-bin histograms of the normal and anomalous pixel scores
  over [min, max], one frame at a time: pairs falling in the same bin count as ties (1/2), so the error is at
  most half the fraction of (anomalous, normal) pairs sharing a bin, which is returned as `error_bound`. Nothing
  is subsampled, so the result is deterministic.

  Returns:
    dict(pixel_auroc (None if one class only), method 'exact' | 'histogram', error_bound, num_pixels,
    num_anomalous_pixels, num_frames).
  """
  lo, hi, total, frames = np.inf, -np.inf, 0, 0
  for v, maps, _ in _pairs(score_maps_list, masks_list):
    if maps.size:
      if not np.all(np.isfinite(maps)):
        raise UserError(f"pixel_auroc: video {v} score maps have non-finite values")
      lo, hi = min(lo, float(maps.min())), max(hi, float(maps.max()))
    total += maps.size
    frames += len(maps)
  if total <= max_pixels:
    pairs = list(_pairs(score_maps_list, masks_list))
    s = np.concatenate([m.ravel() for _, m, _ in pairs]) if pairs else np.zeros(0)
    y = np.concatenate([k.ravel() for _, _, k in pairs]) if pairs else np.zeros(0, bool)
    # One bin per distinct score: the histogram counting below with no approximation (true ties count 1/2, as in
    # scikit-learn), and one code path for both.
    values, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse, weights=y, minlength=len(values))
    auc, _ = _auc_from_counts(pos, np.bincount(inverse, minlength=len(values)) - pos)
    return {
      "pixel_auroc": auc,
      "method": "exact",
      "error_bound": 0.0,
      "num_pixels": int(total),
      "num_anomalous_pixels": int(y.sum()),
      "num_frames": frames,
    }

  pos = np.zeros(_HIST_BINS, np.float64)
  neg = np.zeros(_HIST_BINS, np.float64)
  scale = _HIST_BINS / (hi - lo) if hi > lo else 0.0
  for _, maps, masks in _pairs(score_maps_list, masks_list):
    for frame, mask in zip(maps, masks):
      bins = np.minimum(((frame.astype(np.float64) - lo) * scale).astype(np.int64), _HIST_BINS - 1).ravel()
      p = np.bincount(bins, weights=mask.ravel(), minlength=_HIST_BINS)
      pos += p
      neg += np.bincount(bins, minlength=_HIST_BINS) - p
  auc, bound = _auc_from_counts(pos, neg)
  return {
    "pixel_auroc": auc,
    "method": "histogram",
    "error_bound": bound,
    "num_pixels": int(total),
    "num_anomalous_pixels": int(pos.sum()),
    "num_frames": frames,
  }
