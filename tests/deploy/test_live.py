"""predict on live sources: a realtime file, MJPEG streams that drop, stall or come back, SIGTERM and Ctrl-C."""

import http.server
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import cv2
from live_scene import FPS
from live_scene import rows
from live_scene import scene
from live_scene import write_mp4
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax import predict as predict_cli
from maskedskip_jax.deploy import bundle
from maskedskip_jax.eval import events

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  path = tmp_path_factory.mktemp("live") / "model"
  config = {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
  return bundle.save(str(path), random_variables(model, seed=5), config)


# A calibrated alarm as export stores it in model.json: what a live source's events use when no --threshold is given.
ALARM = {
  "threshold": 0.3, "score": "reconstruction", "patch": 16, "postprocess": "gaussian:sigma=3", "false_alarm_rate": 0.01,
  "min_event_seconds": 0.1, "merge_gap_seconds": 0.2, "calibration": {"held_out_frames": 500},
}  # fmt: skip


@pytest.fixture(scope="module")
def alarm_dir(model_dir, tmp_path_factory):
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  path = tmp_path_factory.mktemp("live_alarm") / "model"
  config = {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
  return bundle.save(str(path), random_variables(model, seed=5), config, alarm=ALARM)


def test_realtime_file_scores_like_the_batch_path_at_its_frame_rate(model_dir, tmp_path, capsys):
  video = write_mp4(tmp_path / "clip.mp4", 40)  # 2 s at 20 fps
  args = ["--model", model_dir, "--video", video, "--threshold", "0.3"]
  assert predict_cli.main([*args, "--out", str(tmp_path / "batch")]) == 0
  assert predict_cli.main([*args, "--out", str(tmp_path / "live"), "--realtime"]) == 0
  err = capsys.readouterr().err
  batch, live = rows(tmp_path / "batch" / "scores.csv"), rows(tmp_path / "live" / "scores.csv")
  assert [r["frame"] for r in live] == [str(k) for k in range(40)]
  for key in ("score", "score_smoothed"):
    np.testing.assert_allclose([float(r[key]) for r in live], [float(r[key]) for r in batch], atol=1e-5)
  summary = json.loads((tmp_path / "live" / "summary.json").read_text())
  assert summary["frames"] == 40 and summary["ended"] == "end of source" and summary["fps_source"] == FPS
  assert 1.9 <= summary["seconds"] < 6.0  # played at its rate: about its 2 s, whatever the scorer could do
  lat = summary["latency_seconds"]
  assert 0 <= lat["score"]["median"] <= lat["score"]["p95"] and lat["smoothed_row"]["median"] >= 12 / FPS
  assert "latency from frame arrival over 40 frames" in err
  want, got = (json.loads((tmp_path / d / "events.json").read_text()) for d in ("batch", "live"))
  assert got["complete"] and [e["start_frame"] for e in got["events"]] == [e["start_frame"] for e in want["events"]]
  assert sorted(os.listdir(tmp_path / "live")) == ["events.json", "overlay.mp4", "scores.csv", "summary.json"]
  capture = cv2.VideoCapture(str(tmp_path / "live" / "overlay.mp4"))
  assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 40  # finalised


class MjpegServer:
  """Serves `frames` MJPEG frames at FPS on each of the first `sessions` requests, then stalls or closes; later
  requests get 503."""

  def __init__(self, frames: int, stall: bool, sessions: int = 1):
    served = []

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_GET(self):  # noqa: N802  (http.server's name)
        if len(served) >= sessions:
          self.send_error(503)
          return
        served.append(True)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for k in range(frames):
          jpeg = cv2.imencode(".jpg", cv2.cvtColor(scene(k), cv2.COLOR_RGB2BGR))[1].tobytes()
          self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
          self.wfile.write(jpeg + b"\r\n")
          self.wfile.flush()
          time.sleep(1 / FPS)
        if stall:
          time.sleep(3)

    self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.server.daemon_threads = True
    self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
    threading.Thread(target=self.server.serve_forever, daemon=True).start()

  def close(self):
    self.server.shutdown()
    self.server.server_close()


@pytest.mark.parametrize("stall", [False, True], ids=["dropped", "stalled"])
def test_stream_that_dies_is_retried_and_keeps_what_was_written(alarm_dir, tmp_path, capsys, stall):
  server = MjpegServer(30, stall)
  out = tmp_path / "out"
  args = ["--model", alarm_dir, "--video", server.url, "--out", str(out), "--no-overlay"]  # the bundle's threshold
  try:
    code = predict_cli.main([*args, "--retries", "2", "--retry-wait", "0.05", "--read-timeout", "1"])
  finally:
    server.close()
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 1
  assert any(("stalled" if stall else "dropped") in line and "after 30 frame(s)" in line for line in err), err
  assert sum("retrying in" in line for line in err) == 2
  assert err[-1].startswith("error: ") and "gave up after 2 retries after 30 frame(s)" in err[-1]
  assert "Traceback" not in "\n".join(err)
  table = rows(out / "scores.csv")
  assert [int(r["frame"]) for r in table] == list(range(30))  # every frame before the drop, smoothed to the end
  smoothed = [float(r["score_smoothed"]) for r in table]
  doc = json.loads((out / "events.json").read_text())
  assert doc["complete"] and doc["frames_scored"] == 30
  assert (doc["threshold"], doc["threshold_source"], doc["false_alarm_rate"]) == (0.3, "bundle alarm", 0.01)
  # The record's 0.1 s and 0.2 s at the frame rate the stream states (an MJPEG stream states none: 25).
  rule = {"min_frames": events.min_frames(0.1, doc["fps"]), "merge_gap": events.gap_frames(0.2, doc["fps"])}
  assert {k: doc[k] for k in rule} == rule and rule["min_frames"] > 1
  found = events.segments(smoothed, 0.3, **rule)
  assert found and found[-1].end == 29  # an event still open at the drop is closed there, and written
  want = [e.as_json(doc["fps"]) for e in found]
  assert [{**e, "peak_score": 0} for e in doc["events"]] == [{**e, "peak_score": 0} for e in want]
  np.testing.assert_allclose([e["peak_score"] for e in doc["events"]], [e["peak_score"] for e in want], rtol=1e-7)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["ended"].startswith("gave up") and summary["frames"] == 30


def test_stream_that_comes_back_is_scored_on_with_its_frame_numbers(model_dir, tmp_path, capsys):
  server = MjpegServer(15, stall=False, sessions=2)  # 15 frames, a drop, 15 more, then it is gone
  out = tmp_path / "out"
  args = ["--model", model_dir, "--video", server.url, "--out", str(out), "--threshold", "0.3", "--no-overlay"]
  try:
    code = predict_cli.main([*args, "--retries", "1", "--retry-wait", "0.05", "--read-timeout", "1"])
  finally:
    server.close()
  err = capsys.readouterr().err
  assert code == 1 and "reconnected" in err and "gave up after 1 retries after 30 frame(s)" in err, err
  table = rows(out / "scores.csv")
  assert [int(r["frame"]) for r in table] == list(range(30))  # both connections, numbered on across the drop
  # Each connection is scored as a video of its own: its first frames equal the first connection's.
  score = [float(r["score"]) for r in table]
  np.testing.assert_allclose(score[15:], score[:15], atol=1e-6)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["connections"] == 2 and summary["frames"] == 30
  doc = json.loads((out / "events.json").read_text())
  assert doc["complete"] and [(e["start_frame"], e["end_frame"]) for e in doc["events"]] == [(0, 14), (15, 29)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_ends_a_live_run_cleanly(model_dir, tmp_path, signum):
  video = write_mp4(tmp_path / "long.mp4", 400)  # 20 s at 20 fps: still playing when stopped
  out = tmp_path / "out"
  args = ["--model", model_dir, "--video", video, "--out", str(out), "--realtime", "--threshold", "0.3"]
  proc = subprocess.Popen(
    [sys.executable, "-m", "maskedskip_jax.predict", *args],
    cwd=ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  try:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
      if (out / "scores.csv").exists() and len(rows(out / "scores.csv")) >= 5:
        break
      time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be stopped"
    running = json.loads((out / "events.json").read_text())  # written from the start, replaced as events close
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
  finally:
    proc.kill()
  assert proc.returncode == 0, err
  table = rows(out / "scores.csv")
  assert 5 <= len(table) < 400 and [int(r["frame"]) for r in table] == list(range(len(table)))
  summary = json.loads((out / "summary.json").read_text())
  assert summary["ended"] == signum.name and summary["frames"] == len(table)
  doc = json.loads((out / "events.json").read_text())
  assert doc["complete"] and doc["frames_scored"] == len(table)
  assert not running["complete"] and running["frames_scored"] <= len(table)
  assert "latency from frame arrival" in err and "Traceback" not in err
  assert cv2.VideoCapture(str(out / "overlay.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == len(table)
