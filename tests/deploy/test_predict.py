"""predict: a user's video in, one score per frame and an overlay video with as many frames out."""

import csv
import os
import pathlib
import subprocess
import sys

import cv2
import jax
from model_helpers import centre_clips
from model_helpers import random_variables
import numpy as np
import pytest

from data_pipeline import framestore
from maskedskip_jax import predict as predict_cli
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import predict
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import overlay
from maskedskip_jax.eval import postprocess
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring

ROOT = pathlib.Path(__file__).resolve().parents[2]
FRAME_SIZE = (40, 56)  # (H, W) of the user's video: neither the model's size nor its aspect ratio


def scene(k: int) -> np.ndarray:
  """RGB frame k: a gradient with a square moving right."""
  h, w = FRAME_SIZE
  img = np.zeros((h, w, 3), np.uint8)
  img[..., 0] = np.linspace(30, 200, w, dtype=np.uint8)[None, :]
  img[..., 1] = np.linspace(60, 120, h, dtype=np.uint8)[:, None]
  img[10:22, 3 * k : 3 * k + 12] = (250, 250, 40)
  return img


def write_mp4(path, count):
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, FRAME_SIZE[::-1])
  assert writer.isOpened()
  for k in range(count):
    writer.write(cv2.cvtColor(scene(k), cv2.COLOR_RGB2BGR))
  writer.release()
  return path


def read_video(path):
  capture = cv2.VideoCapture(str(path))
  frames = []
  while True:
    ok, frame = capture.read()
    if not ok:
      return frames
    frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def model_bundle(tmp_path_factory):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model, seed=5)
  path = tmp_path_factory.mktemp("bundle") / "model"
  bundle.save(
    str(path), variables, {"variant": "maskedskip_unet", "latent_dim": 8, "channels": 1, "image_size": (32, 32)}
  )
  return str(path), model, variables


def test_video_file_gives_one_row_and_one_overlay_frame_per_frame(model_bundle, tmp_path):
  path, model, variables = model_bundle
  video = write_mp4(tmp_path / "clip.mp4", 11)
  out = tmp_path / "out"
  assert predict_cli.main(["--model", path, "--video", str(video), "--out", str(out), "--batch-size", "4"]) == 0
  rows = read_csv(out / "scores.csv")
  assert list(rows[0]) == ["frame", "score", "score_smoothed"]
  assert [int(r["frame"]) for r in rows] == list(range(11))
  scores = np.array([float(r["score"]) for r in rows])
  np.testing.assert_allclose(
    [float(r["score_smoothed"]) for r in rows], postprocess.postprocess([scores], "gaussian:sigma=3")[0], atol=1e-6
  )
  # The same frames prepared as training prepares them (RGB -> grey, resized), scored clip by clip.
  decoded = read_video(video)
  frames = np.stack([framestore.convert(f, (32, 32), 1) for f in decoded])
  clips = centre_clips([frames], 3)
  recon = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, clips)
  np.testing.assert_allclose(scores, scoring.frame_scores(scoring.score_maps(clips[:, 1], recon)), atol=1e-5)

  overlay_frames = read_video(out / "overlay.mp4")
  assert len(overlay_frames) == 11
  assert overlay_frames[0].shape == (FRAME_SIZE[0] + 24, FRAME_SIZE[1], 3)  # frame + score-curve strip
  assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "out"]  # no temp folder left behind


def test_frame_folder_without_overlay_and_rerun_into_same_folder(model_bundle, tmp_path):
  path = model_bundle[0]
  folder = tmp_path / "frames"
  folder.mkdir()
  for k in range(6):
    cv2.imwrite(str(folder / f"{k}.png"), cv2.cvtColor(scene(k), cv2.COLOR_RGB2BGR))
  out = tmp_path / "out"
  args = ["--model", path, "--video", str(folder), "--out", str(out), "--no-overlay", "--postprocess", "none"]
  assert predict_cli.main(args) == 0
  rows = read_csv(out / "scores.csv")
  assert len(rows) == 6 and all(r["score"] == r["score_smoothed"] for r in rows)
  assert os.listdir(out) == ["scores.csv"]
  assert predict_cli.main(args) == 0  # an earlier prediction is replaced
  assert len(read_csv(out / "scores.csv")) == 6


def expect_error(capsys, args, out, match):
  assert predict_cli.main(args) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("error: ") and "\n" not in err and match in err, err
  assert not out.exists()
  assert not [p for p in os.listdir(out.parent) if p.startswith(".")]


def test_errors_are_one_line_and_write_nothing(model_bundle, tmp_path, capsys):
  path = model_bundle[0]
  out = tmp_path / "out"
  text = tmp_path / "notes.txt"
  text.write_text("not a video\n")
  expect_error(capsys, ["--model", path, "--video", str(text), "--out", str(out)], out, "not a readable video")
  junk = tmp_path / "junk.mp4"
  junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
  expect_error(capsys, ["--model", path, "--video", str(junk), "--out", str(out)], out, "junk.mp4")
  short = write_mp4(tmp_path / "short.mp4", 2)
  expect_error(capsys, ["--model", path, "--video", str(short), "--out", str(out)], out, "at least T=3")
  expect_error(capsys, ["--model", str(tmp_path / "nope"), "--video", str(short), "--out", str(out)], out, "nope")
  expect_error(
    capsys,
    ["--model", path, "--video", str(short), "--out", str(out), "--postprocess", "blur"],
    out,
    "unknown method 'blur'",
  )
  busy = tmp_path / "busy"
  busy.mkdir()
  (busy / "keep.txt").write_text("mine")
  assert predict_cli.main(["--model", path, "--video", str(short), "--out", str(busy)]) == 1
  assert "holds other files" in capsys.readouterr().err and (busy / "keep.txt").read_text() == "mine"


def test_wrong_channel_count_is_refused():
  with pytest.raises(UserError, match="grey or RGB frames, got 2 channels"):
    predict.prepare(np.zeros((8, 8, 2), np.uint8), (32, 32), 1, "clip.mp4 frame 0")
  assert predict.prepare(np.zeros((8, 8), np.uint8), (32, 32), 3, "x").shape == (32, 32, 3)


def test_command_line_error_has_no_traceback(tmp_path):
  text = tmp_path / "notes.txt"
  text.write_text("hello")
  run = subprocess.run(
    [
      sys.executable,
      "-m",
      "maskedskip_jax.predict",
      "--model",
      str(tmp_path / "missing"),
      "--video",
      str(text),
      "--out",
      str(tmp_path / "out"),
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert run.returncode == 1
  assert run.stderr.strip().startswith("error: ") and "Traceback" not in run.stderr
  assert not (tmp_path / "out").exists()


def test_overlay_heat_map_and_score_curve():
  frame = np.full((20, 30, 3), 100, np.uint8)
  score_map = np.zeros((10, 15), np.float32)
  score_map[:, 10:] = 1.0  # hot on the right third, cold elsewhere
  mixed = overlay.blend(frame, score_map, vmax=0.3, alpha=0.6)
  assert (mixed[:, :15] == 100).all()  # zero score: the frame shows through untouched
  hot = mixed[:, 22:].astype(int)
  assert (hot[..., 0] > hot[..., 1] + 60).all() and (hot[..., 0] > hot[..., 2] + 60).all()  # saturated: red
  curve = overlay.ScoreCurve(width=30, height=24, total=10)
  for k in range(12):  # more frames than announced must not fail
    curve.add(k / 10)
  strip = curve.draw()
  assert strip.shape == (24, 30, 3) and (strip != overlay.CURVE_BG).any(axis=2).sum() > 10
