"""The alarm in evaluation: its threshold, precision and recall by hand from scores.csv, and where plots draw it."""

import csv
import json

import cv2
import jax
from model_helpers import STORE_LENGTHS as LENGTHS
from model_helpers import STORE_NAMES as NAMES
from model_helpers import Record
from model_helpers import centre_clips
from model_helpers import make_store
from model_helpers import random_variables
import numpy as np
import pytest

from data_pipeline import framestore
from maskedskip_jax.eval import diagnostics
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import postprocess
from maskedskip_jax.eval import threshold
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_alarm_section_matches_a_hand_computation_from_scores_csv(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model)
  store, labels, _ = make_store()
  rng = np.random.default_rng(5)
  held_frames = rng.integers(0, 256, (50, 32, 32, 1), dtype=np.uint8)
  held = framestore.FrameStore(held_frames, [20, 30], [Record("Train8", None), Record("Train9", None)])
  plan = threshold.Plan(
    held, {"share": 0.5, "videos": ["Train8", "Train9"]}, 0.1, "gaussian:sigma=2", 0.2, 0.1, 10.0, "test", 7
  )
  out = tmp_path / "eval"
  kw = dict(temporal=3, batch_size=5, pixel_metrics=False, baselines=(), worst_frames=0, progress=False)
  report = evaluate.evaluate_store(
    model, variables, store, postprocess="median:window=5", out_dir=str(out), alarm=plan, **kw
  )
  alarm = report["alarm"]
  assert json.loads((out / "report.json").read_text())["alarm"] == alarm

  # The threshold, by hand: the plain forward's scores of the held-out videos, smoothed, 45th smallest of 50.
  clips = centre_clips([held.video_frames(v) for v in range(2)], 3)
  recon = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, clips)
  plain = np.asarray(scoring.frame_scores(scoring.score_maps(clips[:, 1], recon), 16), np.float64)
  smoothed = np.concatenate(postprocess.postprocess([plain[:20], plain[20:]], "gaussian:sigma=2"))
  assert alarm["threshold"] == pytest.approx(np.sort(smoothed)[44], rel=1e-5)
  assert alarm["calibration"]["held_out_frames"] == 50 and alarm["calibration"]["checkpoint_step"] == 7
  assert alarm["calibration"]["warning"] is None  # 50 frames resolve a rate of 1 in 10

  # Precision and recall, by hand from scores.csv: score_alarm is the raw score smoothed; flagged above threshold.
  rows = read_csv(out / "scores.csv")
  tp = fp = fn = 0
  for name in NAMES:
    mine = [r for r in rows if r["video"] == name]
    raw = np.array([float(r["score"]) for r in mine])
    alarm_scores = np.array([float(r["score_alarm"]) for r in mine])
    np.testing.assert_allclose(alarm_scores, postprocess.postprocess([raw], "gaussian:sigma=2")[0], rtol=1e-6)
    assert np.all(np.abs(alarm_scores - alarm["threshold"]) > 1e-6 * alarm["threshold"])  # no tie to round away
    flagged, truth = alarm_scores > alarm["threshold"], np.array([int(r["label"]) for r in mine]) == 1
    tp, fp, fn = tp + np.sum(flagged & truth), fp + np.sum(flagged & ~truth), fn + np.sum(~flagged & truth)
  test = alarm["test"]
  assert (test["true_positives"], test["false_positives"]) == (tp, fp) and tp + fp > 0
  assert test["precision"] == tp / (tp + fp) and test["recall"] == tp / (tp + fn)
  assert test["frames"] == sum(LENGTHS) and test["fps"] == 10.0 and test["min_event_frames"] == 2

  # The headline (median) is not the alarm's score (gaussian): the plots carry it in a panel of its own.
  heights = {cv2.imread(str(out / "plots" / f"{n}.png")).shape[0] for n in NAMES}
  assert heights == {480}
  text = open(out / "report.html", encoding="utf-8").read()
  assert "Alarm threshold" in text and f"{alarm['threshold']:.6g}" in text


def test_the_threshold_goes_on_the_headline_curve_when_it_is_the_alarm_score(tmp_path, monkeypatch):
  from matplotlib.axes import Axes  # pylint: disable=g-import-not-at-top

  lines, original = [], Axes.axhline
  monkeypatch.setattr(Axes, "axhline", lambda self, y=0, **kw: lines.append(y) or original(self, y, **kw))
  alarm = {"threshold": 2.5, "score": "reconstruction", "postprocess": "gaussian:sigma=3.0,taps=25"}
  scores = [np.linspace(0, 4, 9)]
  same = threshold.drawn(alarm, scores, "gaussian:sigma=3.0,taps=25")
  other = threshold.drawn(alarm, scores, None)  # a hybrid headline: never the alarm's score
  assert same[3] and not other[3] and threshold.drawn(alarm, None, None) is None
  diagnostics.video_plots(str(tmp_path / "same"), ["v"], [None], scores, "gaussian", alarm=same)
  diagnostics.video_plots(str(tmp_path / "other"), ["v"], [None], [np.zeros(9)], "x", alarm=other)
  assert lines == [2.5, 2.5]
  assert cv2.imread(str(tmp_path / "same" / "v.png")).shape[0] == 280
  assert cv2.imread(str(tmp_path / "other" / "v.png")).shape[0] == 480
