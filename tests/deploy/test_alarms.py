"""predict's events: the threshold from the bundle's alarm record or --threshold, the record's patch and chain, the
one-line notes when there is no usable threshold, the record's reader, and the pieces that must run without jax."""

import csv
import json
import pathlib
import subprocess
import sys

import cv2
import jax
import jax_free
from model_helpers import centre_clips
from model_helpers import random_variables
import numpy as np
import pytest

from data_pipeline import framestore
from maskedskip_jax import predict as predict_cli
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import bundle_files
from maskedskip_jax.deploy import onnx_runtime
from maskedskip_jax.deploy import predict
from maskedskip_jax.deploy import smoothing
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import events
from maskedskip_jax.eval import postprocess
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
FPS = 20
ALARM = {
  "threshold": 0.45,
  "score": "reconstruction",
  "patch": 8,
  "postprocess": "median:window=3",
  "false_alarm_rate": 0.01,
  "min_event_seconds": 0.1,  # 2 frames at 20 fps
  "merge_gap_seconds": 0.2,  # 4 frames
  "calibration": {"held_out_frames": 1000},
}


def scene(k: int) -> np.ndarray:
  """A grey gradient; a bright square crosses it in frames 10-19 and 26-29 (the model has never seen it)."""
  img = np.zeros((40, 56, 3), np.uint8)
  img[..., 1] = np.linspace(40, 160, 56, dtype=np.uint8)[None, :]
  if 10 <= k < 20 or 26 <= k < 30:
    img[8:30, 2 * k % 40 : 2 * k % 40 + 16] = 255
  return img


@pytest.fixture(scope="module")
def video(tmp_path_factory):
  path = tmp_path_factory.mktemp("video") / "clip.mp4"
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (56, 40))
  for k in range(40):
    writer.write(cv2.cvtColor(scene(k), cv2.COLOR_RGB2BGR))
  writer.release()
  return str(path)


@pytest.fixture(scope="module")
def trained():
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  return model, random_variables(model, seed=5)


def save(folder, trained, alarm=None) -> str:
  return bundle.save(str(folder), trained[1], CONFIG, alarm=alarm)


@pytest.fixture(scope="module")
def bundles(trained, tmp_path_factory):
  base = tmp_path_factory.mktemp("bundles")
  return {"plain": save(base / "plain", trained), "alarm": save(base / "alarm", trained, ALARM)}


def run(capsys, model, video, out, *flags):
  code = predict_cli.main(["--model", model, "--video", video, "--out", str(out), "--no-overlay", *flags])
  captured = capsys.readouterr()
  assert code == 0, captured.err
  with open(out / "scores.csv") as f:
    table = list(csv.DictReader(f))
  doc = json.loads((out / "events.json").read_text()) if (out / "events.json").exists() else None
  notes = "\n".join(line for line in captured.err.splitlines() if not line.startswith("predict: frame"))
  return table, doc, notes


def column(table, key):
  return np.array([float(r[key]) for r in table])


def test_bundle_alarm_sets_threshold_patch_chain_and_event_rule(bundles, trained, video, tmp_path, capsys):
  table, doc, err = run(capsys, bundles["alarm"], video, tmp_path / "out")
  assert err.strip() == ""  # nothing to note: the calibrated alarm applies
  scores, smoothed = column(table, "score"), column(table, "score_smoothed")
  # The record's patch: the frames prepared as predict does, scored clip by clip with 8x8 patches.
  model, variables = trained
  capture, frames = cv2.VideoCapture(video), []
  while (frame := capture.read()[1]) is not None:
    frames.append(framestore.convert(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), (32, 32), 1))
  clips = centre_clips([np.stack(frames)], 3)
  recon = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, clips)
  np.testing.assert_allclose(scores, scoring.frame_scores(scoring.score_maps(clips[:, 1], recon), 8), atol=1e-5)
  np.testing.assert_allclose(smoothed, postprocess.postprocess([scores], "median:window=3")[0], atol=1e-6)
  assert doc["threshold"] == 0.45 and doc["threshold_source"] == "bundle alarm" and doc["false_alarm_rate"] == 0.01
  assert (doc["patch"], doc["postprocess"], doc["min_frames"], doc["merge_gap"]) == (8, "median:window=3", 2, 4)
  want = events.segments(smoothed, 0.45, min_frames=2, merge_gap=4)
  assert want, "the scene should raise at least one event"
  assert [(e["start_frame"], e["end_frame"], e["peak_frame"]) for e in doc["events"]] == [
    (e.start, e.end, e.peak_frame) for e in want
  ]
  assert doc["events"][0]["start_seconds"] == want[0].start / FPS and doc["complete"]


def test_threshold_flag_overrides_and_seconds_flags(bundles, video, tmp_path, capsys):
  flags = ("--threshold", "0.5", "--min-duration", "0", "--merge-gap", "0")
  table, doc, _ = run(capsys, bundles["alarm"], video, tmp_path / "out", *flags)
  assert doc["threshold"] == 0.5 and doc["threshold_source"] == "--threshold" and doc["false_alarm_rate"] is None
  assert (doc["min_frames"], doc["merge_gap"]) == (1, 0)
  want = events.segments(column(table, "score_smoothed"), 0.5)
  assert [(e["start_frame"], e["end_frame"]) for e in doc["events"]] == [(e.start, e.end) for e in want]


