"""report.html: written beside report.json, well-formed, self-contained, and carrying report.json's numbers."""

import base64
import json
import os
import xml.etree.ElementTree as ET

from model_helpers import STORE_NAMES as NAMES
from model_helpers import make_store
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax.eval import baseline_eval
from maskedskip_jax.eval import collect as eval_collect
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import html_report
from maskedskip_jax.eval import plots
from maskedskip_jax.eval import report as eval_report
from maskedskip_jax.nn import models

XHTML = "{http://www.w3.org/1999/xhtml}"


def parse(path):
  """The page as an XML tree: a strict parser, so any unclosed tag or unescaped '<' or '&' fails here."""
  return ET.fromstring(open(path, encoding="utf-8").read().split("\n", 1)[1])  # past <!DOCTYPE html>


def texts(root):
  return "".join(root.itertext())


def images(root):
  return [img.get("src") for img in root.iter(f"{XHTML}img")]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  store = make_store()[0]
  out = tmp_path_factory.mktemp("run") / "eval"
  report = evaluate.evaluate_store(
    model,
    random_variables(model),
    store,
    temporal=3,
    batch_size=5,
    postprocess="median:window=5",
    out_dir=str(out),
    pixel_size=16,
    region_thresholds=5,
    info={"dataset": "fake", "checkpoint_step": 7},
    progress=False,
    worst_frames=2,
  )
  return out, report


def test_written_with_the_evaluation_and_carrying_its_numbers(evaluated):
  out, _ = evaluated
  on_disk = json.loads((out / "report.json").read_text())
  root = parse(out / "report.html")
  text = texts(root)
  for key in eval_report.HEADLINE:
    assert eval_report.cell(on_disk[key]) in text, key
  for name, metrics in on_disk["baselines"].items():
    row = next(tr for tr in root.iter(f"{XHTML}tr") if texts(tr).startswith(f"{name} baseline"))
    assert [td.text for td in row][1:] == [eval_report.cell(metrics[k]) for k in eval_report.HEADLINE], name
  model_row = next(tr for tr in root.iter(f"{XHTML}tr") if tr.get("class") == "model")
  assert [td.text for td in model_row][1:] == [eval_report.cell(on_disk[k]) for k in eval_report.HEADLINE]
  for row in on_disk["postprocess_table"]:
    assert row["postprocess"] in text
  for name, auc in on_disk["per_video_auc"].items():
    assert f"{name}: AUC {eval_report.cell(auc)}" in text
  assert eval_report.cell(on_disk["pixel"]["pixel_auroc"]) in text and on_disk["pixel"]["protocol"] in text
  assert on_disk["scoring"]["score_map"] in text and "median:window=5" in text
  policy = on_disk["macro_policy"]
  assert f"Macro AUC: {policy.removesuffix(': []')}." in text and "excluded: []" not in text  # no empty list shown


def test_self_contained_one_image_per_figure(evaluated):
  out, _ = evaluated
  root = parse(out / "report.html")
  sources = images(root)
  # roc.png, a plot per video, worst_frames.png: each the very bytes of the file beside it.
  figures = ["roc.png", *(os.path.join("plots", f"{n}.png") for n in NAMES), "worst_frames.png"]
  assert len(sources) == len(figures)
  for src, figure in zip(sources, figures):
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]) == (out / figure).read_bytes(), figure
  links = [e.get(a) for e in root.iter() for a in ("href", "src") if e.get(a)]
  assert all(link.startswith(("data:", "#")) for link in links), links
  assert not [e for e in root.iter() if e.tag in (f"{XHTML}script", f"{XHTML}link")]


def test_baselines_alone_get_a_page_too(tmp_path):
  store = make_store()[0]
  report = baseline_eval.evaluate_alone(store, names="frame_diff", out_dir=str(tmp_path / "b"), info={"dataset": "x"})
  root = parse(tmp_path / "b" / "report.html")
  assert eval_report.cell(report["baselines"]["frame_diff"]["frame_auc_micro"]) in texts(root)
  assert len(images(root)) == 1 and not [tr for tr in root.iter(f"{XHTML}tr") if tr.get("class") == "model"]


def hand_built(tmp_path, **extra):
  """A report with every section and hostile names, and its figures, as evaluate_store would leave them."""
  name = "<script>alert('x')</script> & co"
  labels = np.r_[np.zeros(10), np.ones(5)]
  plots.plot_roc([0, 0.5, 1], [0, 0.8, 1], 0.75, str(tmp_path / "roc.png"))
  plots.plot_scores(np.linspace(0, 1, 15), labels, str(tmp_path / "plots" / f"{eval_collect.safe_name(name)}.png"))
  metrics = {"frame_auc_micro": 0.123456, "frame_auc_macro": None, "eer": 0.5, "average_precision": 0.9}
  return {
    "dataset": "d&d",
    "variant": "v<1>",
    "postprocess": "none",
    **metrics,
    "per_video_auc": {name: 0.75},
    "unlabelled_videos": [],
    "num_frames": 15,
    "num_videos": 1,
    "notes": ["a <b>note</b>"],
    "score_components": {"reconstruction": dict(metrics, frame_auc_micro=0.5)},
    "baselines": {"flow": dict(metrics, frame_auc_micro=0.25)},
    "pixel": None,
    "checkpoint": f"/runs/{name}",
    **extra,
  }, name


