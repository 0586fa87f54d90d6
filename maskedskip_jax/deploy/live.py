"""predict on a live source: frames scored as they arrive, outputs written as they go.

Into the out folder, from the start:
  scores.csv    one row per frame, appended and flushed as soon as its smoothed score is final (`smoothing.py`: the
                chain's half-width after the frame), so a reader, a crash or a kill keeps every row written;
  events.json   replaced atomically (temp name, then rename) whenever an event closes, and at the end, when its
                'complete' turns true;
  overlay.mp4   written frame by frame and finalised at the end (a SIGKILL leaves it unplayable, nothing else);
  summary.json  at the end: frames, seconds, frame rates, connections, why it ended, and the latency from a frame's
                arrival to its score and to its scores.csv row (median, p95, max), also printed in one line.

Each connection to the source (`sources.Feed`) is scored as a video of its own: the clips at a drop see their
connection's last frame repeated, as at a video's end, so every frame read before a drop is scored and written when
the drop is noticed, and events close there. Frame numbers run on across connections.

SIGINT (Ctrl-C) and SIGTERM stop the reading; the frames already read are scored and written, events closed, the
summary written, and predict exits with status 0. A second Ctrl-C interrupts at once.
"""

import contextlib
import csv
import dataclasses
import json
import os
import signal
import sys
import threading
import time

import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.deploy import alarms
from maskedskip_jax.deploy import smoothing
from maskedskip_jax.deploy import sources
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import overlay

_RESOLUTION = 1e-3  # latency histogram bin, seconds
_LONGEST = 600.0  # latencies above this fall in the last bin


class Latency:
  """Quantiles of a stream of durations in constant memory: a histogram of _RESOLUTION-wide bins."""

  def __init__(self):
    self._counts = np.zeros(int(_LONGEST / _RESOLUTION) + 1, np.int64)
    self.count, self.longest = 0, 0.0

  def add(self, seconds: float) -> None:
    self._counts[min(len(self._counts) - 1, max(0, round(seconds / _RESOLUTION)))] += 1
    self.count += 1
    self.longest = max(self.longest, seconds)

  def quantile(self, q: float) -> float | None:
    if not self.count:
      return None
    rank = max(1, int(np.ceil(q * self.count)))
    return round(float(np.searchsorted(np.cumsum(self._counts), rank)) * _RESOLUTION, 6)

  def summary(self) -> dict:
    return {"median": self.quantile(0.5), "p95": self.quantile(0.95), "max": round(self.longest, 6) or None}


def _signals(stop: threading.Event, state: dict):
  """Installs SIGINT/SIGTERM handlers that set `stop`; returns a function restoring the previous ones."""
  if threading.current_thread() is not threading.main_thread():
    return lambda: None  # only the main thread may handle signals; callers on others stop through `stop`

  def handle(signum, _):
    state["ended"] = signal.Signals(signum).name
    stop.set()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

  previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
  return lambda: [signal.signal(s, h) for s, h in previous.items()]


def check_out_dir(out_dir: str) -> None:
  if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
    raise UserError(
      f"{out_dir}: exists and is not empty; a live source writes into --out as it goes, so pass a new or empty folder"
    )


@dataclasses.dataclass
class _Run:
  """What the loop has written so far."""

  frames: int = 0
  rows: int = 0
  events: list = dataclasses.field(default_factory=list)