def test_another_chain_voids_the_calibrated_threshold(bundles, video, tmp_path, capsys):
  _, doc, err = run(capsys, bundles["alarm"], video, tmp_path / "a", "--postprocess", "gaussian:sigma=2")
  assert doc is None and len(err.splitlines()) == 1
  assert "is not the chain the bundle's alarm was calibrated with (median:window=3)" in err
  _, doc, _ = run(
    capsys, bundles["alarm"], video, tmp_path / "b", "--postprocess", "gaussian:sigma=2", "--threshold", "1"
  )
  assert doc["threshold_source"] == "--threshold" and doc["postprocess"].startswith("gaussian:sigma=2")
  # The same chain spelled differently is the same chain.
  _, doc, err = run(capsys, bundles["alarm"], video, tmp_path / "c", "--postprocess", "median:window=3")
  assert doc["threshold_source"] == "bundle alarm" and err.strip() == ""


def test_no_alarm_and_no_threshold_writes_scores_and_says_why(bundles, video, tmp_path, capsys):
  table, doc, err = run(capsys, bundles["plain"], video, tmp_path / "out")
  assert doc is None and len(table) == 40
  assert (
    err.strip() == "note: no events.json: the bundle has no calibrated alarm threshold; pass --threshold to get one"
  )
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scores.csv"]


def test_alarm_reader(bundles, trained, tmp_path):
  assert bundle_files.alarm(bundles["plain"]) is None
  record = bundle_files.alarm(bundles["alarm"])
  assert record["threshold"] == 0.45 and record["patch"] == 8 and record["calibration"] == {"held_out_frames": 1000}
  for bad, match in (({"threshold": "high"}, "'threshold' must be a finite number"), ({"patch": 0}, "'patch'"),
                     ({"score": "hybrid"}, "calibrated on the 'hybrid' score"),
                     ({"merge_gap_seconds": -1}, "'merge_gap_seconds' must be a finite number >= 0")):  # fmt: skip
    path = save(tmp_path / "bad", trained, {**ALARM, **bad})
    with pytest.raises(UserError, match=match) as caught:
      bundle_files.alarm(path)
    assert "model.json: alarm record" in str(caught.value) and "\n" not in str(caught.value)
  path = save(tmp_path / "chain", trained, {**ALARM, "postprocess": "blur"})
  with pytest.raises(UserError, match="model.json: alarm record: postprocess: unknown method 'blur'"):
    predict.predict(path, "unused.mp4", str(tmp_path / "out"))
  model_json = pathlib.Path(bundles["alarm"]) / "model.json"
  tampered = tmp_path / "tampered"
  save(tampered, trained, ALARM)
  (tampered / "model.json").write_text(model_json.read_text().replace("0.45", "0.05"))
  with pytest.raises(UserError, match="sha256 does not match"):
    bundle_files.alarm(str(tampered))


@pytest.mark.parametrize("patch", [1, 5, 8, 16])
def test_numpy_patch_score_matches_the_jax_one(patch):
  maps = np.random.default_rng(patch).random((3, 32, 40)).astype(np.float32)
  want = np.asarray(scoring.frame_scores(maps, patch))
  np.testing.assert_allclose([onnx_runtime.patch_score(m, patch) for m in maps], want, rtol=1e-6)


@pytest.mark.parametrize("chain", ["none", "gaussian:sigma=3", "median:window=5+gaussian:sigma=1.5", "median"])
def test_running_chain_gives_the_batch_values(chain):
  steps = postprocess.parse_chain(chain)
  for n in (1, 4, 30, 120):
    scores = np.random.default_rng(n).random(n)
    running = smoothing.RunningChain(steps)
    rows = [row for s in scores for row in running.add(s)] + running.finish()
    assert [k for k, _, _ in rows] == list(range(n))
    np.testing.assert_allclose([v for *_, v in rows], postprocess.postprocess([scores], steps)[0], atol=1e-12)
  # Frame k is handed over once frame k + radius is in.
  running = smoothing.RunningChain(steps)
  assert [len(running.add(0.5)) for _ in range(running.radius + 2)] == [0] * running.radius + [1, 1]
  with pytest.raises(UserError, match="'minmax' needs the whole video"):
    smoothing.RunningChain(postprocess.parse_chain("median+minmax"))


def test_events_sources_and_live_need_no_jax():
  script = (
    jax_free.BLOCKER
    + """
import maskedskip_jax.predict, maskedskip_jax.deploy.live, maskedskip_jax.deploy.sources, maskedskip_jax.eval.events
import maskedskip_jax.deploy.alarms, maskedskip_jax.deploy.smoothing, maskedskip_jax.deploy.onnx_runtime
print("ok")
"""
  )
  run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
  assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