def test_every_string_is_escaped(tmp_path):
  report, name = hand_built(tmp_path)
  path = html_report.write(str(tmp_path), report)
  raw = open(path, encoding="utf-8").read()
  assert "<script" not in raw and "<b>" not in raw
  root = parse(path)
  text = texts(root)
  assert f"{name}: AUC 0.7500" in text and f"/runs/{name}" in text and "a <b>note</b>" in text
  assert "0.1235" in text and "n/a" in text and "reconstruction alone" in text and "flow baseline" in text
  assert "threshold" not in text and len(images(root)) == 2  # no worst_frames.png here: no section


def test_the_alarm_threshold_is_stated_when_the_report_has_one(tmp_path):
  report, _ = hand_built(tmp_path, threshold={"value": 0.4321, "rule": "99th percentile of training scores"})
  text = texts(parse(html_report.write(str(tmp_path), report)))
  assert "alarm threshold 0.4321 (99th percentile of training scores)" in text


def _alarm(**extra):
  return {
    "threshold": 0.123456789,
    "score": "reconstruction",
    "patch": 16,
    "postprocess": "gaussian:sigma=3.0,taps=25",
    "false_alarm_rate": 0.01,
    "min_event_seconds": 0.5,
    "merge_gap_seconds": 1.0,
    "calibration": {
      "videos": ["Train016"],
      "held_out_frames": 180,
      "quantile_rule": "the rule <as stated>",
      "fps": 10.0,
      "fps_source": "data.fps",
      "warning": None,
    },
    "test": {
      "precision": 0.5,
      "recall": 0.875,
      "f1": 0.636363,
      "false_positive_rate": 0.0625,
      "flagged_frames": 14,
      "events": 3,
      "false_alarms": 1,
      "false_alarms_per_hour": 276.923076923,
      "hours": 0.0036111,
      "anomaly_intervals": 2,
      "anomaly_intervals_hit": 2,
      "protocol": "frames flagged above the threshold",
    },
    **extra,
  }


def test_the_alarm_section_carries_report_json_numbers(tmp_path):
  report, _ = hand_built(tmp_path, alarm=_alarm())
  root = parse(html_report.write(str(tmp_path), report))
  text = texts(root)
  assert "Alarm threshold" in text and "alarm threshold 0.123457 (on the reconstruction score" in text
  cells = {texts(tr[0]): texts(tr[1]) for tr in root.iter(f"{XHTML}tr") if len(tr) == 2}
  test = report["alarm"]["test"]
  assert cells["threshold"] == "0.123457" and cells["frame precision"] == eval_report.cell(test["precision"])
  assert cells["frame recall"] == "0.8750" and cells["frame false-positive rate"] == "0.0625"
  assert cells["false alarms per hour"] == "276.9" and cells["anomalous intervals hit"] == "2"
  assert cells["alarm events"] == "3" and cells["labelled test footage"] == "0.003611 h (13 s)"
  assert cells["false-alarm rate asked"] == "0.01 (1% of held-out normal frames)"
  assert cells["event rule"] == "at least 0.5 s; gaps up to 1 s merged"  # not a second "events" row
  assert cells["held-out normal frames"] == "180" and "the rule <as stated>" in text
  # Beside the threshold-free metrics: right after the headline table, before the post-processing tables.
  headings = [texts(h) for h in root.iter(f"{XHTML}h2")]
  assert headings.index("Alarm threshold") == headings.index("Headline metrics") + 1


def test_an_alarm_score_without_patches_states_none(tmp_path):
  report, _ = hand_built(tmp_path, alarm=_alarm(score="aed_mae", patch=None))
  root = parse(html_report.write(str(tmp_path), report))
  cells = {texts(tr[0]): texts(tr[1]) for tr in root.iter(f"{XHTML}tr") if len(tr) == 2}
  assert cells["score"] == "aed_mae, gaussian:sigma=3.0,taps=25" and "None" not in texts(root)


def test_a_missing_alarm_says_why(tmp_path):
  reason = "data.holdout_share is 0: no normal footage was held out"
  report, _ = hand_built(tmp_path, alarm={"threshold": None, "reason": reason})
  text = texts(parse(html_report.write(str(tmp_path), report)))
  assert f"No alarm threshold: {reason}." in text
