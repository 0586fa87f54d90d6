"""Early stopping on the loss of held-out training videos (seed 003, Sec. 3.2: training stops once the validation
loss has not decreased for 10 consecutive epochs; `train.early_stopping_patience`, 0 = off).

The validation videos are the held-out share of the training split (`data.holdout_share`, data_pipeline/holdout.py):
normal footage the model never trains on, never test data. After every epoch the loop scores every T-frame window
of them once (`HeldOut.loss`: the family's loss in eval mode, no dropout or augmentation, in fixed batches) and
feeds the mean to `Record.update`.

The record (best loss, its step, epochs since, whether training stopped) goes into every checkpoint's metadata, so
a resumed run goes on counting exactly where its checkpoint left off, and a stopped run stays stopped. Each new
best state is also written, whole, into its own checkpoint folder (`best_workdir`, keeping one), which
evaluation and export restore instead of the newest checkpoint when early stopping is on.
"""

import dataclasses
import math
import os
from typing import Any

import jax
import numpy as np

BEST = "best"  # the folder under the workdir whose checkpoints/ holds the best state


def best_workdir(workdir: str) -> str:
  """The workdir-like folder of the best checkpoint (its checkpoints/ sub-folder holds it)."""
  return os.path.join(os.path.abspath(workdir), BEST)


def has_best(workdir: str) -> bool:
  return os.path.isdir(os.path.join(best_workdir(workdir), "checkpoints"))


@dataclasses.dataclass
class Record:
  """What early stopping knows after the epochs so far."""

  best_loss: float = math.inf
  best_step: int = -1
  epochs_since: int = 0  # epochs since the best one
  stopped: bool = False

  def update(self, step: int, loss: float, patience: int) -> bool:
    """Takes the held-out loss after the epoch that ended at `step`; True when it is a new best."""
    if loss < self.best_loss:
      self.best_loss, self.best_step, self.epochs_since = float(loss), int(step), 0
      return True
    self.epochs_since += 1
    self.stopped = self.epochs_since >= patience
    return False

  def as_meta(self) -> dict[str, Any]:
    # JSON has no infinity: no best yet is None.
    return {**dataclasses.asdict(self), "best_loss": self.best_loss if math.isfinite(self.best_loss) else None}

  @classmethod
  def from_meta(cls, meta: dict[str, Any]) -> "Record":
    """The record a checkpoint's metadata holds; a fresh one when it has none."""
    saved = dict(meta.get("early_stopping") or {})
    if saved.get("best_loss") is None:
      saved["best_loss"] = math.inf
    return cls(**saved)


class HeldOut:
  """The held-out videos' mean loss for a state.

  Args:
    store: the held-out frames (a FrameStore).
    windows: the global start frame of every window scored (`data_pipeline.clips.train_windows`).
    temporal: frames per clip.
    batch_size: clips per forward; the last batch is padded with copies of its first clip, which do not count.
    losses: (variables, clips (B, T, H, W, C) float32 in [0, 1]) -> (B,) per-clip losses, pure and jittable.
  """

  def __init__(self, store, windows: np.ndarray, temporal: int, batch_size: int, losses):
    self.store, self.batch_size = store, batch_size
    self.windows = np.asarray(windows, np.int64)[:, None] + np.arange(temporal, dtype=np.int64)
    self._losses = jax.jit(losses)

  def loss(self, state: dict[str, Any]) -> float:
    """The mean per-clip loss of every window with the state's weights."""
    variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
    total, n = 0.0, len(self.windows)
    for start in range(0, n, self.batch_size):
      rows = self.windows[start : start + self.batch_size]
      valid = len(rows)
      rows = np.concatenate([rows, np.repeat(rows[:1], self.batch_size - valid, axis=0)])
      clips = self.store.frames[rows].astype(np.float32) / 255.0  # as the training pipeline scales them
      total += float(np.sum(np.asarray(self._losses(variables, clips))[:valid], dtype=np.float64))
    return total / n
