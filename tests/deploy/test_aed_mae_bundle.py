"""An AED-MAE checkpoint as a bundle (issue #18 item 5): --mode=export records the family and both decoders, the
exported forward matches the model, the alarm is calibrated on Eq. 6, and predict scores a video exactly as the
evaluation's scorer does, writing events with the bundle's threshold; what it cannot do is refused in one line."""

import csv
import json
import os
import shutil

import cv2
import jax
import numpy as np
import pytest
import tiny_run

from maskedskip_jax.deploy import aed_mae_bundle
from maskedskip_jax.deploy import bundle
from maskedskip_jax.deploy import export
from maskedskip_jax.deploy import onnx_export
from maskedskip_jax.deploy import predict
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import aed_mae_scorer
from maskedskip_jax.train import loop

SMALL = dict(
  **tiny_run.AED_MAE,
  train__num_steps=2,
  train__stage2_fraction=0.5,
  train__paste_prob=0.5,
  eval__aed_mae__box=3,
  eval__aed_mae__taps=5,
  eval__aed_mae__sigma=1.0,
  eval__alarm_postprocess="none",
  eval__false_alarm_rate=0.1,
  data__holdout_share=0.5,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(config, workdir, bundle path, a test video's frame folder) of a 2-step run exported by --mode=export's code."""
  root = tiny_run.make_dataset(str(tmp_path_factory.mktemp("data")), num_train=2, num_test=1, frames=14)
  config = tiny_run.config(root, **SMALL)
  workdir = str(tmp_path_factory.mktemp("work"))
  loop.train(config, workdir)
  path = export.run(config, workdir, config_name="aed_mae_test")
  return config, workdir, path, os.path.join(root, "test", "v0")


def test_model_json_records_the_family_both_decoders_and_the_score(exported):
  _, _, path, _ = exported
  with open(os.path.join(path, "model.json")) as f:
    doc = json.load(f)
  assert doc["variant"] == "aed_mae" and doc["temporal"] == 3 and doc["channels"] == 1
  rec = doc["aed_mae"]
  assert rec["decoders"] == {"teacher": 2, "student": 2} and rec["frame_offset"] == 1 and rec["patch"] == 8
  assert rec["score"] == {**rec["score"], "alpha": 0.4, "beta": 0.3, "gamma": 0.3, "box": 3, "taps": 5}
  assert rec["score"]["masking"] == "cover" and aed_mae_bundle.score_settings(rec).masking == "cover"
  older = {**rec, "score": {k: v for k, v in rec["score"].items() if k not in ("masking", "mask_seed")}}
  assert aed_mae_bundle.score_settings(older).masking == "none"  # how bundles before test-time masking scored
  assert doc["export"]["input_shape"] == [1, 32, 32, 3] and "teacher" in doc["export"]["returns"]
  assert doc["alarm"]["score"] == "aed_mae" and doc["alarm"]["patch"] is None
  assert doc["alarm"]["calibration"]["videos"] == ["v1"]


def test_the_bundle_loads_to_the_same_network_and_its_export_runs_it(exported):
  _, _, path, _ = exported
  model, variables, _ = bundle.load(path)
  x = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  want = model.apply(variables, x, train=False)
  got = bundle.load_exported(path)(x)
  for key in ("teacher", "student", "logit"):
    np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), atol=1e-5)


def test_predict_scores_a_video_as_the_evaluation_does_and_writes_events(exported, tmp_path):
  _, _, path, video = exported
  result = predict.predict(path, video, str(tmp_path / "out"), progress=False, write_overlay=True)
  with open(tmp_path / "out" / "scores.csv") as f:
    scores = np.array([float(r["score"]) for r in csv.DictReader(f)])
  model, variables, doc = bundle.load(path)
  settings = aed_mae_scorer.ScoreSettings(**doc["aed_mae"]["score"])
  scorer = aed_mae_scorer.AedMaeScorer(model, variables, (32, 32), frame_offset=1, settings=settings)
  frames = [cv2.imread(os.path.join(video, n), cv2.IMREAD_GRAYSCALE)[..., None] for n in sorted(os.listdir(video))]
  want = np.array([item.score for item in scorer.stream([frames])])
  np.testing.assert_allclose(scores, want, rtol=1e-5)
  assert result["threshold"] == doc["alarm"]["threshold"] and result["threshold_source"] == "bundle alarm"
  with open(tmp_path / "out" / "events.json") as f:
    assert json.load(f)["complete"] is True
  assert os.path.getsize(tmp_path / "out" / "overlay.mp4") > 0


def test_what_an_aed_mae_bundle_cannot_do_is_refused_in_one_line(exported, tmp_path):
  _, _, path, video = exported
  with pytest.raises(UserError, match="--backend onnxruntime: an AED-MAE bundle runs with the jax backend"):
    predict.predict(path, video, str(tmp_path / "a"), backend="onnxruntime")
  with pytest.raises(UserError, match="AED-MAE bundle scores whole videos"):
    predict.predict(path, video, str(tmp_path / "b"), realtime=True)
  model, variables, doc = bundle.load(path)
  with pytest.raises(onnx_export.OnnxExportError, match="U-Net family"):
    bundle.save(str(tmp_path / "c"), variables, doc, example_shape=(1, 32, 32, 3), onnx=True)
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "c")


def test_a_bundle_with_wrong_aed_mae_weights_is_refused(exported, tmp_path):
  _, _, path, _ = exported
  model, variables, doc = bundle.load(path)
  wider = {**doc["aed_mae"], "embed_dim": 32}
  with pytest.raises(UserError, match="variables do not fit the aed_mae model config"):
    bundle.save(str(tmp_path / "x"), jax.device_get(variables), {"variant": "aed_mae", "aed_mae": wider})
  copy = str(tmp_path / "copy")
  shutil.copytree(path, copy)
  assert aed_mae_bundle.is_record(bundle.verify(copy))