def run(
  scorer,
  feed: sources.Feed,
  fps: float,
  out_dir: str,
  settings: alarms.Settings,
  *,
  to_model,
  to_shown,
  write_overlay: bool,
  vmax: float,
) -> dict:
  """Scores `feed` (opened, at `fps`) until it ends, gives up or is stopped; returns the summary.

  to_model(image, k): the model's input for frame k; to_shown(image): the frame as the overlay shows it.
  Raises the feed's one-line error after writing everything, when it gave up.
  """
  os.makedirs(out_dir, exist_ok=True)
  state = {"ended": "end of source"}
  restore = _signals(feed.stop, state)
  done, arrivals, shown = _Run(), {}, {}
  score_latency, row_latency = Latency(), Latency()
  begin = time.monotonic()
  delay = smoothing.radius(settings.steps)

  def write_events(complete: bool) -> None:
    if settings.threshold is not None:
      doc = alarms.document(settings, done.events, fps, source=feed.name, frames=done.rows, complete=complete)
      atomic.write_json(os.path.join(out_dir, "events.json"), doc)

  sink = overlay.VideoSink(os.path.join(out_dir, "overlay.mp4"), fps) if write_overlay else None
  try:
    with open(os.path.join(out_dir, "scores.csv"), "w", newline="") as f, sink or contextlib.nullcontext():
      table = csv.writer(f)
      table.writerow(["frame", "score", "score_smoothed"])
      f.flush()
      write_events(complete=False)
      curve = None
      for connection in feed.connections():
        base, chain, tracker = done.frames, smoothing.RunningChain(settings.steps), settings.tracker(fps)

        def rows(final, base=base, tracker=tracker):
          for k, score, smoothed in final:
            table.writerow([base + k, f"{score:.8g}", f"{smoothed:.8g}"])
            f.flush()
            row_latency.add(time.monotonic() - arrivals.pop(base + k))
            done.rows += 1
            closed = tracker.add(smoothed) if tracker else []
            done.events += [_shifted(e, base) for e in closed]
            if closed:
              write_events(complete=False)

        def frames(connection=connection, base=base):
          for k, frame in enumerate(connection):
            arrivals[base + k] = frame.arrived
            if sink:
              shown[base + k] = to_shown(frame.image)
            yield to_model(frame.image, base + k)

        try:
          for item in scorer.stream([frames()]):
            k = base + item.frame
            score_latency.add(time.monotonic() - arrivals[k])
            done.frames = k + 1
            if sink:
              picture = shown.pop(k)
              if curve is None:  # the strip scrolls: a live source has no known length
                curve = overlay.ScoreCurve(picture.shape[1], max(24, picture.shape[0] // 5))
              curve.add(item.score)
              sink.write(overlay.overlay_frame(picture, item.score_map, curve, vmax))
            rows(chain.add(item.score))
        finally:  # a drop, the end, a stop or an error: what was scored is written
          rows(chain.finish())
          if tracker:
            done.events += [_shifted(e, base) for e in tracker.finish()]
          f.flush()
          os.fsync(f.fileno())
  except BaseException as e:
    state["ended"] = f"error: {e}" if str(e) else type(e).__name__
    raise
  finally:
    restore()
    feed.close()
    if feed.error:
      state["ended"] = f"gave up: {feed.error}"
    write_events(complete=True)
    seconds = time.monotonic() - begin
    summary = {
      "source": feed.name,
      "realtime_file": feed.realtime,
      "frames": done.rows,
      "seconds": round(seconds, 3),
      "fps_source": fps,
      "fps_scored": round(done.rows / seconds, 3) if seconds > 0 else None,
      "connections": feed.reconnects + 1,
      "ended": state["ended"],
      "events": len(done.events) if settings.threshold is not None else None,
      "smoothing_delay_frames": delay,
      "latency_seconds": {"score": score_latency.summary(), "smoothed_row": row_latency.summary()},
    }
    atomic.write_text(os.path.join(out_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    print(_latency_line(summary), file=sys.stderr, flush=True)
  if feed.error:
    raise UserError(f"{feed.error}; everything read before is in {out_dir}")
  return summary


def _shifted(event, base: int):
  return dataclasses.replace(event, start=event.start + base, end=event.end + base, peak_frame=event.peak_frame + base)


def _latency_line(summary: dict) -> str:
  lat = summary["latency_seconds"]

  def two(d):
    return "n/a" if d["median"] is None else f"median {d['median']:.3f} s, p95 {d['p95']:.3f} s"

  return (
    f"latency from frame arrival over {summary['frames']} frames: to its score {two(lat['score'])}; "
    f"to its scores.csv row {two(lat['smoothed_row'])} (smoothing waits {summary['smoothing_delay_frames']} frames)"
  )
