"""The alarm threshold: the score above which a frame raises an alarm, and what it gives on a labelled test set.

A threshold set on frames the model trained on is set too low (they reconstruct better than any new footage), so it
is calibrated on the held-out share of the training videos (`data_pipeline.holdout`, data.holdout_share), which is
normal footage the model never saw. Each held-out frame gets the reconstruction frame score (eval.patch), streamed
exactly as the evaluation streams the test set, and each held-out video is post-processed by the alarm's chain
(eval.alarm_postprocess). That chain may not normalise a video by its own scores (minmax, zscore): a fixed threshold
would then mean something different on every video. The threshold is QUANTILE_RULE at eval.false_alarm_rate.

`calibrate` returns the record that export stores in the bundle's model.json under "alarm" and evaluation puts in
report.json; its keys are a contract with `predict`. `measure` measures it on the test set: frames flagged
(score above the threshold) against the labels, and alarm events (`events.segments`, eval.min_event_seconds and
eval.merge_gap_seconds at the footage's frame rate) against the labelled anomalous intervals.
"""

import dataclasses
import math
from typing import Any

import numpy as np

from data_pipeline import registry
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import events
from maskedskip_jax.eval import postprocess as postprocess_lib

SCORE = "reconstruction"  # the U-Net family's frame score; a scorer names its own (score_name)
DEFAULT_POSTPROCESS = "gaussian:sigma=3"
DEFAULT_FPS = 25.0
# The keys of the alarm record (`calibrate`) that readers of a bundle rely on; more may be added, none renamed.
RECORD_KEYS = tuple(
  "threshold score patch postprocess false_alarm_rate min_event_seconds merge_gap_seconds calibration".split()
)
# The eval.* keys this module reads (`plan`).
SETTINGS = ("false_alarm_rate", "alarm_postprocess", "min_event_seconds", "merge_gap_seconds")
# Methods that rescale each video by its own statistics: no threshold fixed in advance can apply to their output.
NORMALISING = ("minmax", "zscore")
QUANTILE_RULE = (
  "with n held-out frames and false-alarm rate r, k = floor(r * n) frames may score above the threshold: it is the "
  "(n - k)-th smallest held-out score (the empirical (1 - r) quantile, numpy's 'inverted_cdf' method), so at most "
  "floor(r * n) held-out frames score above it; a frame alarms when its score is strictly above the threshold"
)


def alarm_chain(spec) -> list[tuple[str, dict[str, Any]]]:
  """The parsed alarm post-processing chain; a UserError for a chain that normalises each video on its own."""
  steps = postprocess_lib.parse_chain(spec)
  bad = [m for m, _ in steps if m in NORMALISING]
  if bad:
    raise UserError(
      f"eval.alarm_postprocess: '{bad[0]}' rescales each video by its own scores, so no fixed alarm threshold "
      f"applies to it; use a chain of none, median and gaussian, got {spec!r}"
    )
  return steps


def postprocess_problem(spec) -> str | None:
  """What eval.alarm_postprocess should have been, or None when `spec` is a fit alarm chain (the config's check)."""
  try:
    alarm_chain(spec)
  except UserError:
    return (
      f"a chain of none, median and gaussian such as '{DEFAULT_POSTPROCESS}' (a fixed threshold cannot apply to "
      "scores normalised per video by minmax or zscore)"
    )
  return None


def quantile(scores, false_alarm_rate: float) -> tuple[float, int]:
  """(the threshold, the number k of frames allowed above it) for `scores` under QUANTILE_RULE."""
  s = np.sort(np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in scores]) if len(scores) else [])
  if not s.size:
    raise UserError("alarm threshold: no held-out frames to calibrate on")
  if not 0 < false_alarm_rate < 1:
    raise UserError(f"eval.false_alarm_rate: expected a fraction strictly between 0 and 1, got {false_alarm_rate}")
  # The tolerance keeps r * n = 3 from becoming 2.9999999999999996 and losing a frame to floating point.
  allowed = int(math.floor(false_alarm_rate * s.size + 1e-9))
  return float(s[s.size - 1 - allowed]), allowed


