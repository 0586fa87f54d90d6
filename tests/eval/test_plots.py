"""Figures are written atomically as readable PNGs."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import plots


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


def colour_pixels(path, rgb):
  image = cv2.imread(str(path)).astype(int)
  return int((np.abs(image - list(rgb[::-1])).sum(axis=-1) < 60).sum())


def test_plot_roc_draws_extra_curves_beside_the_first(tmp_path):
  one, more = tmp_path / "one.png", tmp_path / "more.png"
  plots.plot_roc([0, 0.2, 1], [0, 0.8, 1], 0.8, str(one))
  plots.plot_roc(
    [0, 0.2, 1],
    [0, 0.8, 1],
    0.8,
    str(more),
    label="model",
    curves=[([0, 0.5, 1], [0, 0.5, 1], 0.5, "frame_diff"), ([0, 0.1, 1], [0, 0.3, 1], None, "flow")],
  )
  orange, green = (255, 127, 14), (44, 160, 44)  # matplotlib's second and third colours
  assert colour_pixels(more, orange) > colour_pixels(one, orange) + 100
  assert colour_pixels(more, green) > colour_pixels(one, green) + 100
  with pytest.raises(UserError, match="plot_roc"):
    plots.plot_roc([0, 1], [0, 1], 0.5, str(tmp_path / "bad.png"), curves=[([0, 1], [0, 0.5, 1], 0.5, "x")])


def test_plot_scores_draws_other_curves_scaled_to_the_same_axis(tmp_path):
  scores = np.linspace(0, 0.01, 50)
  other = 1000 + 500 * np.cos(np.linspace(0, 6, 50))  # a different unit entirely
  path = tmp_path / "both.png"
  plots.plot_scores(scores, np.zeros(50, int), str(path), others=[(other, "flow baseline")], label="model")
  plots.plot_scores(scores, np.zeros(50, int), str(tmp_path / "alone.png"))
  orange = (255, 127, 14)
  assert colour_pixels(path, orange) > 200 and colour_pixels(tmp_path / "alone.png", orange) == 0
  np.testing.assert_array_equal(plots.minmax([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
  np.testing.assert_array_equal(plots.minmax([3.0, 3.0]), [0.0, 0.0])
  with pytest.raises(UserError, match="flow baseline"):
    plots.plot_scores(scores, None, str(path), others=[(other[:10], "flow baseline")])


def test_plot_frame_grid_writes_one_row_per_frame(tmp_path):
  rng = np.random.default_rng(0)
  rows = [(rng.random((32, 48, 1)), rng.random((32, 48, 1)), rng.random((32, 48)), f"v frame {i}") for i in range(3)]
  three = cv2.imread(plots.plot_frame_grid(rows, str(tmp_path / "grid.png"), title="misses"))
  assert os.listdir(tmp_path) == ["grid.png"]
  six = cv2.imread(plots.plot_frame_grid(rows * 2, str(tmp_path / "six.png")))
  assert three is not None and six is not None and six.shape[0] > 1.7 * three.shape[0]
  with pytest.raises(UserError, match="no rows"):
    plots.plot_frame_grid([], str(tmp_path / "none.png"))


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
  code = (
    "import sys; from maskedskip_jax.eval import plots, metrics, postprocess, region_metrics; "
    "from maskedskip_jax.nn import scoring; "
    f"plots.plot_roc([0, 1], [0, 1], 0.5, {str(tmp_path / 'r.png')!r}); "
    "print(sorted(m for m in ('matplotlib.pyplot', 'tensorflow') if m in sys.modules))"
  )
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
  assert out.stdout.strip() == "[]"


@pytest.fixture
def hlines(monkeypatch):
  """Every horizontal line drawn, as (y, label): the threshold lines, whatever figure they go to."""
  from matplotlib.axes import Axes  # pylint: disable=g-import-not-at-top

  drawn, original = [], Axes.axhline

  def record(self, y=0, *args, **kwargs):
    drawn.append((y, kwargs.get("label")))
    return original(self, y, *args, **kwargs)

  monkeypatch.setattr(Axes, "axhline", record)
  return drawn


def test_plot_scores_draws_the_threshold_on_its_curve(tmp_path, hlines):
  scores = np.linspace(2.0, 6.0, 50)
  plain, line = tmp_path / "plain.png", tmp_path / "line.png"
  plots.plot_scores(scores, None, str(plain))
  plots.plot_scores(scores, None, str(line), threshold=(5.0, "alarm threshold 5"))
  assert hlines == [(5.0, "alarm threshold 5")]  # in the curve's own units
  a, b = cv2.imread(str(plain)), cv2.imread(str(line))
  assert a.shape == b.shape and not np.array_equal(a, b)
  # Min-max scaled beside a baseline: the line is scaled with its curve, so it crosses it where it did.
  plots.plot_scores(scores, None, str(line), others=[(scores[::-1], "flow")], threshold=(5.0, "t"))
  assert hlines[-1] == (pytest.approx(0.75), "t")


def test_plot_scores_draws_another_alarm_score_in_a_panel_below(tmp_path, hlines):
  scores, alarm = np.linspace(0, 1, 30), np.linspace(10, 40, 30)
  labels = (np.arange(30) > 20).astype(int)
  one, two = tmp_path / "one.png", tmp_path / "two.png"
  plots.plot_scores(scores, labels, str(one))
  plots.plot_scores(scores, labels, str(two), alarm=(alarm, 25.0, "alarm score (reconstruction, none)"))
  assert hlines == [(25.0, "alarm threshold 25")]  # in the alarm score's units, not the headline's
  assert cv2.imread(str(two)).shape[0] > cv2.imread(str(one)).shape[0] * 1.5
  with pytest.raises(UserError, match="alarm score"):
    plots.plot_scores(scores, labels, str(two), alarm=(alarm[:5], 25.0, "alarm score"))
