"""Figures are written atomically as readable PNGs."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from maskedskip_jax import plots
from maskedskip_jax.errors import UserError


def test_plot_roc_writes_png(tmp_path):
  path = tmp_path / "sub" / "roc.png"
  out = plots.plot_roc([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0], 0.875, str(path))
  assert out == str(path)
  img = cv2.imread(str(path))
  assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
  assert img.std() > 0  # something was drawn
  assert os.listdir(path.parent) == ["roc.png"]  # no temp file left behind


def test_plot_scores_shades_anomalous_frames(tmp_path):
  scores = np.sin(np.linspace(0, 6, 120)) ** 2
  labels = np.zeros(120, int)
  labels[40:70] = 1
  shaded = tmp_path / "shaded.png"
  plain = tmp_path / "plain.png"
  plots.plot_scores(scores, labels, str(shaded), title="video 01")
  plots.plot_scores(scores, np.zeros(120, int), str(plain), title="video 01")
  a, b = cv2.imread(str(shaded)), cv2.imread(str(plain))
  assert a is not None and b is not None and a.shape == b.shape
  # The shading adds reddish pixels that the unlabelled plot lacks.
  reddish = lambda im: int(((im[..., 2].astype(int) - im[..., 0]) > 20).sum())
  assert reddish(a) > reddish(b) + 500
  plots.plot_scores(scores, None, str(tmp_path / "nolabels.png"))
  assert cv2.imread(str(tmp_path / "nolabels.png")) is not None


def test_overwrites_existing_file(tmp_path):
  path = tmp_path / "roc.png"
  path.write_bytes(b"not a png")
  plots.plot_roc([0, 1], [0, 1], None, str(path))
  assert cv2.imread(str(path)) is not None


def test_anomalous_intervals():
  assert plots.anomalous_intervals(np.array([0, 1, 1, 0, 1])) == [(1, 2), (4, 4)]
  assert plots.anomalous_intervals(np.array([1, 1])) == [(0, 1)]
  assert plots.anomalous_intervals(np.zeros(3)) == []


def test_bad_shapes_are_user_errors(tmp_path):
  with pytest.raises(UserError):
    plots.plot_scores(np.zeros(5), np.zeros(4), str(tmp_path / "x.png"))
  with pytest.raises(UserError):
    plots.plot_roc([0, 1], [0, 0.5, 1], 0.5, str(tmp_path / "y.png"))


def test_no_pyplot_and_no_tensorflow(tmp_path):
  # Drawing on the Agg canvas directly never imports pyplot, so a notebook's inline backend survives; and the
  # evaluation modules must import without TensorFlow.
  code = ("import sys; from maskedskip_jax import plots, metrics, scoring, postprocess, region_metrics; "
          f"plots.plot_roc([0, 1], [0, 1], 0.5, {str(tmp_path / 'r.png')!r}); "
          "print(sorted(m for m in ('matplotlib.pyplot', 'tensorflow') if m in sys.modules))")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
  assert out.stdout.strip() == "[]"
