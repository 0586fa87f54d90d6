"""Training metrics: workdir/metrics.jsonl and TensorBoard events (process 0 only).

metrics.jsonl holds one JSON object per logged step, e.g.
  {"step": 100, "loss": 0.0412, "clips_per_s": 85.3, "learning_rate": 0.01}
A resumed run first drops the lines past its checkpoint, so the file reads as if
the run had never stopped.
"""

import json
import math
import os
from typing import Any

from absl import logging

from maskedskip_jax import atomic

METRICS_FILE = "metrics.jsonl"


def _tensorboard_writer(logdir: str):
  """A tensorboardX writer, or None (with a notice) where the package is missing.

  tensorboardX, not tf.summary: TensorFlow >= 2.20 no longer brings the tensorboard package that
  tf.summary needs (a fresh `pip install .[tf]` then failed at the first logged step), and events must
  be written without TensorFlow too (the Grain backend).
  """
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top
  except ImportError:
    logging.warning(
      "tensorboardX is not installed: no TensorBoard events (metrics.jsonl is still "
      "written); pip install tensorboardX to get them."
    )
    return None
  return _TensorBoardX(tensorboardX.SummaryWriter(logdir))


class _TensorBoardX:
  def __init__(self, writer):
    self._writer = writer

  def scalars(self, step: int, values: dict[str, float]):
    for k, v in values.items():
      self._writer.add_scalar(k, v, step)
    self._writer.flush()

  def close(self):
    self._writer.close()


def truncate_after(path: str, step: int) -> None:
  """Drop records with step > `step` (work a resumed run will redo); atomic."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):
      pass  # a line cut short by a kill
  if len(kept) == len(lines):
    return
  atomic.write_text(path, "".join(kept))


def read(path: str) -> list[dict[str, Any]]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class MetricsLog:
  """Appends metrics records; a no-op on processes other than 0."""

  def __init__(self, workdir: str, *, start_step: int = 0, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    self._file = self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    truncate_after(self.path, start_step)
    self._file = open(self.path, "a")
    if tensorboard:
      self._tb = _tensorboard_writer(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, values: dict[str, float]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in values.items()}
    # Line-buffered JSON: a kill loses at most the line being written.
    record = {"step": int(step), **{k: (v if math.isfinite(v) else str(v)) for k, v in values.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    if self._tb is not None:
      self._tb.scalars(step, values)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None
