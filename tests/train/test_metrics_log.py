"""Training metrics: JSONL records, TensorBoard events, and a log that never stops training."""

import glob
import os
import sys

from absl import logging
import pytest

from maskedskip_jax.train import metrics_log


def test_records_and_tensorboard_events(tmp_path):
  log = metrics_log.MetricsLog(str(tmp_path))
  log.write(1, {"loss": 0.5, "clips_per_s": 10.0})
  log.write(2, {"loss": float("nan"), "clips_per_s": 11.0})
  log.close()
  assert metrics_log.read(str(tmp_path / metrics_log.METRICS_FILE)) == [
    {"step": 1, "loss": 0.5, "clips_per_s": 10.0},
    {"step": 2, "loss": "nan", "clips_per_s": 11.0},
  ]
  events = glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
  assert len(events) == 1 and b"loss" in open(events[0], "rb").read()


def test_without_tensorboardx_the_records_are_still_written(tmp_path, monkeypatch):
  # A fresh `pip install .[tf]` once had TensorFlow but no tensorboard package: tf.summary
  # raised at the first logged step and killed the run. No writer must mean no events, not a crash.
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # any import of it now fails
  warnings = []
  monkeypatch.setattr(logging, "warning", lambda msg, *a: warnings.append(msg % a if a else msg))
  log = metrics_log.MetricsLog(str(tmp_path))
  log.write(1, {"loss": 0.25})
  log.close()
  assert metrics_log.read(str(tmp_path / metrics_log.METRICS_FILE)) == [{"step": 1, "loss": 0.25}]
  assert not os.path.exists(tmp_path / "tensorboard")
  assert len(warnings) == 1 and "pip install tensorboardX" in warnings[0]


@pytest.mark.parametrize("step", [0, 1])
def test_resume_drops_the_records_past_the_checkpoint(tmp_path, step):
  log = metrics_log.MetricsLog(str(tmp_path), tensorboard=False)
  for s in (1, 2, 3):
    log.write(s, {"loss": float(s)})
  log.close()
  metrics_log.MetricsLog(str(tmp_path), start_step=step, tensorboard=False).close()
  assert [r["step"] for r in metrics_log.read(str(tmp_path / metrics_log.METRICS_FILE))] == list(range(1, step + 1))