def frame_rate(config) -> tuple[float, str]:
  """(frames per second of the config's footage, where that figure comes from)."""
  fps = float((config.get("data") or {}).get("fps", 0.0) or 0.0)
  if fps > 0:
    return fps, "data.fps"
  name = config.data.name
  if name in registry.FPS:
    return registry.FPS[name], f"the {name} layout's frame rate (data_pipeline.registry.FPS)"
  return DEFAULT_FPS, f"assumed: the {name} layout states no frame rate (set data.fps)"


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a calibration needs besides the model: the held-out footage (None: no held-out share) and the settings."""

  held: Any
  holdout: dict[str, Any]
  false_alarm_rate: float = 0.01
  postprocess: str = DEFAULT_POSTPROCESS
  min_event_seconds: float = 0.5
  merge_gap_seconds: float = 1.0
  fps: float = DEFAULT_FPS
  fps_source: str = "assumed"
  checkpoint_step: int | None = None


def plan(config, train_store, checkpoint_step: int | None) -> Plan:
  """The calibration plan of `config` for the full training split `train_store` (None when share is 0)."""
  from data_pipeline import holdout  # pylint: disable=g-import-not-at-top

  share, e = config.data.holdout_share, config.eval
  held = holdout.split(train_store, share)[1] if share > 0 else None
  described = holdout.describe(train_store, share) if held is not None else {"share": share}
  settings = (e.false_alarm_rate, e.alarm_postprocess, e.min_event_seconds, e.merge_gap_seconds)
  return Plan(held, described, *settings, *frame_rate(config), checkpoint_step)


def absent(plan_: Plan) -> dict[str, Any] | None:
  """The reason no threshold can be calibrated ({'threshold': None, 'reason': ...}), or None when one can."""
  if plan_.held is not None:
    return None
  return {
    "threshold": None,
    "reason": f"data.holdout_share is {plan_.holdout.get('share', 0)}: no normal footage was held out of "
    "training to calibrate an alarm threshold on",
  }


def stream_scores(scorer, store) -> list[np.ndarray]:
  """Each video's reconstruction frame scores from a `streaming.StreamingScorer`, as the evaluation gets them."""
  scores = [[] for _ in range(store.num_videos)]
  for item in scorer.stream(store.video_frames(v) for v in range(store.num_videos)):
    scores[item.video].append(item.score)
  return [np.asarray(s, np.float64) for s in scores]


def calibrate(plan_: Plan, scorer) -> dict[str, Any]:
  """The alarm record for the model `scorer` runs (its patch is the score's), or `absent`'s reason."""
  missing = absent(plan_)
  if missing:
    return missing
  steps = alarm_chain(plan_.postprocess)
  scores = postprocess_lib.postprocess(stream_scores(scorer, plan_.held), steps)
  value, allowed = quantile(scores, plan_.false_alarm_rate)
  n = int(sum(len(s) for s in scores))
  above = int(sum(int(np.sum(s > value)) for s in scores))
  need = math.ceil(1 / plan_.false_alarm_rate - 1e-9)
  warning = None
  if n < need:
    warning = (
      f"only {n} held-out frames, fewer than 1 / false_alarm_rate = {need}: the threshold is the largest held-out "
      "score, and the rate it gives cannot be resolved; hold out more footage (data.holdout_share)"
    )
  return {
    "threshold": value,
    "score": scorer.score_name,
    "patch": None if scorer.patch is None else int(scorer.patch),
    "postprocess": postprocess_lib.describe(steps),
    "false_alarm_rate": float(plan_.false_alarm_rate),
    "min_event_seconds": float(plan_.min_event_seconds),
    "merge_gap_seconds": float(plan_.merge_gap_seconds),
    "calibration": {
      **plan_.holdout,
      "held_out_frames": n,
      "checkpoint_step": plan_.checkpoint_step,
      "quantile_rule": QUANTILE_RULE,
      "frames_allowed_above": allowed,
      "frames_above": above,
      "fps": plan_.fps,
      "fps_source": plan_.fps_source,
      "dtype": np.dtype(scorer.model.dtype).name,
      "warning": warning,
    },
  }


def alarm_scores(record: dict[str, Any], recon) -> list[np.ndarray]:
  """Per-video alarm scores: the reconstruction scores `recon` under the record's post-processing."""
  return postprocess_lib.postprocess(recon, alarm_chain(record["postprocess"]))


def _ratio(a: int, b: int) -> float | None:
  return a / b if b else None


