"""predict's alarm settings: which threshold turns smoothed scores into events, and events.json.

The threshold comes from `--threshold`, else from the bundle's calibrated alarm record (`bundle_files.alarm`). A
calibrated threshold holds only for the score it was calibrated on, so with a record the scorer uses the record's
patch and the smoothing defaults to the record's chain; a different `--postprocess` makes the threshold meaningless,
and then only an explicit `--threshold` gives events. Without either there are no events: scores.csv and the
overlay are written as always, and one line says why events.json is not.

The minimum event duration and the merge gap are in seconds (flags, else the record's, else the defaults here) and
become frames at the source's frame rate (`eval/events.py`). Nothing here imports jax.
"""

import dataclasses
import math
import os

from maskedskip_jax.deploy import bundle_files
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import events as events_lib
from maskedskip_jax.eval import postprocess as postprocess_lib

DEFAULT_POSTPROCESS = "gaussian:sigma=3"
DEFAULT_MIN_SECONDS = 0.5  # shorter alarms are mostly single noisy frames
DEFAULT_GAP_SECONDS = 1.0  # one incident that dips under the threshold briefly stays one event
FROM_FLAG = "--threshold"
FROM_BUNDLE = "bundle alarm"


@dataclasses.dataclass(frozen=True)
class Settings:
  """What predict scores and smooths with, and the event rule; threshold None: no events."""

  steps: list
  patch: int
  threshold: float | None
  threshold_source: str | None
  min_seconds: float
  gap_seconds: float
  alarm: dict | None
  notes: tuple[str, ...] = ()  # one line each, for stderr

  @property
  def postprocess(self) -> str:
    return postprocess_lib.describe(self.steps)

  def tracker(self, fps: float) -> events_lib.Tracker | None:
    if self.threshold is None:
      return None
    return events_lib.Tracker(self.threshold, **self.frames(fps))

  def frames(self, fps: float) -> dict:
    """The event rule in frames at `fps`: {'min_frames', 'merge_gap'}."""
    return {
      "min_frames": events_lib.min_frames(self.min_seconds, fps),
      "merge_gap": events_lib.gap_frames(self.gap_seconds, fps),
    }


def _seconds(flag: str, value) -> float:
  if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
    raise UserError(f"{flag}: must be a non-negative number of seconds, got {value}")
  return float(value)


def resolve(
  model_dir: str,
  *,
  threshold: float | None = None,
  postprocess: str | None = None,
  min_duration: float | None = None,
  merge_gap: float | None = None,
) -> Settings:
  """The settings for a bundle and the user's flags (None: not given)."""
  record = bundle_files.alarm(model_dir)
  notes = []
  steps = postprocess_lib.parse_chain(postprocess if postprocess is not None else DEFAULT_POSTPROCESS)
  calibrated = record is not None
  if record is not None:
    try:
      alarm_steps = postprocess_lib.parse_chain(record["postprocess"])
    except UserError as e:
      raise UserError(f"{os.path.join(model_dir, bundle_files.CONFIG_FILE)}: alarm record: {e}") from None
    if postprocess is None:
      steps = alarm_steps
    elif postprocess_lib.describe(steps) != postprocess_lib.describe(alarm_steps):
      calibrated = False
      notes.append(
        f"note: --postprocess {postprocess} is not the chain the bundle's alarm was calibrated with "
        f"({record['postprocess']}): its threshold does not apply; events.json only with --threshold"
      )
  if threshold is not None:
    if not math.isfinite(threshold):
      raise UserError(f"--threshold: must be a finite number, got {threshold}")
    source = FROM_FLAG
  elif calibrated:
    threshold, source = record["threshold"], FROM_BUNDLE
  else:
    source = None
    if record is None:
      notes.append("note: no events.json: the bundle has no calibrated alarm threshold; pass --threshold to get one")
  record_min = record and record.get("min_event_seconds")
  record_gap = record and record.get("merge_gap_seconds")
  return Settings(
    steps=steps,
    patch=record["patch"] if record else bundle_files.DEFAULT_PATCH,
    threshold=None if threshold is None else float(threshold),
    threshold_source=source,
    min_seconds=_seconds(
      "--min-duration",
      min_duration if min_duration is not None else record_min if record_min is not None else DEFAULT_MIN_SECONDS,
    ),
    gap_seconds=_seconds(
      "--merge-gap",
      merge_gap if merge_gap is not None else record_gap if record_gap is not None else DEFAULT_GAP_SECONDS,
    ),
    alarm=record,
    notes=tuple(notes),
  )


def document(settings: Settings, found: list, fps: float, *, source: str, frames: int, complete: bool) -> dict:
  """events.json: the events `found` (`events_lib.Event`s) and the rule and threshold that made them."""
  alarm = settings.alarm or {}
  return {
    "source": source,
    "complete": complete,  # False while a live source is still being read
    "frames_scored": frames,
    "fps": fps,
    "score": "score_smoothed",
    "postprocess": settings.postprocess,
    "patch": settings.patch,
    "threshold": settings.threshold,
    "threshold_source": settings.threshold_source,
    "false_alarm_rate": alarm.get("false_alarm_rate") if settings.threshold_source == FROM_BUNDLE else None,
    "min_duration_seconds": settings.min_seconds,
    "merge_gap_seconds": settings.gap_seconds,
    **settings.frames(fps),
    "events": [e.as_json(fps) for e in found],
  }
