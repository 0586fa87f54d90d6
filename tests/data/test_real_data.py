"""Opt-in smoke on the real UCSD Ped2 dev footage (`pytest -m real`).

Trains a few steps of a tiny model on ../shared/data/ped2_dev through the real CLI,
evaluates it, and checks the score table against the footage's own label files.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import tiny_run

PED2_DEV = os.path.join(tiny_run.REPO, "..", "shared", "data", "ped2_dev")
pytestmark = [pytest.mark.real, pytest.mark.skipif(not os.path.isdir(PED2_DEV), reason="ped2_dev footage not present")]


def test_ped2_dev_trains_and_every_test_frame_is_scored_with_its_label(tmp_path):
  workdir = tmp_path / "run"
  cmd = [
    sys.executable,
    "-m",
    "maskedskip_jax.main",
    "--config=configs/ped2_cpu.py",
    f"--workdir={workdir}",
    "--config.train.num_steps=4",
    "--config.model.latent_dim=8",
    "--config.data.image_size=(32,48)",
    "--config.train.batch_size=4",
    "--config.data.cache_dir=",
    "--config.eval.postprocess=none",
    f"--config.train.compilation_cache_dir={tiny_run.JAX_CACHE}",
  ]
  proc = subprocess.run(cmd, cwd=tiny_run.REPO, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  with open(workdir / "eval" / "scores.csv") as f:
    rows = list(csv.DictReader(f))
  videos = sorted(
    d for d in os.listdir(os.path.join(PED2_DEV, "test")) if os.path.isdir(os.path.join(PED2_DEV, "test", d))
  )
  expected = 0
  for v in videos:
    labels = np.loadtxt(os.path.join(PED2_DEV, "test", f"{v}.txt"), dtype=int)
    got = [r for r in rows if r["video"] == v]
    assert [int(r["frame"]) for r in got] == list(range(len(labels)))
    assert [int(r["label"]) for r in got] == labels.tolist()
    expected += len(labels)
  assert len(rows) == expected
  assert np.all(np.isfinite([float(r["score"]) for r in rows]))
  report = json.loads((workdir / "eval" / "report.json").read_text())
  assert report["num_frames"] == expected and report["num_videos"] == len(videos)
