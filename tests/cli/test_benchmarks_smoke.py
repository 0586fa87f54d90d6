"""Benchmark scripts end to end at a tiny size: torch_train, score_variants, AED-MAE's size, speed, micro-batches,
object sizes."""

import json
import os

from benchmark_scripts import ROOT
from benchmark_scripts import run_script
from benchmark_scripts import uniform as _uniform
import jax
import numpy as np
import pytest


@pytest.mark.slow  # trains the PyTorch twin end to end
def test_torch_train_trains_the_twin_and_scores_its_import_with_the_jax_evaluation(tmp_path):
  """benchmarks/torch_train.py end to end: 3 published-loop steps, import, JAX evaluation."""
  torch = pytest.importorskip("torch")
  import tiny_run  # pylint: disable=g-import-not-at-top
  import torch_twin  # pylint: disable=g-import-not-at-top

  from maskedskip_jax.deploy import bundle  # pylint: disable=g-import-not-at-top

  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=2, num_test=1, frames=12)
  work = tmp_path / "work"
  # configs/ped2.py (RGB: grey frames replicated, as the published loader does) at the tiny size.
  flags = [
    f"--config={os.path.join(ROOT, 'configs', 'ped2.py')}",
    "--config.data.name=generic",
    f"--config.data.root={root}",
    "--config.data.image_size=(32,32)",
    "--config.data.cache_dir=",
    "--config.model.latent_dim=16",
    "--config.model.masked_kernels=frozen",
    "--config.train.batch_size=4",
    "--config.train.num_steps=3",
    f"--config.train.compilation_cache_dir={tiny_run.JAX_CACHE}",
  ]
  proc = run_script("torch_train.py", *flags, f"--workdir={work}", env=tiny_run.env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "step 3/3: loss" in proc.stdout
  report = json.loads((work / "eval" / "report.json").read_text())
  assert report["checkpoint_step"] == 3 and report["num_frames"] == 12 and report["channels"] == 3
  assert 0 <= report["frame_auc_micro"] <= 1
  record = json.loads((work / "torch_train.json").read_text())
  assert record["steps"] == 3 and np.isfinite(record["final_loss"]) and record["config"]["data.channels"] == 3

  state = torch.load(work / "torch.pt", weights_only=True)
  twin = torch_twin.Twin("maskedskip_unet", 16, 3, 3)
  twin.load_state_dict(state)
  twin.eval()
  # Frozen: masked-conv weights still equal their masked init (only biases moved), as in the published code.
  torch.manual_seed(0)
  init = torch_twin.Twin("maskedskip_unet", 16, 3, 3).state_dict()
  assert torch.equal(state["mconv1.conv.weight"], init["mconv1.conv.weight"] * init["mconv1.filter_mask"])
  assert not torch.equal(state["mconv1.conv.bias"], init["mconv1.conv.bias"])
  model, variables, _ = bundle.load(str(work / "bundle"), expect_variant="maskedskip_unet")
  x = _uniform(3, (2, 3, 32, 32, 3))  # (B, T, H, W, C)
  got = np.asarray(jax.jit(model.apply)(variables, x))
  with torch.no_grad():
    want = twin(torch.from_numpy(np.asarray(x).transpose(0, 4, 1, 2, 3).copy())).numpy().transpose(0, 2, 3, 1)
  assert want.std() > 1e-3 and np.abs(got - want).max() < 1e-4


def test_score_variants_reports_every_variant_and_patch16_is_the_evaluations_score(tmp_path):
  """benchmarks/score_variants.py on a tiny trained run: every variant, and patch16 = --mode=eval's AUCs."""
  import tiny_run  # pylint: disable=g-import-not-at-top

  root = tiny_run.make_dataset(str(tmp_path / "data"), num_train=2, num_test=2, frames=20)
  work, out = tmp_path / "work", tmp_path / "variants.json"
  # The reconstruction score alone (synthetic.py's hybrid off), so report.json's headline is what patch16 is.
  flags = tiny_run.overrides(root, **{"eval.hybrid_beta": 0.0})
  trained = tiny_run.run_main(str(work), flags, mode="train_and_eval", timeout=300)
  assert trained.returncode == 0, trained.stderr[-3000:]
  proc = run_script(
    "score_variants.py",
    "--config=configs/synthetic.py",
    f"--workdir={work}",
    f"--json={out}",
    *flags,
    timeout=300,
    env=tiny_run.env(),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(out.read_text())
  # Spelled out, not imported: the script defines absl flags that main.py, imported by other tests, also defines.
  names = (
    [f"patch{p}" for p in (8, 16, 24, 32)]
    + [f"{v}_p{p}" for p in (16, 32) for v in ("minus_mean", "div_mean", "pixel_z")]
    + [f"patch_z_p{p}" for p in (16, 32)]
  )
  assert set(record["variants"]) == set(names)
  assert record["train_frames"] == 40 and record["test_frames"] == 40 and record["checkpoint_step"] == 6
  assert not list(tmp_path.glob("variants.json.tmp-*"))  # written by temp + rename
  for name in names:
    assert f"| {name} |" in proc.stdout
    for post in ("none", "median:window=17"):
      r = record["variants"][name][post]
      assert 0 <= r["frame_auc_micro"] <= 1 and 0 <= r["frame_auc_macro"] <= 1 and len(r["per_video_auc"]) == 2
  report = json.loads((work / "eval" / "report.json").read_text())
  rows = {row["postprocess"]: row for row in report["postprocess_table"]}
  for post in ("none", "median:window=17"):
    for key in ("frame_auc_micro", "frame_auc_macro"):
      assert record["variants"]["patch16"][post][key] == rows[post][key], (post, key)
  # synthetic.py's headline post-processing is the 17-frame median: the per-video AUCs are that row's.
  assert report["postprocess"] == "median:window=17"
  assert record["variants"]["patch16"]["median:window=17"]["per_video_auc"] == report["per_video_auc"]


@pytest.mark.slow  # compiles the paper-size network three times
def test_aed_mae_size_reports_every_setting():
  out = run_script("aed_mae_size.py")
  assert out.returncode == 0, out.stderr[-3000:]
  doc = json.loads(out.stdout)
  assert [r["setting"] for r in doc["rows"]] == ["avenue", "shanghaitech", "ped2"]
  assert all(r["params"] > 1_000_000 and r["gflops_per_frame"] > 0 for r in doc["rows"])


@pytest.mark.slow  # compiles the paper-size network twice
def test_aed_mae_speed_scores_every_frame_of_its_video():
  out = run_script("aed_mae_speed.py", "--setting=ped2", "--frames=9", "--batch=4")
  assert out.returncode == 0, out.stderr[-3000:]
  doc = json.loads(out.stdout)
  assert doc["frames_scored"] == 9 and doc["frame"] == [80, 160] and doc["patch"] == 4
  assert doc["masking"] == "cover"
  assert doc["forward_frames_per_s"] > 0 and doc["end_to_end_frames_per_s"] > 0


@pytest.mark.slow  # compiles AED-MAE's step three times
def test_aed_mae_micro_batches_forms_compute_the_same_step():
  docs = {}
  for form in ("scan", "unrolled", "whole"):
    args = [f"--form={form}", "--batch=4", "--parts=2", "--patch=16", "--steps=2"]  # step 2 sees step 1's update
    out = run_script("aed_mae_micro_batches.py", *args)
    assert out.returncode == 0, out.stderr[-3000:]
    docs[form] = json.loads(out.stdout)
  assert docs["scan"]["parts"] == docs["unrolled"]["parts"] == 2 and docs["whole"]["parts"] == 1
  np.testing.assert_allclose(docs["scan"]["loss"], docs["unrolled"]["loss"], rtol=1e-5)
  assert all(d["step_s"][0] > 0 and d["peak_rss_bytes"] > 0 for d in docs.values())


def _write_moving_boxes(root, heights_widths, frames=12, size=64):
  """A generic-layout dataset: one training video per (h, w), a dark h x w box crossing a grey frame."""
  import cv2  # pylint: disable=g-import-not-at-top

  for i, (h, w) in enumerate(heights_widths):
    video = root / "train" / f"{i:02d}"
    video.mkdir(parents=True)
    for t in range(frames):
      frame = np.full((size, size), 160, np.uint8)
      x = 2 + 4 * t
      frame[20 : 20 + h, x : x + w] = 20
      cv2.imwrite(str(video / f"{t:03d}.png"), frame)


def test_object_sizes_measures_the_moving_blobs_and_their_fit_in_a_token(tmp_path):
  """benchmarks/object_sizes.py on boxes of known size: their heights, widths and the share inside a d x d token."""
  root = tmp_path / "data"
  _write_moving_boxes(root, [(6, 4), (12, 10)])
  out = tmp_path / "sizes.json"
  proc = run_script(
    "object_sizes.py",
    "--config=configs/aed_mae_ped2.py",
    f"--workdir={tmp_path / 'work'}",
    f"--json={out}",
    "--tokens=4,8,16",
    "--every=1",
    "--config.data.image_size=(64,64)",
    f"--config.data.root={root}",
    "--config.data.cache_dir=",
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads(out.read_text())
  small, large = record["videos"]["00"], record["videos"]["01"]
  assert small["blobs"] == 12 and large["blobs"] == 12  # one box in each of the 12 frames
  assert (small["height"]["p50"], small["width"]["p50"]) == (6, 4)
  assert (large["height"]["p50"], large["width"]["p50"]) == (12, 10)
  assert small["fits_in_one_token"] == {"4": 0.0, "8": 1.0, "16": 1.0}
  assert record["all"]["fits_in_one_token"] == {"4": 0.0, "8": 0.5, "16": 1.0}
  assert not list(tmp_path.glob("sizes.json.*"))  # written by temp + rename


def test_object_sizes_refuses_bad_token_sides_in_one_line(tmp_path):
  proc = run_script("object_sizes.py", f"--workdir={tmp_path}", "--tokens=8,x", timeout=120)
  assert proc.returncode == 1
  assert (
    proc.stderr.strip().splitlines()[-1] == "error: --tokens: expected comma-separated positive integers, got '8,x'"
  )
