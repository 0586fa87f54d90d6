"""PNG figures for evaluation reports: ROC curves, a video's score curves with its anomalous frames shaded, and a
grid of frames beside their reconstructions and score maps.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so importing this module never switches the
global backend of a notebook, and the figures are freed when they go out of scope. Files are written to a temp
name in the target folder and moved into place, so a reader never sees half a PNG.
"""

import textwrap

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

from maskedskip_jax import atomic
from maskedskip_jax.errors import UserError


def _save(fig: Figure, path: str) -> str:
  with atomic.open_file(path, "wb") as f:
    FigureCanvasAgg(fig).print_png(f)
  return path


def anomalous_intervals(labels: np.ndarray) -> list[tuple[int, int]]:
  """[(first, last), ...] inclusive frame ranges where labels are nonzero."""
  y = np.concatenate([[0], np.asarray(labels) != 0, [0]]).astype(np.int8)
  edges = np.diff(y)
  return list(zip(np.nonzero(edges == 1)[0].tolist(), (np.nonzero(edges == -1)[0] - 1).tolist()))


def plot_roc(
  fpr,
  tpr,
  auc: float | None,
  path: str,
  title: str = "Frame-level ROC",
  label: str | None = None,
  curves=(),
  highlight_first: bool = True,
) -> str:
  """Writes the ROC curve (with the chance diagonal) to `path` as PNG; returns path.

  `label` names the curve in the legend beside its AUC; `curves` are more (fpr, tpr, auc, label) drawn beside it
  (the baselines' beside the model's), thinner unless `highlight_first` is False.
  """
  fig = Figure(figsize=(4.5, 4.5), dpi=100)
  ax = fig.add_subplot()
  for i, (x, y, a, name) in enumerate([(fpr, tpr, auc, label), *curves]):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1:
      raise UserError(f"plot_roc: fpr {x.shape} and tpr {y.shape} must be 1-D of the same length")
    text = f"AUC = {a:.4f}" if a is not None else "AUC undefined"
    first = i == 0 and highlight_first  # the curve the figure is about: thicker, on top
    ax.plot(
      x,
      y,
      lw=1.5 if first or not curves else 1.0,
      zorder=3 if first else 2,
      label=text if name is None else f"{name}, {text}",
    )
  ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
  ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate", title=title)
  ax.legend(loc="lower right", fontsize="small" if curves else None)
  fig.tight_layout()
  return _save(fig, path)


def minmax(scores) -> np.ndarray:
  """Scores scaled to [0, 1] (a constant curve becomes zeros), so curves of different units share an axis."""
  s = np.asarray(scores, np.float64)
  span = s.max() - s.min() if s.size else 0.0
  return (s - s.min()) / span if span > 0 else np.zeros_like(s)


def _scaled_like(value: float, scores: np.ndarray) -> float:
  """`value` under the min-max scaling `minmax` gives `scores` (so a threshold stays where it was on the curve)."""
  span = scores.max() - scores.min() if scores.size else 0.0
  return (value - scores.min()) / span if span > 0 else value - (scores.min() if scores.size else 0.0)


def _shade(ax, labels) -> None:
  for i, (first, last) in enumerate(anomalous_intervals(labels)):
    # Half a frame either side so a one-frame anomaly is visible and adjacent frames meet.
    ax.axvspan(first - 0.5, last + 0.5, color="tab:red", alpha=0.2, lw=0, label="anomalous" if i == 0 else None)


def _threshold_line(ax, value: float, label: str) -> None:
  ax.axhline(value, color="black", ls="--", lw=1.0, label=label)


