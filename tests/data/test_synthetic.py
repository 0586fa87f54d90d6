"""Tests of the procedural surveillance dataset (data_pipeline.synthetic and synthetic_tracks)."""

import json
import os

import cv2
import numpy as np
import pytest

from data_pipeline import synthetic
from data_pipeline import synthetic_scene
from data_pipeline import synthetic_tracks
from maskedskip_jax.errors import UserError

TINY = dict(seed=3, num_train=2, num_test=4, frames_per_video=16, height=48, width=64)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  return synthetic.generate(str(tmp_path_factory.mktemp("synth") / "data"), workers=1, **TINY)


def _files(root):
  out = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


def _frames(root, split, video):
  folder = os.path.join(root, split, video)
  return np.stack([cv2.imread(os.path.join(folder, n), cv2.IMREAD_UNCHANGED) for n in sorted(os.listdir(folder))])


def test_layout_shapes_and_dtypes(tiny):
  n, h, w = TINY["frames_per_video"], TINY["height"], TINY["width"]
  assert sorted(os.listdir(os.path.join(tiny, "train"))) == ["train_00", "train_01"]
  test_entries = sorted(os.listdir(os.path.join(tiny, "test")))
  videos = ["test_00", "test_01", "test_02", "test_03"]
  assert test_entries == sorted(videos + [v + ".txt" for v in videos] + [v + "_mask.npy" for v in videos])
  assert sorted(os.listdir(os.path.join(tiny, "train", "train_00"))) == [f"{t:03d}.png" for t in range(n)]
  for split, video in [("train", "train_01"), ("test", "test_02")]:
    frames = _frames(tiny, split, video)
    assert frames.shape == (n, h, w) and frames.dtype == np.uint8  # single-channel PNGs
  masks = np.load(os.path.join(tiny, "test", "test_00_mask.npy"), allow_pickle=False)
  assert masks.shape == (n, h, w) and masks.dtype == np.uint8 and set(np.unique(masks)) <= {0, 1}
  with open(os.path.join(tiny, "synthetic.json")) as f:
    meta = json.load(f)
  assert meta["params"] == TINY and meta["train"] == ["train_00", "train_01"] and sorted(meta["test"]) == videos


def test_labels_match_masks_and_both_classes_present(tiny):
  with open(os.path.join(tiny, "synthetic.json")) as f:
    meta = json.load(f)
  kinds = set()
  for video in ("test_00", "test_01", "test_02", "test_03"):
    with open(os.path.join(tiny, "test", video + ".txt")) as f:
      labels = np.array([int(line) for line in f.read().split()])
    masks = np.load(os.path.join(tiny, "test", video + "_mask.npy"))
    assert len(labels) == len(masks) == len(os.listdir(os.path.join(tiny, "test", video)))
    np.testing.assert_array_equal(labels, masks.reshape(len(masks), -1).any(1))
    assert 0 < labels.sum() < len(labels)  # a stretch of anomaly, not the whole video
    assert labels[0] == 0
    # Visible but not huge: no anomaly covers more than a tenth of the frame.
    assert masks.reshape(len(masks), -1).mean(1).max() < 0.1
    assert meta["test"][video]["anomalous_frames"] == labels.sum()
    events = meta["test"][video]["events"]
    assert labels[events[0]["first_frame"]] == 1 and labels[: events[0]["first_frame"]].sum() == 0
    kinds |= {e["kind"] for e in events}
  assert kinds == set(synthetic_tracks.ANOMALY_KINDS)


def test_train_has_no_anomalies_and_walkers_stay_on_walkway(tiny):
  assert not [n for n in os.listdir(os.path.join(tiny, "train")) if n.endswith((".txt", ".npy"))]
  p = dict(synthetic.DEFAULTS, num_train=4)
  scene = synthetic_scene.Scene(p["height"], p["width"], np.random.default_rng(0))
  for index in range(p["num_train"]):
    tracks = synthetic_tracks.plan_video(p["seed"], "train", index, p["frames_per_video"], p["height"], p["width"])
    assert tracks and all(tr.kind == "walker" for tr in tracks)
    for tr in tracks:
      inside = [(x, y) for x, y in zip(tr.x, tr.y) if 0 <= x < p["width"]]
      assert all(scene.walkway[int(y), int(x)] for x, y in inside)


