"""evaluate_store on a fake store: scores.csv, report.json, plots, videos, baselines, worst frames, pixel metrics."""

import csv
import json
import os

import cv2
import jax
from model_helpers import STORE_LENGTHS as LENGTHS
from model_helpers import STORE_NAMES as NAMES
from model_helpers import centre_clips
from model_helpers import make_store
from model_helpers import random_variables
import numpy as np
import pytest

from maskedskip_jax.eval import baselines
from maskedskip_jax.eval import diagnostics
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import metrics
from maskedskip_jax.eval import plots
from maskedskip_jax.eval import postprocess
from maskedskip_jax.nn import models
from maskedskip_jax.nn import scoring


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model)
  store, labels, masks = make_store()
  out = tmp_path_factory.mktemp("run") / "eval"
  report = evaluate.evaluate_store(
    model,
    variables,
    store,
    temporal=3,
    batch_size=5,
    postprocess="median:window=5",
    out_dir=str(out),
    write_videos=True,
    pixel_size=16,
    region_thresholds=5,
    info={"dataset": "fake", "variant": model.variant, "checkpoint_step": 7},
    progress=False,
  )
  # The plain way: the clip centred on frame k of video v, through model.apply.
  clips = centre_clips([store.video_frames(v) for v in range(store.num_videos)], 3)
  recon = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, clips)
  plain_maps = np.asarray(scoring.score_maps(clips[:, 1], recon))
  return store, labels, masks, plain_maps, out, report


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_scores_csv_has_every_frame_with_its_label_and_score(evaluated):
  _, labels, _, plain_maps, out, _ = evaluated
  rows = read_csv(out / "scores.csv")
  assert list(rows[0]) == [
    "video",
    "frame",
    "score",
    "label",
    "score_postprocessed",
    "score_frame_diff",
    "score_mog2",
    "score_flow",
  ]
  assert [(r["video"], int(r["frame"])) for r in rows] == [
    (n, k) for n, length in zip(NAMES, LENGTHS) for k in range(length)
  ]
  assert [int(r["label"]) for r in rows] == np.concatenate(labels).tolist()
  np.testing.assert_allclose([float(r["score"]) for r in rows], scoring.frame_scores(plain_maps), atol=1e-5)


def split_by_video(rows, key):
  return [np.array([float(r[key]) for r in rows if r["video"] == n]) for n in NAMES]


def test_report_and_postprocessing_table_match_the_csv(evaluated):
  _, labels, _, _, out, _ = evaluated
  on_disk = json.loads((out / "report.json").read_text())
  for key in (
    "frame_auc_micro",
    "frame_auc_macro",
    "macro_policy",
    "eer",
    "average_precision",
    "num_frames",
    "num_videos",
    "postprocess",
    "checkpoint_step",
    "variant",
    "dataset",
    "postprocess_table",
    "pixel",
  ):
    assert key in on_disk, key
  assert on_disk["num_frames"] == sum(LENGTHS) and on_disk["num_videos"] == 3
  assert on_disk["checkpoint_step"] == 7 and on_disk["dataset"] == "fake"
  assert on_disk["postprocess"] == "median:window=5"
  assert "Test002" in on_disk["macro_policy"] and on_disk["per_video_auc"]["Test002"] is None

  rows = read_csv(out / "scores.csv")
  raw = split_by_video(rows, "score")
  smoothed = split_by_video(rows, "score_postprocessed")
  np.testing.assert_allclose(
    np.concatenate(smoothed), np.concatenate(postprocess.postprocess(raw, "median:window=5")), atol=1e-6
  )
  headline = metrics.frame_metrics(smoothed, labels)
  for key in ("frame_auc_micro", "frame_auc_macro", "eer", "average_precision"):
    assert on_disk[key] == pytest.approx(headline[key], abs=1e-6), key

  table = {row["postprocess"]: row for row in on_disk["postprocess_table"]}
  assert list(table) == [
    "none",
    "median:window=17",
    "gaussian:sigma=3.0,taps=25",
    "minmax",
    "zscore",
    "median:window=5",
  ]
  for name, row in table.items():
    want = metrics.frame_metrics(postprocess.postprocess(raw, name), labels)
    assert row["frame_auc_micro"] == pytest.approx(want["frame_auc_micro"], abs=1e-6), name
    assert row["frame_auc_macro"] == pytest.approx(want["frame_auc_macro"], abs=1e-6), name
  assert on_disk["postprocess_table_markdown"].count("\n") == len(table) + 1


def test_plots_and_reconstruction_videos(evaluated):
  out = evaluated[4]
  for path in [out / "roc.png"] + [out / "plots" / f"{n}.png" for n in NAMES]:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
  for name, n in zip(NAMES, LENGTHS):
    capture = cv2.VideoCapture(str(out / "videos" / f"{name}.mp4"))
    count = 0
    while True:
      ok, frame = capture.read()
      if not ok:
        break
      assert frame.shape == (32, 96, 3)  # input | reconstruction | difference
      count += 1
    assert count == n, name
  assert not [p for p in os.listdir(out.parent) if p.startswith(".")]  # no temp folders left behind


