"""No-learning baselines: hand-checked values, motion beats stillness, names validated, `--mode=baselines` alone."""

import json
import os

import numpy as np
import pytest
import tiny_run

from maskedskip_jax import config as config_lib
from maskedskip_jax import validation
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines
from maskedskip_jax.nn import scoring


def moving_square(positions, size=32, side=8, value=255):
  """uint8 (N, size, size, 1) black frames with a white side x side square at rows 8.., columns x.."""
  frames = np.zeros((len(positions), size, size, 1), np.uint8)
  for i, x in enumerate(positions):
    frames[i, 8 : 8 + side, x : x + side] = value
  return frames


def test_frame_diff_by_hand():
  # Square at x = 4, 8, 12, 12. Frame 1 differs on columns 4..7 and 12..15 (rows 8..15): 64 pixels of 1, all in
  # the aligned patch (0..15, 0..15): 64 / 256. Frame 2 differs on columns 8..11 and 16..19: 32 pixels in each of
  # two aligned patches (0.125), all 64 in the offset patch (8..23, 8..23): the offset grid gives 0.25. Frame 3
  # repeats frame 2, and frame 0 is differenced with itself.
  frames = moving_square([4, 8, 12, 12])
  np.testing.assert_array_equal(baselines.video_scores("frame_diff", frames, patch=16), [0.0, 0.25, 0.25, 0.0])
  as_float = frames.astype(np.float32) / 255
  np.testing.assert_array_equal(baselines.video_scores("frame_diff", as_float, patch=16), [0.0, 0.25, 0.25, 0.0])


def test_frame_diff_averages_channels():
  frames = np.zeros((2, 16, 16, 3), np.uint8)
  frames[1, ..., 0] = 255  # one channel of three changes everywhere
  np.testing.assert_allclose(baselines.video_scores("frame_diff", frames, patch=16), [0.0, 1 / 3], rtol=1e-6)


def textured_video(n_still=12, n_moving=12, size=64):
  """A fixed textured background; a 16x16 textured square appears at frame n_still and moves 3 pixels a frame."""
  rng = np.random.default_rng(0)
  background = rng.integers(40, 120, (size, size)).astype(np.uint8)
  square = rng.integers(150, 256, (16, 16)).astype(np.uint8)
  frames = np.repeat(background[None], n_still + n_moving, axis=0)
  for i in range(n_moving):
    x = 4 + 3 * i
    frames[n_still + i, 8:24, x : x + 16] = square
  return frames[..., None]


@pytest.mark.parametrize("name", ["mog2", "flow", "frame_diff"])
def test_moving_object_scores_above_static_frames(name):
  frames = textured_video()
  scores = baselines.video_scores(name, frames, patch=16)
  assert scores.shape == (24,) and scores.dtype == np.float64
  still, moving = scores[:12], scores[13:]  # frame 12 is the square's first: its motion has no past frame
  assert moving.min() > 2 * still.max() + 1e-3, (still, moving)
  np.testing.assert_array_equal(baselines.video_scores(name, frames, patch=16), scores)  # deterministic


def test_colour_frames_are_accepted():
  frames = np.repeat(textured_video(4, 4), 3, axis=-1)
  for name in baselines.BASELINES:
    assert baselines.video_scores(name, frames, patch=16).shape == (8,)


def test_pooling_is_scorings_frame_score_across_chunks():
  maps = np.random.default_rng(1).random((70, 40, 24)).astype(np.float32)  # more than one chunk, odd sizes
  np.testing.assert_allclose(baselines.pool(iter(maps), patch=16), scoring.frame_scores(maps, 16), rtol=1e-6)
  assert baselines.pool(iter([]), patch=16).shape == (0,)


def test_names_parse_and_unknown_ones_name_the_key():
  assert baselines.parse_names("frame_diff, flow,flow") == ("frame_diff", "flow")
  assert baselines.parse_names(["mog2"]) == ("mog2",)
  assert baselines.parse_names("") == () and baselines.parse_names([]) == ()
  with pytest.raises(UserError, match="eval.baselines: unknown baseline 'optical_flow'"):
    baselines.parse_names("frame_diff,optical_flow")


def test_config_key_is_validated_in_one_line():
  config = config_lib.default_config()
  assert config.eval.baselines == "frame_diff,mog2,flow"
  config.eval.baselines = ""
  validation.validate(config)
  config.eval.baselines = "frame_diff,flw"
  with pytest.raises(
    UserError,
    match=r"^config key eval.baselines: expected comma-separated names from "
    r"frame_diff, mog2, flow \(.*\), got 'frame_diff,flw'$",
  ):
    validation.validate(config)


def test_score_store_gives_one_array_per_video():
  from model_helpers import make_store  # pylint: disable=g-import-not-at-top
  from test_evaluate import LENGTHS  # pylint: disable=g-import-not-at-top

  store = make_store()[0]
  got = baselines.score_store(store, "flow,frame_diff", patch=16)
  assert list(got) == ["flow", "frame_diff"]
  assert [len(s) for s in got["flow"]] == list(LENGTHS)
  np.testing.assert_array_equal(got["frame_diff"][1], baselines.video_scores("frame_diff", store.video_frames(1)))


def test_mode_baselines_writes_its_report_without_a_checkpoint(tmp_path):
  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=1, num_test=2, frames=12)
  workdir = tmp_path / "work"
  proc = tiny_run.run_main(
    str(workdir), tiny_run.overrides(root, "", **{"eval.postprocess": "median:window=3"}), mode="baselines", timeout=180
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert sorted(os.listdir(workdir)) == ["baselines"]  # no checkpoints, no training
  out = workdir / "baselines"
  assert sorted(os.listdir(out)) == ["report.html", "report.json", "roc.png", "scores.csv"]
  report = json.loads((out / "report.json").read_text())
  assert list(report["baselines"]) == list(baselines.BASELINES)
  for metrics in report["baselines"].values():
    assert set(metrics) == {"frame_auc_micro", "frame_auc_macro", "eer", "average_precision"}
    assert 0 <= metrics["frame_auc_micro"] <= 1
  assert report["postprocess"] == "median:window=3" and "mog2" in report["baselines_protocol"]
  assert [r["postprocess"] for r in report["postprocess_tables"]["flow"]] == [
    "median:window=3",
    "none",
    "median:window=17",
  ]
  assert report["postprocess_tables"]["flow"][0]["frame_auc_micro"] == report["baselines"]["flow"]["frame_auc_micro"]
  header = (out / "scores.csv").read_text().splitlines()[0]
  assert header == "video,frame,label,score_frame_diff,score_mog2,score_flow"
  assert "| flow | median:window=17 |" in proc.stdout and "best frame AUC micro" in proc.stdout
