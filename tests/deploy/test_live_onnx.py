"""predict live on onnxruntime in a process that cannot import JAX: same scores and events, the alarm's patch."""

import json
import os
import pathlib
import subprocess
import sys

from jax_free import PREDICT
from live_scene import rows
from live_scene import write_mp4
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax import predict as predict_cli
from maskedskip_jax.deploy import bundle

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
  script.write_text(PREDICT)
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
