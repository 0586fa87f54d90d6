"""Evaluation: every test frame scored once, files under eval/, metrics consistent with what was written."""

import csv
import json
import os

import cv2
import jax
import jax.numpy as jnp
from model_helpers import STORE_LENGTHS as LENGTHS
from model_helpers import STORE_NAMES as NAMES
from model_helpers import Record
from model_helpers import centre_clips
from model_helpers import make_store
from model_helpers import random_variables
import numpy as np
import pytest
import tiny_run

from data_pipeline import framestore
from maskedskip_jax.errors import UserError
from maskedskip_jax.eval import baselines
from maskedskip_jax.eval import diagnostics
from maskedskip_jax.eval import evaluate
from maskedskip_jax.eval import metrics
from maskedskip_jax.eval import plots
from maskedskip_jax.eval import postprocess
from maskedskip_jax.eval import threshold
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


def test_unlabelled_test_set_is_an_error_and_writes_nothing(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  store, *_ = make_store(with_labels=False)
  with pytest.raises(UserError, match="no frame labels"):
    evaluate.evaluate_store(
      model,
      random_variables(model),
      store,
      batch_size=5,
      out_dir=str(tmp_path / "eval"),
      pixel_metrics=False,
      progress=False,
    )
  assert os.listdir(tmp_path) == []


def test_run_evaluates_the_newest_checkpoint(tmp_path, capsys):
  from maskedskip_jax.train import checkpointing  # pylint: disable=g-import-not-at-top
  from maskedskip_jax.train import state as train_state  # pylint: disable=g-import-not-at-top

  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=1, num_test=2, frames=9)
  config = tiny_run.config(root, "")
  workdir = str(tmp_path / "work")
  model = train_state.build_model(config)
  variables = random_variables(model)
  tx = train_state.build_optimizer(config, 1)
  state = dict(
    params=variables["params"],
    batch_stats=variables["batch_stats"],
    opt_state=tx.init(variables["params"]),
    step=jnp.asarray(0, jnp.int32),
    rng=jax.random.PRNGKey(0),
  )
  mngr = checkpointing.manager(workdir, async_save=False)
  for step in (3, 6):
    checkpointing.save(mngr, step, dict(state, step=jnp.asarray(step, jnp.int32)), {"config": {}})
  mngr.close()

  report = evaluate.run(config, workdir)
  assert report["checkpoint_step"] == 6 and report["dataset"] == "generic"
  assert report["variant"] == "maskedskip_unet" and report["num_frames"] == 18
  printed = capsys.readouterr().out
  assert "| post-processing | frame AUC micro |" in printed
  best = max(report["baselines"], key=lambda n: report["baselines"][n]["frame_auc_micro"])
  # The alarm's line closes the evaluation (this test set's one training video gives up a frame to calibrate on).
  assert printed.rstrip().splitlines()[-1].startswith(f"alarm at threshold {report['alarm']['threshold']:.6g} (1% ")
  assert (
    printed.rstrip()
    .splitlines()[-2]
    .endswith(
      f"model {report['frame_auc_micro']:.3f} micro vs best baseline "
      f"{report['baselines'][best]['frame_auc_micro']:.3f} ({best})"
    )
  )
  assert len(read_csv(os.path.join(workdir, "eval", "scores.csv"))) == 18
  assert json.loads(open(os.path.join(workdir, "eval", "report.json")).read())["checkpoint_step"] == 6

  # The same weights from a bundle give the same scores.
  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top

  model_dir = bundle.save(
    str(tmp_path / "bundle"),
    variables,
    {"variant": "maskedskip_unet", "latent_dim": 16, "channels": 1},
    {"checkpoint_step": 6},
  )
  again = evaluate.run(config, str(tmp_path / "other"), trained=bundle.load_for_config(config, model_dir))
  assert again["checkpoint_step"] == 6 and again["checkpoint"] == model_dir
  assert again["frame_auc_micro"] == report["frame_auc_micro"]
  first, second = (read_csv(os.path.join(w, "eval", "scores.csv")) for w in (workdir, str(tmp_path / "other")))
  assert [r["score"] for r in first] == [r["score"] for r in second]


