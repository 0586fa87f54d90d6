"""PNG figures for evaluation reports: the ROC curve and a video's score curve with its anomalous frames shaded.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so importing this module never switches the
global backend of a notebook, and the figures are freed when they go out of scope. Files are written to a temp
name in the target folder and moved into place, so a reader never sees half a PNG.
"""

import os
import tempfile

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from maskedskip_jax.errors import UserError


def _save(fig: Figure, path: str) -> str:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
  try:
    with os.fdopen(fd, "wb") as f:
      FigureCanvasAgg(fig).print_png(f)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a figure is meant to be shared
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def anomalous_intervals(labels: np.ndarray) -> list[tuple[int, int]]:
  """[(first, last), ...] inclusive frame ranges where labels are nonzero."""
  y = np.concatenate([[0], np.asarray(labels) != 0, [0]]).astype(np.int8)
  edges = np.diff(y)
  return list(zip(np.nonzero(edges == 1)[0].tolist(), (np.nonzero(edges == -1)[0] - 1).tolist()))


def plot_roc(fpr, tpr, auc: float | None, path: str, title: str = "Frame-level ROC") -> str:
  """Writes the ROC curve (with the chance diagonal) to `path` as PNG; returns path."""
  fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
  if fpr.shape != tpr.shape or fpr.ndim != 1:
    raise UserError(f"plot_roc: fpr {fpr.shape} and tpr {tpr.shape} must be 1-D of the same length")
  fig = Figure(figsize=(4.5, 4.5), dpi=100)
  ax = fig.add_subplot()
  label = f"AUC = {auc:.4f}" if auc is not None else "AUC undefined"
  ax.plot(fpr, tpr, lw=1.5, label=label)
  ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
  ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title=title)
  ax.legend(loc="lower right")
  fig.tight_layout()
  return _save(fig, path)


def plot_scores(scores, labels, path: str, title: str = "") -> str:
  """Writes a video's frame scores against frame index, anomalous frames (labels != 0) shaded; returns path.

  labels may be None (no ground truth): the curve is drawn without shading.
  """
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 1:
    raise UserError(f"plot_scores: scores must be 1-D, got shape {scores.shape}")
  fig = Figure(figsize=(8, 2.8), dpi=100)
  ax = fig.add_subplot()
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
      raise UserError(f"plot_scores: labels {labels.shape} must match scores {scores.shape}")
    for i, (first, last) in enumerate(anomalous_intervals(labels)):
      # Half a frame either side so a one-frame anomaly is visible and adjacent frames meet.
      ax.axvspan(first - 0.5, last + 0.5, color="tab:red", alpha=0.2, lw=0, label="anomalous" if i == 0 else None)
  ax.plot(np.arange(len(scores)), scores, lw=1.0, color="tab:blue", label="score")
  ax.set(xlabel="Frame", ylabel="Anomaly score", title=title)
  if len(scores):
    ax.set_xlim(-0.5, len(scores) - 0.5)
  ax.legend(loc="upper right", fontsize="small")
  fig.tight_layout()
  return _save(fig, path)