def test_baselines_are_scored_and_post_processed_like_the_model(evaluated):
  store, labels, _, _, out, report = evaluated
  on_disk = json.loads((out / "report.json").read_text())
  assert on_disk["baselines"] == report["baselines"] and list(on_disk["baselines"]) == list(baselines.BASELINES)
  assert "median:window=5" in on_disk["baselines_protocol"] and "MOG2" in on_disk["baselines_protocol"]
  rows = read_csv(out / "scores.csv")
  for name in baselines.BASELINES:
    raw = baselines.score_store(store, [name])[name]
    np.testing.assert_allclose(
      np.concatenate(split_by_video(rows, f"score_{name}")), np.concatenate(raw), rtol=1e-6, atol=1e-9
    )
    want = metrics.frame_metrics(postprocess.postprocess(raw, "median:window=5"), labels)
    assert set(on_disk["baselines"][name]) == {"frame_auc_micro", "frame_auc_macro", "eer", "average_precision"}
    for key, value in on_disk["baselines"][name].items():
      assert value == pytest.approx(want[key], abs=1e-9), (name, key)


def orange_pixels(path):
  image = cv2.imread(str(path)).astype(int)  # BGR; matplotlib's tab:orange is (255, 127, 14) in RGB
  return int((np.abs(image - [14, 127, 255]).sum(axis=-1) < 60).sum())


def test_diagnostic_figures(evaluated):
  out = evaluated[4]
  for name in NAMES:  # each video's plot carries the best baseline's curve beside the model's
    assert orange_pixels(out / "plots" / f"{name}.png") > 100, name
  grid = cv2.imread(str(out / "worst_frames.png"))
  assert grid is not None and grid.shape[0] > 8 * 100  # a row for each of the 8 worst misses


def test_worst_frames_are_the_lowest_scored_anomalous_frames_with_their_own_maps(evaluated, tmp_path, monkeypatch):
  store, labels, _, plain_maps, _, _ = evaluated
  rng = np.random.default_rng(3)
  scores = [rng.random(n) for n in LENGTHS]
  anomalous = sorted((scores[v][i], v, i) for v in range(3) for i in np.flatnonzero(labels[v]))
  assert diagnostics.misses(scores, labels, 5) == [(v, i) for _, v, i in anomalous[:5]]
  assert diagnostics.misses(scores, [None, labels[1], None], 50) == [(1, i) for i in np.argsort(scores[1])]
  drawn = []
  monkeypatch.setattr(plots, "plot_frame_grid", lambda rows, path, **kw: drawn.extend(rows) or path)
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  path = diagnostics.worst_frames(model, random_variables(model), store, scores, labels, str(tmp_path / "w.png"), 3)
  assert path == str(tmp_path / "w.png") and len(drawn) == 3
  starts = np.concatenate([[0], np.cumsum(LENGTHS)])
  for (frame, _, score_map, caption), (_, v, i) in zip(drawn, anomalous):
    np.testing.assert_array_equal(frame, store.video_frames(v)[i] / np.float32(255))
    np.testing.assert_allclose(score_map, plain_maps[starts[v] + i], atol=1e-5)
    assert caption.startswith(f"{NAMES[v]} frame {i}: score ")
  assert diagnostics.worst_frames(model, None, store, scores, [np.zeros(n) for n in LENGTHS], "unused") is None


def test_no_baselines_when_none_are_asked_for(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  store, _, _ = make_store()
  report = evaluate.evaluate_store(
    model,
    random_variables(model),
    store,
    batch_size=5,
    out_dir=str(tmp_path / "e"),
    pixel_size=16,
    write_videos=True,
    progress=False,
    baselines="",
    worst_frames=0,
  )
  assert report["baselines"] == {}
  assert list(read_csv(tmp_path / "e" / "scores.csv")[0]) == ["video", "frame", "score", "label"]
  assert not (tmp_path / "e" / "worst_frames.png").exists() and (tmp_path / "e" / "plots" / "Test001.png").exists()
  assert orange_pixels(tmp_path / "e" / "plots" / "Test001.png") < 20


def test_pixel_metrics_at_the_stated_resolution(evaluated):
  _, _, masks, plain_maps, _, report = evaluated
  pixel = report["pixel"]
  assert pixel["resolution"] == [16, 16] and pixel["num_videos_with_masks"] == 2
  assert "16x16" in pixel["protocol"]
  plain = np.split(plain_maps, np.cumsum(LENGTHS)[:-1])
  maps = [plain[v].reshape(-1, 16, 2, 16, 2).mean(axis=(2, 4)) for v in (0, 2)]
  small = [
    np.stack([cv2.resize((m != 0).astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA) >= 0.5 for m in masks[v]])
    for v in (0, 2)
  ]
  assert pixel["pixel_auroc"] == pytest.approx(metrics.pixel_auroc(maps, small)["pixel_auroc"], abs=1e-4)
  assert pixel["rbdc"] is not None and 0 <= pixel["rbdc"] <= 1 and len(pixel["region"]["thresholds"]) == 5