def test_alarm_section_matches_a_hand_computation_from_scores_csv(tmp_path):
  model = models.build("maskedskip_unet", latent_dim=8, channels=1)
  variables = random_variables(model)
  store, labels, _ = make_store()
  rng = np.random.default_rng(5)
  held_frames = rng.integers(0, 256, (50, 32, 32, 1), dtype=np.uint8)
  held = framestore.FrameStore(held_frames, [20, 30], [Record("Train8", None), Record("Train9", None)])
  plan = threshold.Plan(
    held, {"share": 0.5, "videos": ["Train8", "Train9"]}, 0.1, "gaussian:sigma=2", 0.2, 0.1, 10.0, "test", 7
  )
  out = tmp_path / "eval"
  kw = dict(temporal=3, batch_size=5, pixel_metrics=False, baselines=(), worst_frames=0, progress=False)
  report = evaluate.evaluate_store(
    model, variables, store, postprocess="median:window=5", out_dir=str(out), alarm=plan, **kw
  )
  alarm = report["alarm"]
  assert json.loads((out / "report.json").read_text())["alarm"] == alarm

  # The threshold, by hand: the plain forward's scores of the held-out videos, smoothed, 45th smallest of 50.
  clips = centre_clips([held.video_frames(v) for v in range(2)], 3)
  recon = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, clips)
  plain = np.asarray(scoring.frame_scores(scoring.score_maps(clips[:, 1], recon), 16), np.float64)
  smoothed = np.concatenate(postprocess.postprocess([plain[:20], plain[20:]], "gaussian:sigma=2"))
  assert alarm["threshold"] == pytest.approx(np.sort(smoothed)[44], rel=1e-5)
  assert alarm["calibration"]["held_out_frames"] == 50 and alarm["calibration"]["checkpoint_step"] == 7
  assert alarm["calibration"]["warning"] is None  # 50 frames resolve a rate of 1 in 10

  # Precision and recall, by hand from scores.csv: score_alarm is the raw score smoothed; flagged above threshold.
  rows = read_csv(out / "scores.csv")
  tp = fp = fn = 0
  for name in NAMES:
    mine = [r for r in rows if r["video"] == name]
    raw = np.array([float(r["score"]) for r in mine])
    alarm_scores = np.array([float(r["score_alarm"]) for r in mine])
    np.testing.assert_allclose(alarm_scores, postprocess.postprocess([raw], "gaussian:sigma=2")[0], rtol=1e-6)
    assert np.all(np.abs(alarm_scores - alarm["threshold"]) > 1e-6 * alarm["threshold"])  # no tie to round away
    flagged, truth = alarm_scores > alarm["threshold"], np.array([int(r["label"]) for r in mine]) == 1
    tp, fp, fn = tp + np.sum(flagged & truth), fp + np.sum(flagged & ~truth), fn + np.sum(~flagged & truth)
  test = alarm["test"]
  assert (test["true_positives"], test["false_positives"]) == (tp, fp) and tp + fp > 0
  assert test["precision"] == tp / (tp + fp) and test["recall"] == tp / (tp + fn)
  assert test["frames"] == sum(LENGTHS) and test["fps"] == 10.0 and test["min_event_frames"] == 2

  # The headline (median) is not the alarm's score (gaussian): the plots carry it in a panel of its own.
  heights = {cv2.imread(str(out / "plots" / f"{n}.png")).shape[0] for n in NAMES}
  assert heights == {480}
  text = open(out / "report.html", encoding="utf-8").read()
  assert "Alarm threshold" in text and f"{alarm['threshold']:.6g}" in text


def test_the_threshold_goes_on_the_headline_curve_when_it_is_the_alarm_score(tmp_path, monkeypatch):
  from matplotlib.axes import Axes  # pylint: disable=g-import-not-at-top

  lines, original = [], Axes.axhline
  monkeypatch.setattr(Axes, "axhline", lambda self, y=0, **kw: lines.append(y) or original(self, y, **kw))
  alarm = {"threshold": 2.5, "score": "reconstruction", "postprocess": "gaussian:sigma=3.0,taps=25"}
  scores = [np.linspace(0, 4, 9)]
  same = threshold.drawn(alarm, scores, "gaussian:sigma=3.0,taps=25")
  other = threshold.drawn(alarm, scores, None)  # a hybrid headline: never the alarm's score
  assert same[3] and not other[3] and threshold.drawn(alarm, None, None) is None
  diagnostics.video_plots(str(tmp_path / "same"), ["v"], [None], scores, "gaussian", alarm=same)
  diagnostics.video_plots(str(tmp_path / "other"), ["v"], [None], [np.zeros(9)], "x", alarm=other)
  assert lines == [2.5, 2.5]
  assert cv2.imread(str(tmp_path / "same" / "v.png")).shape[0] == 280
  assert cv2.imread(str(tmp_path / "other" / "v.png")).shape[0] == 480
