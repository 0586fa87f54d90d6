"""predict on live sources: a file played at its frame rate scores like the batch path and takes its duration; a
stream that dies or stalls mid-way is retried, reported, and keeps everything written up to the drop, events from
the bundle's threshold included; one that comes back is scored on; SIGTERM or Ctrl-C ends a live run cleanly; the
reading thread's reconnection rules on a fake source."""

import csv
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
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax import predict as predict_cli
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import sources
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import events

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZE = (40, 56)
FPS = 20


def scene(k: int) -> np.ndarray:
  img = np.zeros((*SIZE, 3), np.uint8)
  img[..., 0] = np.linspace(30, 200, SIZE[1], dtype=np.uint8)[None, :]
  img[10:22, k % 44 : k % 44 + 12] = (250, 250, 40)
  return img


def write_mp4(path, count):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE[::-1])
  for k in range(count):
    writer.write(cv2.cvtColor(scene(k), cv2.COLOR_RGB2BGR))
  writer.release()
  return str(path)


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


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


class FakeConnection:
  def __init__(self, count, stall_s=0.0, fps=FPS):
    self.left, self.stall_s, self.fps = count, stall_s, fps

  def read(self):
    if self.left == 0:
      time.sleep(self.stall_s)
      return None
    self.left -= 1
    return np.zeros((4, 4), np.uint8)

  def close(self):
    pass


def test_feed_reconnects_resets_its_count_and_gives_up():
  plan = [FakeConnection(3), None, FakeConnection(2, stall_s=0.3), None, None]
  lines = []
  feed = sources.Feed(
    "rtsp://user:secret@cam/x", read_timeout=0.3, retries=2, retry_wait=0.01, log=lines.append,
    opener=lambda spec, timeout: plan.pop(0) if plan else None,
  )  # fmt: skip
  assert feed.open() == FPS
  got = [len(list(frames)) for frames in feed.connections()]
  assert got[:2] == [3, 2] and sum(got) == 5  # each connection its own run of frames
  assert feed.reconnects == 1 and feed.error.startswith("rtsp://user:***@cam/x: cannot reopen it (gave up after 2")
  assert "secret" not in "\n".join(lines) + feed.error
  assert [line.split(": ", 2)[-1].split(" after")[0].split(";")[0] for line in lines] == [
    "stream dropped",
    "cannot reopen it",
    "reconnected",
    "stream stalled (no frame for 0.3 s)",
    "cannot reopen it",
    "cannot reopen it",
  ]


def test_feed_that_opens_but_sends_nothing_runs_out_of_retries():
  opened, lines = [], []

  def opener(spec, timeout):  # one good connection, then every one accepted and closed at once
    opened.append(spec)
    return None if len(opened) > 50 else FakeConnection(3 if len(opened) == 1 else 0)

  feed = sources.Feed("rtsp://cam/x", retries=2, retry_wait=0.01, log=lines.append, opener=opener)
  feed.open()
  got = [len(list(frames)) for frames in feed.connections()]
  assert got[0] == 3 and sum(got) == 3
  assert len(opened) == 4  # the first, then one at once and one per retry: each empty connection is a failure
  assert feed.error == "rtsp://cam/x: cannot reopen it (gave up after 2 retries after 3 frame(s))"
  assert sum("retrying in" in line for line in lines) == 2 and "reconnected" in lines[1]


def test_feed_that_never_opens_is_one_error_and_stop_ends_it():
  feed = sources.Feed("rtsp://cam/x", retries=1, retry_wait=0.01, log=lambda line: None, opener=lambda s, t: None)
  with pytest.raises(UserError, match=r"rtsp://cam/x: cannot open it \(gave up after 1 retries\)"):
    feed.open()
  feed = sources.Feed("0", log=lambda line: None, opener=lambda s, t: FakeConnection(10**9))
  feed.open()
  frames = next(feed.connections())
  assert next(frames) is not None
  feed.stop.set()
  assert len(list(frames)) < 10**3 and not list(feed.connections())
  feed.close()


def test_source_kinds(tmp_path, monkeypatch):
  assert sources.is_live("rtsp://cam/1") and sources.is_live("HTTPS://cam/1.mjpg") and sources.is_live("0")
  assert not sources.is_live("clip.mp4") and sources.is_live("clip.mp4", realtime=True)
  (tmp_path / "7").mkdir()
  monkeypatch.chdir(tmp_path)  # an existing path named like a camera index is that path
  assert not sources.is_live("7") and sources.display_name("3") == "camera 3"


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


BLOCKED = (
  "jax",
  "jaxlib",
  "flax",
  "optax",
  "orbax",
  "chex",
  "jax2onnx",
  "tensorflow",
  "ml_collections",
  "absl",
  "tqdm",
)
WITHOUT_JAX = f"""
import importlib.abc, runpy, sys
class Blocked(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in {BLOCKED!r}:
      raise ImportError(f"{{name}} cannot be imported in this test")
sys.meta_path.insert(0, Blocked())
sys.argv[0] = "maskedskip_jax.predict"
runpy.run_module("maskedskip_jax.predict", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow  # the ONNX export alone takes about 20 s
def test_onnxruntime_live_without_jax_uses_the_alarm_patch(tmp_path, capsys):
  from maskedskip_jax.deploy import onnx_export  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.nn import models  # pylint: disable=g-import-not-at-top

  if not onnx_export.available():
    pytest.skip("needs the onnx extra (jax2onnx, onnxruntime)")
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  config = {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
  alarm = {
    "threshold": 0.3, "score": "reconstruction", "patch": 8, "postprocess": "median:window=3", "false_alarm_rate": 0.01,
    "min_event_seconds": 0.1, "merge_gap_seconds": 0.0, "calibration": {},
  }  # fmt: skip
  path = bundle.save(
    str(tmp_path / "model"), random_variables(model, seed=5), config, example_shape=(1, 3, 32, 32, 1), onnx=True,
    alarm=alarm,
  )  # fmt: skip
  video = write_mp4(tmp_path / "clip.mp4", 20)
  args = ["--model", path, "--video", video, "--no-overlay"]
  assert predict_cli.main([*args, "--out", str(tmp_path / "jax")]) == 0
  script = tmp_path / "without_jax.py"
  script.write_text(WITHOUT_JAX)
  env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the script's folder, not the cwd, is on its sys.path
  run = subprocess.run(
    [sys.executable, str(script), *args, "--backend", "onnxruntime", "--realtime", "--out", str(tmp_path / "ort")],
    cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
  )  # fmt: skip
  assert run.returncode == 0, run.stderr
  assert "latency from frame arrival over 20 frames" in run.stderr
  want, got = rows(tmp_path / "jax" / "scores.csv"), rows(tmp_path / "ort" / "scores.csv")
  for key in ("score", "score_smoothed"):
    np.testing.assert_allclose([float(r[key]) for r in got], [float(r[key]) for r in want], atol=1e-4)
  docs = [json.loads((tmp_path / d / "events.json").read_text()) for d in ("jax", "ort")]
  assert all(d["patch"] == 8 and d["threshold_source"] == "bundle alarm" for d in docs)
  assert [e["start_frame"] for e in docs[0]["events"]] == [e["start_frame"] for e in docs[1]["events"]]
