"""Seed 003's CAE through the command line: train with early stopping and augmentation, evaluate with the hybrid
frame score, export the best state as a bundle, and score a video from it with predict."""

import json
import os

import tiny_run

from maskedskip_jax.deploy import predict
from maskedskip_jax.train import metrics_log


def test_train_eval_export_predict(tiny_dataset, tmp_path):
  workdir = str(tmp_path / "run")
  flags = tiny_run.overrides(
    tiny_dataset,
    model__variant="cae",
    train__num_steps=0,
    train__epochs=2,
    train__early_stopping_patience=3,
    train__augment=True,
    train__schedule="step_decay",
    eval__hybrid_motion="gradient",
    eval__hybrid_standardise=False,
    eval__baselines="",
  )
  for mode in ("train_and_eval", "export"):
    proc = tiny_run.run_main(workdir, flags, mode=mode, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

  with open(os.path.join(workdir, "eval", "report.json")) as f:
    report = json.load(f)
  assert report["variant"] == "cae" and report["temporal"] == 3
  assert report["frame_score"]["formula"] == "hybrid_alpha * reconstruction + hybrid_beta * motion(gradient)"
  lines = metrics_log.read(os.path.join(workdir, metrics_log.METRICS_FILE))
  best = int([r for r in lines if "best_step" in r][-1]["best_step"])  # the log's values are floats
  assert report["checkpoint_step"] == best and report["checkpoint"].endswith(
    os.path.join("best", "checkpoints", str(best))
  )

  with open(os.path.join(workdir, "export", "model.json")) as f:
    model = json.load(f)
  assert (model["variant"], model["latent_dim"], model["metadata"]["checkpoint_step"]) == ("cae", 16, best)
  out = predict.predict(
    os.path.join(workdir, "export"),
    os.path.join(tiny_dataset, "test", "v0"),
    str(tmp_path / "predicted"),
    write_overlay=False,
    progress=False,
  )
  assert out["frames"] == 20