def measure(record: dict[str, Any], scores, labels, names) -> dict[str, Any]:
  """What the record's threshold gives on the labelled videos: `scores` are their alarm scores (`alarm_scores`).

  Frame numbers count every labelled frame, flagged when its score is above the threshold. Events come from
  `events.segments`; an event overlapping no anomalous frame is a false alarm, and an anomalous interval (a run of
  anomalous frames) is hit when an event overlaps it. Hours are labelled frames / fps / 3600.
  """
  from maskedskip_jax.eval import plots  # pylint: disable=g-import-not-at-top

  t, fps = record["threshold"], record["calibration"]["fps"]
  # predict's conversion: an event lasts at least min_event_seconds, a merged gap at most merge_gap_seconds.
  min_frames = events.min_frames(record["min_event_seconds"], fps)
  merge_gap = events.gap_frames(record["merge_gap_seconds"], fps)
  tp = fp = fn = tn = n_events = false_alarms = intervals = hit = 0
  videos = []
  for s, y, name in zip(scores, labels, names):
    if y is None:
      continue
    videos.append(name)
    flagged, truth = np.asarray(s) > t, np.asarray(y) != 0
    tp, fp = tp + int(np.sum(flagged & truth)), fp + int(np.sum(flagged & ~truth))
    fn, tn = fn + int(np.sum(~flagged & truth)), tn + int(np.sum(~flagged & ~truth))
    found = events.segments(np.asarray(s, np.float64), t, min_frames=min_frames, merge_gap=merge_gap)
    n_events += len(found)
    false_alarms += sum(1 for e in found if not truth[e.start : e.end + 1].any())
    gt = plots.anomalous_intervals(truth)
    intervals += len(gt)
    hit += sum(1 for a, b in gt if any(e.start <= b and a <= e.end for e in found))
  precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
  frames = tp + fp + fn + tn
  hours = frames / fps / 3600
  return {
    "videos": videos,
    "frames": frames,
    "anomalous_frames": tp + fn,
    "flagged_frames": tp + fp,
    "true_positives": tp,
    "false_positives": fp,
    "precision": precision,
    "recall": recall,
    "f1": None if not precision or not recall else 2 * precision * recall / (precision + recall),
    "false_positive_rate": _ratio(fp, fp + tn),
    "fps": fps,
    "hours": hours,
    "min_event_frames": min_frames,
    "merge_gap_frames": merge_gap,
    "events": n_events,
    "false_alarms": false_alarms,
    "false_alarms_per_hour": _ratio(false_alarms, hours) if hours else None,
    "anomaly_intervals": intervals,
    "anomaly_intervals_hit": hit,
    "protocol": (
      "frames flagged when the alarm score is above the threshold, over the labelled test videos; events from "
      "events.segments at min_event_frames and merge_gap_frames; a false alarm is an event overlapping no "
      "anomalous frame; an anomalous interval is hit when an event overlaps it"
    ),
  }


def section(plan_: Plan | None, scorer, recon, labels, names) -> tuple[dict[str, Any], list[np.ndarray] | None]:
  """(report.json's "alarm": the record and its `measure` under "test", the test videos' alarm scores or None).

  `recon`: the test videos' reconstruction frame scores, raw, from the same `scorer`. No plan: no threshold, and
  the section says so.
  """
  if plan_ is None:
    return {"threshold": None, "reason": "no calibration was asked for (no held-out footage given)"}, None
  record = calibrate(plan_, scorer)
  if record["threshold"] is None:
    return record, None
  scores = alarm_scores(record, recon)
  return {**record, "test": measure(record, scores, labels, names)}, scores


def drawn(alarm: dict[str, Any], scores, headline: str | None):
  """What the per-video plots draw of the alarm: None without a threshold, else (per-video alarm scores, threshold,
  label, on_headline). `headline`: the headline score's post-processing when that score is the reconstruction
  alone, else None; the line goes on the headline curve exactly when the two scores are the same."""
  if scores is None:
    return None
  label = f"alarm score ({alarm['score']}, {alarm['postprocess']})"
  return scores, alarm["threshold"], label, headline == alarm["postprocess"]


def _number(x, digits: str = ".3f") -> str:
  return "n/a" if x is None else format(x, digits)


def summary(alarm: dict[str, Any]) -> str:
  """The evaluation's closing line about the alarm."""
  if alarm.get("threshold") is None:
    return f"alarm: no threshold ({alarm.get('reason', 'not calibrated')})"
  r, rate = alarm["test"], alarm["false_alarm_rate"]
  return (
    f"alarm at threshold {alarm['threshold']:.6g} ({rate * 100:g}% false alarms on held-out normal footage): "
    f"precision {_number(r['precision'])}, recall {_number(r['recall'])}, "
    f"{_number(r['false_alarms_per_hour'], '.1f')} false alarms per hour "
    f"({r['false_alarms']} of {r['events']} events, {r['anomaly_intervals_hit']}/{r['anomaly_intervals']} "
    "anomalies hit)" + (f"; warning: {alarm['calibration']['warning']}" if alarm["calibration"]["warning"] else "")
  )
