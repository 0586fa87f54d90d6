"""AED-MAE through the evaluation (issue #18 items 4-5): its frame score is Eq. 6 through the paper's filters, as
`aed_mae_scorer` computes it, each term is reported alone, the alarm records the score it was set on, and the
U-Net family's options are refused by name. A tiny untrained network: what is tested is the wiring, not the AUC."""

import csv
import json
import os

import numpy as np
import pytest
import tiny_run

from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import aed_mae_scorer
from maskedskip_jax.eval import evaluate
from maskedskip_jax.nn import aed_mae
from maskedskip_jax.train import inputs as train_data
from maskedskip_jax.train import state as train_state

SMALL = dict(
  **tiny_run.AED_MAE,
  eval__aed_mae__box=3,
  eval__aed_mae__taps=5,
  eval__aed_mae__sigma=1.0,
  eval__baselines="frame_diff",
  data__holdout_share=0.5,
)
SETTINGS = aed_mae_scorer.ScoreSettings(box=3, sigma=1.0, taps=5)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  """(config, model, variables, test store, report, out_dir) of an evaluation with freshly initialised weights."""
  root = tiny_run.make_dataset(str(tmp_path_factory.mktemp("data")), num_train=2, num_test=2, frames=14)
  config = tiny_run.config(root, **SMALL)
  model = train_state.build_model(config)
  variables = aed_mae.init_variables(model, 0, (1, 32, 32, 3))
  workdir = str(tmp_path_factory.mktemp("work"))
  store = train_data.load_split(config, workdir, "test")
  train = train_data.load_split(config, workdir, "train")
  from maskedskip_jax.eval import threshold  # pylint: disable=g-import-not-at-top

  out_dir = os.path.join(workdir, "eval")
  report = evaluate.evaluate_store(
    model,
    variables,
    store,
    out_dir=out_dir,
    progress=False,
    baselines="frame_diff",
    alarm=threshold.plan(config, train, 0),
    aed_mae=aed_mae_scorer.settings(config),
    frame_offset=1,
    batch_size=5,
  )
  return config, model, variables, store, report, out_dir


def _csv_scores(out_dir):
  with open(os.path.join(out_dir, "scores.csv")) as f:
    return np.array([float(row["score"]) for row in csv.DictReader(f)])


def test_headline_is_eq6_through_the_papers_filters(evaluated):
  config, model, variables, store, report, out_dir = evaluated
  assert aed_mae_scorer.settings(config) == SETTINGS
  scorer = aed_mae_scorer.AedMaeScorer(model, variables, store.image_size, frame_offset=1, settings=SETTINGS)
  expected = np.array([item.score for item in scorer.stream(store.video_frames(v) for v in range(2))])
  np.testing.assert_allclose(_csv_scores(out_dir), expected, rtol=1e-6)
  assert report["frame_score"]["kind"] == "aed_mae"
  assert (report["frame_score"]["alpha"], report["frame_score"]["box"]) == (0.4, 3)
  assert report["temporal"] == 3
  with open(os.path.join(out_dir, "report.json")) as f:
    assert json.load(f)["frame_auc_micro"] == report["frame_auc_micro"]


def test_each_term_is_reported_alone_beside_the_baselines(evaluated):
  report = evaluated[4]
  assert set(report["score_components"]) == {"reconstruction", "distillation", "classifier"}
  for metrics in report["score_components"].values():
    assert 0 <= metrics["frame_auc_micro"] <= 1
  assert set(report["baselines"]) == {"frame_diff"}
  assert "mask_head_score" not in report


def test_the_alarm_is_calibrated_on_the_aed_mae_score(evaluated):
  alarm = evaluated[4]["alarm"]
  assert alarm["score"] == "aed_mae" and alarm["patch"] is None
  assert alarm["calibration"]["videos"] == ["v1"] and np.isfinite(alarm["threshold"])


def test_terms_the_run_did_not_train_are_left_out_of_the_score():
  config = tiny_run.config("/unused", **{**SMALL, "train__stage2_fraction": 0.0, "model__aed_mae__classifier": False})
  settings = aed_mae_scorer.settings(config)
  assert (settings.alpha, settings.beta, settings.gamma) == (0.4, 0.0, 0.0)


@pytest.mark.parametrize("key", ["hybrid_beta", "mask_weight", "write_videos"])
def test_unet_scoring_options_are_refused_by_name(evaluated, key, tmp_path):
  _, model, variables, store, _, _ = evaluated
  with pytest.raises(UserError, match=rf"eval\.{key}=.*AED-MAE is scored by its paper's Eq\. 6"):
    evaluate.evaluate_store(model, variables, store, out_dir=str(tmp_path / "x"), **{key: 1})
  assert not os.path.exists(tmp_path / "x")