def plot_scores(
  scores, labels, path: str, title: str = "", others=(), label: str = "score", threshold=None, alarm=None
) -> str:
  """Writes a video's frame scores against frame index, anomalous frames (labels != 0) shaded; returns path.

  labels may be None (no ground truth): the curve is drawn without shading. `others` are more (scores, label)
  curves of the same video (a baseline's); with any, every curve is min-max scaled to [0, 1] within the video,
  since their units differ, and the legend says so. `threshold` = (value, label): a horizontal line in `scores`'
  units (scaled with that curve when the curves are scaled). `alarm` = (scores, threshold, label): another score of
  the video drawn in a panel below, in its own units, with its threshold line and the same shading.
  """
  scores = np.asarray(scores, np.float64)
  if scores.ndim != 1:
    raise UserError(f"plot_scores: scores must be 1-D, got shape {scores.shape}")
  curves = [(scores, label)] + [(np.asarray(s, np.float64), name) for s, name in others]
  checked = curves[1:] + ([(np.asarray(alarm[0], np.float64), alarm[2])] if alarm is not None else [])
  for s, name in checked:
    if s.shape != scores.shape:
      raise UserError(f"plot_scores: {name} scores {s.shape} must match scores {scores.shape}")
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != scores.shape:
      raise UserError(f"plot_scores: labels {labels.shape} must match scores {scores.shape}")
  fig = Figure(figsize=(9, 2.8 if alarm is None else 4.8), dpi=100)
  axes = fig.subplots(1 if alarm is None else 2, 1, sharex=True, squeeze=False)[:, 0]
  ax = axes[0]
  if labels is not None:
    _shade(ax, labels)
  colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple")
  for i, (s, name) in enumerate(curves):
    ax.plot(np.arange(len(s)), minmax(s) if others else s, lw=1.0, color=colours[i % len(colours)], label=name)
  if threshold is not None:
    value, text = threshold
    _threshold_line(ax, _scaled_like(value, scores) if others else value, text)
  ax.set(xlabel="Frame" if alarm is None else None, ylabel="Score, min-max scaled" if others else "Anomaly score")
  ax.set_title(title)
  if len(scores):
    ax.set_xlim(-0.5, len(scores) - 0.5)
  if others:  # beside the axes: several curves would hide each other's data under it
    ax.legend(
      loc="upper left",
      bbox_to_anchor=(1.01, 1.0),
      fontsize="small",
      title_fontsize="small",
      title="each min-max scaled\nto [0, 1] in this video",
    )
  else:
    ax.legend(loc="upper right", fontsize="small")
  if alarm is not None:
    a_scores, a_value, a_label = alarm
    ax = axes[1]
    if labels is not None:
      _shade(ax, labels)
    # Wrapped: a one-line legend as long as the chain would squeeze both axes to a third of the figure.
    wrapped = textwrap.fill(a_label, 30)
    ax.plot(np.arange(len(scores)), np.asarray(a_scores, np.float64), lw=1.0, color="tab:gray", label=wrapped)
    _threshold_line(ax, a_value, f"alarm threshold {a_value:.4g}")
    ax.set(xlabel="Frame", ylabel="Alarm score")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0) if others else None, fontsize="small")
  fig.tight_layout()
  return _save(fig, path)


def plot_frame_grid(rows, path: str, title: str = "", vmax: float | None = None) -> str:
  """Writes one row per (frame, reconstruction, score map, caption): the two images in grey or RGB, the map as
  a heat map on one scale shared by every row (0 to `vmax`, default the largest map value); returns path."""
  if not rows:
    raise UserError("plot_frame_grid: no rows to draw")
  maps = [np.asarray(r[2], np.float32) for r in rows]
  vmax = float(vmax if vmax is not None else max(float(m.max()) for m in maps)) or 1.0
  h, w = maps[0].shape
  fig = Figure(
    figsize=(3 * 2.2 * w / max(h, w) + 0.8, len(rows) * 2.2 * h / max(h, w) + 0.9), dpi=100, layout="constrained"
  )
  axes = fig.subplots(len(rows), 3, squeeze=False)
  for i, (frame, recon, _, caption) in enumerate(rows):
    for j, image in enumerate((frame, recon)):
      image = np.clip(np.asarray(image, np.float32), 0, 1)
      image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
      axes[i, j].imshow(image, cmap="gray", vmin=0, vmax=1)
    shown = axes[i, 2].imshow(maps[i], cmap="jet", vmin=0, vmax=vmax)
    axes[i, 0].set_title(caption, fontsize="small", loc="left")
    for ax in axes[i]:
      ax.set_xticks([])
      ax.set_yticks([])
  fig.colorbar(shown, ax=axes[:, 2].tolist(), fraction=0.05)
  columns = f"columns: input, reconstruction, score map (0 to {vmax:.3g})"
  fig.suptitle(f"{title}\n{columns}" if title else columns, fontsize="medium")
  return _save(fig, path)
