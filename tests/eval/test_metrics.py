"""Frame-level and pixel-level metrics on hand-computed cases."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import metrics


def test_hand_computed_auc_ap_eer():
  r = metrics.frame_metrics([np.array([0.1, 0.4, 0.35, 0.8])], [np.array([0, 0, 1, 1])])
  # Pairs (anomalous, normal): 0.35>0.1, 0.35<0.4, 0.8>both -> 3 of 4.
  assert r["frame_auc_micro"] == pytest.approx(0.75)
  assert r["frame_auc_macro"] == pytest.approx(0.75)
  # Ranked: 0.8 (hit, precision 1, recall 1/2), 0.4 (miss), 0.35 (hit, precision 2/3, recall 1).
  assert r["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
  # Flagging scores >= 0.4 misses 0.35 (FNR 1/2) and flags 0.4 (FPR 1/2).
  assert r["eer"] == pytest.approx(0.5)
  assert r["eer_threshold"] == pytest.approx(0.4)
  assert (r["num_frames"], r["num_videos"], r["num_anomalous_frames"]) == (4, 1, 2)
  assert r["roc_curve"]["fpr"][0] == 0.0 and r["roc_curve"]["tpr"][-1] == 1.0
  json.dumps(r)  # the report is JSON-ready


def test_eer_zero_when_separable():
  r = metrics.frame_metrics([np.array([0.1, 0.2, 0.8, 0.9])], [np.array([0, 0, 1, 1])])
  assert r["eer"] == 0.0
  assert r["frame_auc_micro"] == 1.0 and r["average_precision"] == 1.0
  assert 0.2 < r["eer_threshold"] <= 0.8


def test_eer_interpolated_on_a_tied_segment():
  # ROC: (0,0) -> (0,1/2) at 0.9 -> (1/2,1) at the tie 0.6 -> (1,1). The segment y = 1/2 + x meets y = 1 - x at 1/4.
  r = metrics.frame_metrics([np.array([0.2, 0.6, 0.6, 0.9])], [np.array([0, 0, 1, 1])])
  assert r["eer"] == pytest.approx(0.25)


def test_eer_agrees_with_threshold_sweep():
  rng = np.random.default_rng(0)
  y = rng.random(400) < 0.3
  s = rng.normal(size=400) + 1.2 * y
  r = metrics.frame_metrics([s], [y.astype(int)])
  fpr = np.array([(s[~y] >= t).mean() for t in np.sort(s)])
  fnr = np.array([(s[y] < t).mean() for t in np.sort(s)])
  best = np.min(np.maximum(fpr, fnr))
  assert abs(r["eer"] - best) <= 1.0 / min(y.sum(), (~y).sum())
  assert r["frame_auc_micro"] == pytest.approx(skm.roc_auc_score(y, s))


def test_macro_excludes_single_class_video_and_names_it():
  scores = [np.array([0.1, 0.9, 0.2, 0.8]), np.array([0.3, 0.6, 0.2]), np.array([0.9, 0.1])]
  labels = [np.array([0, 1, 0, 1]), np.array([1, 1, 1]), np.array([0, 1])]
  r = metrics.frame_metrics(scores, labels, video_names=["A", "B", "C"])
  assert r["per_video_auc"] == [1.0, None, 0.0]
  assert r["frame_auc_macro"] == pytest.approx(0.5)
  assert r["macro_policy"] == "mean over videos with both classes; 1 single-class videos excluded: [B]"
  # Micro by hand over the 6 x 3 (anomalous, normal) pairs, ties counting 1/2: 10.5 / 18.
  assert r["frame_auc_micro"] == pytest.approx(10.5 / 18)
  assert r["num_anomalous_frames"] == 6 and r["num_frames"] == 9 and r["num_videos"] == 3


def test_single_class_set_gives_none_with_note():
  r = metrics.frame_metrics([np.array([0.1, 0.5]), np.array([0.3])], [np.array([1, 1]), np.array([1])])
  assert r["frame_auc_micro"] is None and r["frame_auc_macro"] is None and r["eer"] is None
  assert r["average_precision"] is None and r["roc_curve"] is None
  assert any("same label" in n for n in r["notes"])
  assert r["macro_policy"].startswith("mean over videos with both classes; 2 single-class videos excluded: [0, 1]")


@pytest.mark.parametrize(
  "scores,labels",
  [
    ([np.zeros(3)], [np.zeros(4)]),
    ([np.zeros(2)], [np.array([0, 2])]),
    ([np.array([0.0, np.nan])], [np.array([0, 1])]),
    ([np.zeros(2), np.zeros(2)], [np.zeros(2)]),
  ],
)
def test_bad_inputs_are_user_errors(scores, labels):
  with pytest.raises(UserError):
    metrics.frame_metrics(scores, labels)


def test_postprocess_is_reexported():
  (out,) = metrics.postprocess([np.array([1.0, 3.0])], "minmax")
  np.testing.assert_array_equal(out, [0.0, 1.0])


def _pixel_data(seed=0):
  rng = np.random.default_rng(seed)
  masks = (rng.random((2, 3, 12, 10)) < 0.2).astype(np.uint8)
  maps = rng.random((2, 3, 12, 10)).astype(np.float32) + 0.3 * masks
  return list(maps), list(masks)


def test_pixel_auroc_exact_matches_sklearn_and_skips_unmasked_videos():
  maps, masks = _pixel_data()
  r = metrics.pixel_auroc(maps + [np.zeros((5, 2, 2))], masks + [None])
  want = skm.roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
  assert r["method"] == "exact" and r["pixel_auroc"] == pytest.approx(want)
  assert r["num_pixels"] == 2 * 3 * 12 * 10 and r["num_frames"] == 6
  assert r["num_anomalous_pixels"] == int(sum(m.sum() for m in masks))


def test_pixel_auroc_histogram_within_its_bound():
  maps, masks = _pixel_data(1)
  exact = metrics.pixel_auroc(maps, masks)["pixel_auroc"]
  r = metrics.pixel_auroc(maps, masks, max_pixels=100)
  assert r["method"] == "histogram"
  assert abs(r["pixel_auroc"] - exact) <= r["error_bound"] + 1e-12
  assert r["error_bound"] < 1e-3
  assert r["num_anomalous_pixels"] == int(sum(m.sum() for m in masks))


def test_pixel_auroc_histogram_separable_is_one():
  masks = [np.zeros((2, 8, 8), np.uint8)]
  masks[0][:, 2:4, 2:4] = 1
  maps = [0.1 + 0.8 * masks[0].astype(np.float32)]
  assert metrics.pixel_auroc(maps, masks, max_pixels=10)["pixel_auroc"] == 1.0


def test_pixel_auroc_shape_mismatch_and_single_class():
  with pytest.raises(UserError, match="pixel_maps_to_size"):
    metrics.pixel_auroc([np.zeros((2, 4, 4))], [np.zeros((2, 8, 8))])
  assert metrics.pixel_auroc([np.zeros((2, 4, 4))], [np.zeros((2, 4, 4))])["pixel_auroc"] is None