def test_test_anomalies_differ_from_walkers():
  p = dict(synthetic.DEFAULTS)
  scene = synthetic_scene.Scene(p["height"], p["width"], np.random.default_rng(0))
  speeds = {}
  for index in range(6):
    for tr in synthetic_tracks.plan_video(p["seed"], "test", index, p["frames_per_video"], p["height"], p["width"]):
      assert len(tr.x) > 1  # every planned figure crosses part of the frame
      on_walkway = [scene.walkway[int(y), int(x)] for x, y in zip(tr.x, tr.y) if 0 <= x < p["width"]]
      assert all(on_walkway) if tr.kind != "off_path" else not any(on_walkway)
      if tr.kind == "off_path":  # on the near lawn, below the walkway, where they show large
        assert all(y > synthetic_scene.walkway_edges(x, p["height"], p["width"])[1] for x, y in zip(tr.x, tr.y))
      step = np.abs(np.diff(tr.x)) / synthetic_scene.figure_height(np.array(tr.y[:-1]), p["height"])
      speeds.setdefault(tr.kind, []).append(step.mean())
  assert set(speeds) == {"walker", *synthetic_tracks.ANOMALY_KINDS}
  assert min(speeds["cyclist"]) > 2.5 * max(speeds["walker"])  # cyclists are much faster movers
  assert min(speeds["off_path"]) > 1.8 * max(speeds["walker"])  # lawn-crossers jog
  assert min(speeds["skater"]) > 2.2 * max(speeds["walker"])  # skaters glide along the walkway, fast


def test_determinism_independent_of_workers(tmp_path, tiny):
  again = synthetic.generate(str(tmp_path / "again"), workers=2, **TINY)
  first, second = _files(tiny), _files(again)
  assert sorted(first) == sorted(second)
  assert all(first[k] == second[k] for k in first)  # byte-identical PNGs, labels, masks, json
  other = synthetic.generate(str(tmp_path / "other"), workers=1, **dict(TINY, seed=4))
  assert not np.array_equal(_frames(tiny, "train", "train_00"), _frames(other, "train", "train_00"))
  assert not np.array_equal(_frames(tiny, "test", "test_00"), _frames(other, "test", "test_00"))


def test_sensor_noise_and_static_camera(tiny):
  frames = _frames(tiny, "train", "train_00").astype(np.float32)
  wall = frames[:, :4]  # the building facade: nobody walks there
  diff = np.abs(np.diff(wall, axis=0))
  assert 0.5 < diff.mean() < 8  # noisy sensor, but the camera does not move
  assert abs(frames.mean((1, 2))[0] - frames.mean((1, 2))[-1]) < 15  # drift is slow and small


def test_ensure_reuses_complete_and_ignores_interrupted(tmp_path, monkeypatch):
  cache = tmp_path / "cache"
  params = dict(TINY, num_train=1, num_test=1, frames_per_video=8)
  root = synthetic.ensure(str(cache), workers=1, **params)
  assert os.path.basename(root).startswith("synthetic-") and os.path.dirname(root) == str(cache)
  assert synthetic.ensure(str(cache), **params) == root
  monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("complete cache was regenerated"))
  assert synthetic.ensure(str(cache), **params) == root
  monkeypatch.undo()
  assert synthetic.ensure(str(cache), workers=1, **dict(params, seed=9)) != root

  # A killed run leaves a temporary sibling, and a foreign half copy may sit under the final name.
  fresh = tmp_path / "fresh"
  name = os.path.basename(root)
  os.makedirs(fresh / f".{name}.tmp-dead" / "train" / "train_00")
  os.makedirs(fresh / name / "train" / "train_00")
  result = synthetic.ensure(str(fresh), workers=1, **params)
  assert result == str(fresh / name)
  assert _files(result) == _files(root)


def test_failed_generation_leaves_no_dataset(tmp_path, monkeypatch):
  def broken(job):
    raise RuntimeError("killed")

  monkeypatch.setattr(synthetic, "_write_video", broken)
  with pytest.raises(RuntimeError):
    synthetic.ensure(str(tmp_path), workers=1, **TINY)
  assert os.listdir(tmp_path) == []


def test_user_errors(tmp_path):
  with pytest.raises(UserError, match="frames_per_video"):
    synthetic.generate(str(tmp_path / "a"), frames_per_video=2)
  with pytest.raises(UserError, match="unknown"):
    synthetic.ensure(str(tmp_path), colour=True)
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "x").write_text("keep me")
  with pytest.raises(UserError, match="already exists"):
    synthetic.generate(str(tmp_path / "full"), workers=1, **TINY)
  assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_cli(tmp_path, capsys):
  out = tmp_path / "cli"
  args = [
    "--out",
    str(out),
    "--seed",
    "1",
    "--num-train",
    "1",
    "--num-test",
    "1",
    "--frames-per-video",
    "8",
    "--height",
    "32",
    "--width",
    "48",
    "--workers",
    "1",
  ]
  assert synthetic.main(args) == 0
  assert len(os.listdir(out / "train" / "train_00")) == 8
  assert synthetic.main(args) == 1  # refuses to overwrite
  assert "already exists" in capsys.readouterr().err
