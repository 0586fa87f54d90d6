"""The alarm threshold: the quantile rule by hand, the refused chains, the record's contract, the test-set numbers."""

import types

from model_helpers import Record
import numpy as np
import pytest
import tiny_run

from data_pipeline import framestore
from data_pipeline import holdout
from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import postprocess
from maskedskip_jax.eval import streaming
from maskedskip_jax.eval import threshold

CONTRACT = ("threshold", "score", "patch", "postprocess", "false_alarm_rate", "min_event_seconds", "merge_gap_seconds")


@pytest.mark.parametrize(
  "n, rate, want, allowed",
  [
    (100, 0.01, 99.0, 1),  # one frame of 100 may lie above: the 99th smallest
    (300, 0.01, 297.0, 3),
    (100, 0.29, 71.0, 29),  # 0.29 * 100 is 28.999999999999996 in floating point: still 29 frames
    (50, 0.01, 50.0, 0),  # fewer than 1 / rate frames: the largest
    (1, 0.5, 1.0, 0),
  ],
)
def test_quantile_rule_by_hand(n, rate, want, allowed):
  scores = np.arange(1, n + 1, dtype=np.float64)
  rng = np.random.default_rng(0)
  shuffled = rng.permutation(scores)
  # Videos are pooled: where a frame sits makes no difference.
  got = threshold.quantile([shuffled[: n // 3], shuffled[n // 3 :]], rate)
  assert got == (want, allowed)
  assert np.sum(scores > got[0]) == allowed <= rate * n + 1e-9


def test_quantile_with_ties_never_lets_more_than_allowed_above():
  value, allowed = threshold.quantile([np.array([1.0, 2, 2, 2, 2, 2, 3, 3, 3, 3])], 0.3)
  assert (value, allowed) == (3.0, 3)  # the 7th smallest is 3; then no frame scores above it
  value, allowed = threshold.quantile([np.array([1.0, 2, 2, 2, 2, 2, 3, 3, 3, 3])], 0.5)
  assert (value, allowed) == (2.0, 5)  # the 5th smallest: the four 3s lie above, four <= five
  with pytest.raises(UserError, match="no held-out frames"):
    threshold.quantile([np.zeros(0)], 0.01)


@pytest.mark.parametrize("chain", ["minmax", "zscore", "median:window=5+zscore", "gaussian:sigma=2+minmax"])
def test_per_video_normalisation_is_refused(chain):
  with pytest.raises(UserError, match="eval.alarm_postprocess") as info:
    threshold.alarm_chain(chain)
  assert "\n" not in str(info.value)
  config = config_lib.with_values(config_lib.default_config(), {"eval.alarm_postprocess": chain})
  with pytest.raises(UserError, match="config key eval.alarm_postprocess: expected a chain of none, median"):
    validation.validate(config)


def test_default_and_smoothing_chains_are_accepted():
  config = config_lib.default_config()
  validation.validate(config)
  assert config.eval.alarm_postprocess == threshold.DEFAULT_POSTPROCESS == "gaussian:sigma=3"
  assert config.eval.false_alarm_rate == 0.01 and config.data.fps == 0
  for chain in ("none", "median:window=9", "median+gaussian:sigma=2"):
    assert threshold.alarm_chain(chain) == postprocess.parse_chain(chain)
  for key, value in (("eval.false_alarm_rate", 0.0), ("eval.false_alarm_rate", 1.0), ("eval.min_event_seconds", -1)):
    with pytest.raises(UserError, match=f"config key {key}"):
      validation.validate(config_lib.with_values(config, {key: value}))


def test_frame_rate_of_each_layout():
  config = config_lib.default_config()
  assert threshold.frame_rate(config_lib.with_values(config, {"data.name": "ucsd_ped2"}))[0] == 10.0
  assert threshold.frame_rate(config_lib.with_values(config, {"data.name": "cuhk_avenue"}))[0] == 25.0
  assert threshold.frame_rate(config_lib.with_values(config, {"data.name": "shanghaitech"}))[0] == 24.0
  fps, source = threshold.frame_rate(config_lib.with_values(config, {"data.name": "generic"}))
  assert fps == 25.0 and "assumed" in source
  assert threshold.frame_rate(config_lib.with_values(config, {"data.name": "ucsd_ped2", "data.fps": 7.5})) == (
    7.5,
    "data.fps",
  )


class FakeScorer:
  """A scorer whose frame score is the frame's first pixel: held-out scores chosen by hand."""

  patch = 8
  score_name = "reconstruction"  # what the record names as its score (streaming.StreamingScorer's)
  model = types.SimpleNamespace(dtype=np.float32)

  def stream(self, videos):
    for v, frames in enumerate(videos):
      for k, frame in enumerate(frames):
        yield streaming.ScoredFrame(v, k, float(frame[0, 0, 0]))


def _store(values_by_video):
  frames = np.concatenate([np.asarray(v, np.uint8) for v in values_by_video])[:, None, None, None]
  frames = np.broadcast_to(frames, (len(frames), 2, 2, 1)).copy()
  records = [Record(f"train{v}", None) for v in range(len(values_by_video))]
  return framestore.FrameStore(frames, [len(v) for v in values_by_video], records)


def _config(**values):
  base = tiny_run.config("unused", "")
  return config_lib.with_values(base, {"eval.alarm_postprocess": "none", **values})


def test_calibrate_gives_the_contracted_record():
  rng = np.random.default_rng(1)
  train = _store([rng.integers(0, 50, 30), rng.integers(0, 50, 40), rng.permutation(150)])  # the last is held out
  config = _config(**{"data.holdout_share": 0.3, "eval.false_alarm_rate": 0.02})
  record = threshold.calibrate(threshold.plan(config, train, 12), FakeScorer())
  assert set(CONTRACT) <= set(record) and set(threshold.RECORD_KEYS) == {*CONTRACT, "calibration"}
  # 150 held-out frames 0..149 at 2 %: floor(3) = 3 may lie above, so the threshold is 146.
  assert record["threshold"] == 146.0 and isinstance(record["threshold"], float)
  assert record["score"] == "reconstruction" and record["patch"] == 8 and record["postprocess"] == "none"
  assert (record["false_alarm_rate"], record["min_event_seconds"], record["merge_gap_seconds"]) == (0.02, 0.5, 1.0)
  c = record["calibration"]
  assert {k: c[k] for k in holdout.describe(train, 0.3)} == holdout.describe(train, 0.3)
  assert c["videos"] == ["train2"] and c["held_out_frames"] == 150 and c["checkpoint_step"] == 12
  assert c["quantile_rule"] == threshold.QUANTILE_RULE and "floor(r * n)" in c["quantile_rule"]
  assert c["frames_above"] == 3 and c["warning"] is None and c["fps"] == 25.0


def test_calibration_smooths_each_held_out_video_and_warns_when_short():
  scores = [[0, 0, 90, 0, 0, 0], [10, 10, 10, 10]]
  train = _store([[0] * 5, *scores])
  config = _config(**{"data.holdout_share": 0.6, "eval.alarm_postprocess": "median:window=3"})
  record = threshold.calibrate(threshold.plan(config, train, 3), FakeScorer())
  # The median removes the one-frame spike: the largest smoothed held-out score is the second video's 10.
  want = max(s.max() for s in postprocess.postprocess([np.asarray(s, float) for s in scores], "median:window=3"))
  assert record["threshold"] == want == 10.0 and record["postprocess"] == "median:window=3"
  assert "only 10 held-out frames, fewer than 1 / false_alarm_rate = 100" in record["calibration"]["warning"]


def test_no_held_out_share_means_no_threshold_and_says_why():
  config = _config(**{"data.holdout_share": 0.0})
  plan = threshold.plan(config, None, 3)
  record = threshold.calibrate(plan, FakeScorer())
  assert record["threshold"] is None and "data.holdout_share is 0.0" in record["reason"]
  section, scores = threshold.section(plan, FakeScorer(), [np.zeros(3)], [np.zeros(3)], ["t"])
  assert section == record and scores is None
  assert threshold.summary(section).startswith("alarm: no threshold (data.holdout_share is 0.0")


def test_measure_by_hand():
  record = {
    "threshold": 0.5,
    "score": "reconstruction",
    "postprocess": "none",
    "false_alarm_rate": 0.01,
    "min_event_seconds": 0.2,  # 2 frames at 10 fps
    "merge_gap_seconds": 0.1,  # 1 frame
    "calibration": {"fps": 10.0, "warning": None},
  }
  s0 = np.array([0, 0.9, 0, 0, 0.8, 0.9, 0, 0, 0.6, 0.7, 0.2, 0.9, 0, 0, 0.4])
  y0 = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0])
  s1 = np.array([0.7, 0.6, 0, 0, 0, 0, 0, 0, 0, 0])
  y1 = np.zeros(10, int)
  y1[5:7] = 1
  got = threshold.measure(record, [s0, s1, s0], [y0, y1, None], ["a", "b", "unlabelled"])
  # Flagged: a 1, 4, 5, 8, 9, 11 (anomalous 8, 9, 11); b 0, 1 (none anomalous).
  assert (got["true_positives"], got["false_positives"], got["flagged_frames"]) == (3, 5, 8)
  assert got["precision"] == 3 / 8 and got["recall"] == 3 / 7 and got["false_positive_rate"] == 5 / 18
  assert got["f1"] == pytest.approx(2 * (3 / 8) * (3 / 7) / (3 / 8 + 3 / 7))
  # Events (min 2 frames, gaps of 1 merged): a 4-5 (false alarm), 8-11 (hit); a's frame 1 alone is too short;
  # b 0-1 (false alarm). b's anomaly 5-6 is missed.
  assert (got["events"], got["false_alarms"]) == (3, 2)
  assert (got["anomaly_intervals"], got["anomaly_intervals_hit"]) == (2, 1)
  assert got["videos"] == ["a", "b"] and got["frames"] == 25
  assert got["hours"] == 25 / 10 / 3600 and got["false_alarms_per_hour"] == pytest.approx(2 / (25 / 36000))
  assert (got["min_event_frames"], got["merge_gap_frames"]) == (2, 1)
  line = threshold.summary({**record, "test": got})
  assert line.startswith("alarm at threshold 0.5 (1% false alarms on held-out normal footage): precision 0.375")
  assert "recall 0.429" in line and "2880.0 false alarms per hour" in line
